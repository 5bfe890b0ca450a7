"""The Analytics page: runs started and completed per day, durations (median, p90) per stage and
per step, time waiting for a person against time working, SLA breaches, open work by holder and
the bottlenecks, for the runs one filter selects.

Every figure is an aggregate in the database, in a fixed number of queries whatever the number
of runs. Percentiles: PostgreSQL computes them exactly (`percentile_cont ... WITHIN GROUP`). SQLite
has no percentile aggregate: there they come from the newest DURATION_SAMPLE finished stage or
step runs of each key (a window function keeps the sample bounded), computed in Python with the
same interpolation; counts and totals stay exact there too. SQLite is for development and tests;
the 1M-run figures in bench/README.md are PostgreSQL's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import (
    Aggregate,
    Case,
    Count,
    DateTimeField,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone

from .. import registry
from ..models import Orchestration, OrchestrationVersion, Run, RunStatus, StageRun, StageStatus, StepRun
from .figures import percentile_cont

# SQLite only: the newest finished runs of a stage or step that its percentiles are taken over.
DURATION_SAMPLE = 10_000
# The longest date range the page shows: a day per bar, so a chart stays readable.
MAX_DAYS = 366
DEFAULT_DAYS = 30
TOP_WIP = 20
TOP_BOTTLENECKS = 10


@dataclass(frozen=True)
class AnalyticsFilter:
    """Runs started from `started_from` to `started_to` (dates in the server's zone, both
    inclusive), of one orchestration (api name, "" for all) and optionally one version number."""

    started_from: dt.date
    started_to: dt.date
    orchestration: str = ""
    version: int | None = None

    @property
    def days(self) -> list[dt.date]:
        n = (self.started_to - self.started_from).days + 1
        return [self.started_from + dt.timedelta(days=i) for i in range(max(n, 0))]


@dataclass(frozen=True)
class Day:
    day: dt.date
    started: int
    completed: int


@dataclass
class Durations:
    """One stage's or step's figures. `count`, `median` and `p90` are over its finished
    (completed) runs; `total_seconds` is the time all its runs spent in it, the open ones until
    now, and `open` how many are still open."""

    stage: str
    step: str = ""
    kind: str = ""
    count: int = 0
    median: float | None = None
    p90: float | None = None
    total_seconds: float = 0.0
    open: int = 0


@dataclass(frozen=True)
class StageTime:
    """Per stage: the time its interactive steps waited for a person, and its background steps
    worked (open steps until now)."""

    stage: str
    waiting: float
    working: float

    @property
    def waiting_share(self) -> float | None:
        total = self.waiting + self.working
        return self.waiting / total if total else None


@dataclass(frozen=True)
class Breach:
    stage: str
    step: str
    with_due: int
    breached: int

    @property
    def rate(self) -> float | None:
        return self.breached / self.with_due if self.with_due else None


@dataclass
class Analytics:
    filter: AnalyticsFilter
    days: list[Day]
    stages: list[Durations]
    steps: list[Durations]
    waiting: list[StageTime]
    breaches: list[Breach]
    wip: list[registry.OpenWork]
    bottlenecks: list[Durations] = field(default_factory=list)

    @property
    def started_total(self) -> int:
        return sum(d.started for d in self.days)

    @property
    def completed_total(self) -> int:
        return sum(d.completed for d in self.days)


class _Seconds(Func):
    """end - start in seconds, as a float, on PostgreSQL and SQLite."""

    output_field = FloatField()

    def __init__(self, start: Any, end: Any) -> None:
        super().__init__(end, start)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            # julianday() is a float of days: rounded to the millisecond, its error (about 10 µs)
            # does not show in the figures.
            template="ROUND((julianday(%(expressions)s)) * 86400.0, 3)",
            arg_joiner=") - julianday(",
            **extra,
        )


class _Median(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


class _P90(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.9) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _bounds(f: AnalyticsFilter) -> tuple[dt.datetime, dt.datetime]:
    """The filter's dates as [start, end) instants in the current zone: a range on the column
    itself, so the started_at index serves it (a `__date` lookup would wrap the column)."""
    start = timezone.make_aware(dt.datetime.combine(f.started_from, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(f.started_to + dt.timedelta(days=1), dt.time.min))
    return start, end


def analytics_runs(f: AnalyticsFilter) -> QuerySet[Run]:
    """The runs the filter selects, unordered (an IN subquery for the other queries)."""
    start, end = _bounds(f)
    runs = Run.objects.filter(started_at__gte=start, started_at__lt=end).order_by()
    if f.orchestration:
        runs = runs.filter(orchestration__api_name=f.orchestration)
        if f.version is not None:
            runs = runs.filter(version__number=f.version)
    return runs


def analytics_versions(orchestration: Orchestration) -> list[int]:
    """The version numbers of an orchestration, newest first: the version filter's choices."""
    return list(
        OrchestrationVersion.objects.filter(orchestration=orchestration)
        .order_by("-number")
        .values_list("number", flat=True)
    )


def _runs_per_day(f: AnalyticsFilter, runs: QuerySet[Run]) -> list[Day]:
    """Two queries. Completed: of the selected runs, those completed, on the day they completed
    (a completion after the range's last day is not drawn)."""
    started = dict(
        runs.annotate(day=TruncDate("started_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    start, end = _bounds(f)
    completed = dict(
        runs.filter(status=RunStatus.COMPLETED, ended_at__gte=start, ended_at__lt=end)
        .annotate(day=TruncDate("ended_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [Day(day=d, started=started.get(d, 0), completed=completed.get(d, 0)) for d in f.days]


def _is_postgresql() -> bool:
    return connections[Run.objects.db].vendor == "postgresql"


def _durations(
    qs: QuerySet[Any], keys: list[str], *, done: Q, now: dt.datetime
) -> dict[tuple[str, ...], Durations]:
    """{key values: Durations} of stage or step runs `qs`, grouped by `keys`. PostgreSQL: one
    query; SQLite: that query without the percentiles, and the bounded sample."""
    finished = Q(done, started_at__isnull=False, ended_at__isnull=False)
    spent = _Seconds(F("started_at"), Coalesce(F("ended_at"), Value(now, output_field=DateTimeField())))
    aggregates: dict[str, Any] = {
        "count": Count("id", filter=finished),
        "total": Sum(spent, filter=Q(started_at__isnull=False)),
        "open": Count("id", filter=Q(ended_at__isnull=True, started_at__isnull=False)),
    }
    pg = _is_postgresql()
    if pg:
        # Only finished runs have a duration: the others are NULL, which percentile_cont skips.
        duration = Case(When(finished, then=_Seconds(F("started_at"), F("ended_at"))))
        aggregates["median"] = _Median(duration)
        aggregates["p90"] = _P90(duration)
    out: dict[tuple[str, ...], Durations] = {}
    for row in qs.values(*keys).annotate(**aggregates).order_by(*keys):
        key = tuple(row[k] for k in keys)
        out[key] = Durations(
            stage=row[keys[0]],
            step=row[keys[1]] if len(keys) > 1 else "",
            kind=row[keys[2]] if len(keys) > 2 else "",
            count=row["count"],
            median=row.get("median"),
            p90=row.get("p90"),
            total_seconds=row["total"] or 0.0,
            open=row["open"],
        )
    if not pg:
        newest_first = Window(RowNumber(), partition_by=[F(k) for k in keys], order_by=F("id").desc())
        sample = (
            qs.filter(finished)
            .annotate(rank=newest_first, seconds=_Seconds(F("started_at"), F("ended_at")))
            .filter(rank__lte=DURATION_SAMPLE)
            .values_list(*keys, "seconds")
        )
        values: dict[tuple[str, ...], list[float]] = {}
        for *key, seconds in sample:
            values.setdefault(tuple(key), []).append(seconds)
        for key, v in values.items():
            if key in out:
                out[key].median = percentile_cont(v, 0.5)
                out[key].p90 = percentile_cont(v, 0.9)
    return out


def analytics_page(f: AnalyticsFilter, *, now: dt.datetime | None = None) -> Analytics:
    """Every figure of the page. A fixed number of queries: two for the days, one (PostgreSQL)
    or two (SQLite) each for the stages and the steps, and what the work-item seam takes."""
    now = now or timezone.now()
    runs = analytics_runs(f)
    run_ids = runs.values("id")
    stage_rows = _durations(
        StageRun.objects.filter(run__in=run_ids).order_by(),
        ["key"],
        done=Q(status=StageStatus.COMPLETED),
        now=now,
    )
    step_rows = _durations(
        StepRun.objects.filter(run__in=run_ids).order_by(),
        ["stage_run__key", "key", "kind"],
        done=Q(status=StageStatus.COMPLETED),
        now=now,
    )
    steps = list(step_rows.values())
    waiting: dict[str, list[float]] = {}
    for s in steps:
        w = waiting.setdefault(s.stage, [0.0, 0.0])
        if s.kind == "interactive":
            w[0] += s.total_seconds
        elif s.kind == "background":
            w[1] += s.total_seconds
    work = registry.work_figures(run_ids, now)
    return Analytics(
        filter=f,
        days=_runs_per_day(f, runs),
        stages=list(stage_rows.values()),
        steps=steps,
        waiting=[StageTime(stage=k, waiting=w, working=b) for k, (w, b) in waiting.items()],
        breaches=[
            Breach(stage=b.stage, step=b.step, with_due=b.with_due, breached=b.breached)
            for b in sorted(work.breaches, key=lambda b: (b.stage, b.step))
        ],
        wip=work.wip[:TOP_WIP],
        # Ranked by total time spent in the step (all its runs, open ones until now): what
        # shortening the step would save, where p90 x count would favour rare slow steps.
        bottlenecks=sorted(steps, key=lambda s: -s.total_seconds)[:TOP_BOTTLENECKS],
    )
