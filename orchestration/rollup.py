"""Analytics rollups: the Analytics page's figures kept per partition (the runs of one
orchestration started on one day, in the server's zone), so the page reads at most a few rows
per day and step whatever the number of runs (bench/README.md: 1,000,000 runs).

A partition is rebuilt whole from its runs, their stage and step runs (and, through
registry.ROLLUP_PARTS, their work items) whenever anything in it changed. What changed is found
from the run events: every transition writes one in the transaction that makes it (an admin's
operation, a migration, a work item's completion or reassignment too), so the refresh (the beat's
`orchestration.tasks.analytics_refresh`, every ORCHESTRATION_ROLLUP_REFRESH_SECONDS) reads the
events written since its last scan and marks their runs' partitions dirty (RollupDirty), then
rebuilds the dirty ones, one transaction each. A rebuild is idempotent, so reading an event twice
costs time, never a wrong figure: each scan starts at the checkpoint taken at least
ORCHESTRATION_ROLLUP_MARGIN_SECONDS earlier, and an event whose transaction committed after a
later scan had begun is still read. A deleted run leaves no event: its partition is marked by
the deletion itself (a signal). The first refresh marks every partition.

Two refreshes at once (two beats) are safe: the scan holds the state row's lock, and each dirty
partition is taken with SKIP LOCKED and dropped in the transaction that rebuilds it.

Percentiles come from a histogram of the completed durations per row, buckets of
BUCKET_RATIO (2 %) in width; while a row has at most EXACT_PER_ROW durations it keeps them, and a
page whose rows all kept theirs computes its percentiles exactly, as PostgreSQL's percentile_cont."""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import registry
from .models import (
    AnalyticsRollup,
    RollupDirty,
    RollupState,
    Run,
    RunEvent,
    RunStatus,
    StageRun,
    StageStatus,
    StepRun,
)
from .selectors.figures import percentile_cont

log = logging.getLogger(__name__)

BUCKET_RATIO = 1.02
_LOG_RATIO = math.log(BUCKET_RATIO)
BUCKET_FLOOR = 0.001  # seconds: shorter durations share bucket 0
EXACT_PER_ROW = 64
EXACT_TOTAL = 20_000  # a page merges exact durations up to this many, else uses the histograms
TABLE = registry.RollupTable(
    model=AnalyticsRollup,
    key=("version_id", "level", "stage", "step", "kind"),
    sums=("started", "count", "ended_seconds", "open_count", "open_started"),
    counters=("completed_on", "histogram"),
    exact=("durations",),
    exact_cap=EXACT_PER_ROW,
)


# --- durations: buckets, merging, percentiles ---------------------------------------------------


def bucket(seconds: float) -> int:
    """The histogram bucket of a duration: 0 below BUCKET_FLOOR, else b >= 1 holds
    [FLOOR x RATIO^(b-1), FLOOR x RATIO^b)."""
    if seconds < BUCKET_FLOOR:
        return 0
    return 1 + int(math.log(seconds / BUCKET_FLOOR) / _LOG_RATIO)


def bucket_bounds(b: int) -> tuple[float, float]:
    if b <= 0:
        return 0.0, BUCKET_FLOOR
    return BUCKET_FLOOR * BUCKET_RATIO ** (b - 1), BUCKET_FLOOR * BUCKET_RATIO**b


def histogram_percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """percentile_cont over a histogram: the values of a bucket taken as spread evenly over it,
    interpolated between the two nearest ranks, so the result is within the bucket's width (2 %)
    of the exact one."""
    n = sum(histogram.values())
    if not n:
        return None
    rank = fraction * (n - 1)  # 0-based, as percentile_cont
    lo_rank = math.floor(rank)
    ordered = sorted(histogram.items())

    def value(k: int) -> float:
        """The k-th smallest value (0-based), as the histogram tells it."""
        seen = 0
        for b, c in ordered:
            if k < seen + c:
                lo, hi = bucket_bounds(b)
                return lo + (hi - lo) * (k - seen + 0.5) / c
            seen += c
        return bucket_bounds(ordered[-1][0])[1]

    low = value(lo_rank)
    if rank == lo_rank:
        return low
    return low + (value(min(lo_rank + 1, n - 1)) - low) * (rank - lo_rank)


@dataclass
class Merged:
    """The completed durations of several rows: their histogram, and the durations themselves
    while every row kept them and they are at most EXACT_TOTAL."""

    count: int = 0
    histogram: Counter[int] | None = None
    exact: list[float] | None = None

    def __post_init__(self) -> None:
        self.histogram = Counter()
        self.exact = []

    def add(self, count: int, histogram: dict[str, int], durations: list[float] | None) -> None:
        assert self.histogram is not None
        self.count += count
        for b, n in histogram.items():
            self.histogram[int(b)] += n
        if self.exact is not None:
            if durations is None or len(self.exact) + len(durations) > EXACT_TOTAL:
                self.exact = None
            else:
                self.exact.extend(durations)

    def percentile(self, fraction: float) -> float | None:
        if self.exact is not None:
            return percentile_cont(self.exact, fraction)
        assert self.histogram is not None
        return histogram_percentile(self.histogram, fraction)


# --- one partition ----------------------------------------------------------------------------


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """A day of the server's zone as [start, end) instants."""
    start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))
    return start, end


def local_day(instant: dt.datetime) -> dt.date:
    return timezone.localtime(instant).date()


class _Row:
    """An AnalyticsRollup row being summed."""

    def __init__(self, **key: Any) -> None:
        self.row = AnalyticsRollup(**key)
        self.durations: list[float] = []
        self.histogram: Counter[int] = Counter()

    def add(self, status: str, started: dt.datetime | None, ended: dt.datetime | None) -> None:
        if started is None:
            return  # never started (a step whose stage ended first): no time to count
        r = self.row
        if ended is None:
            r.open_count += 1
            r.open_started += started.timestamp()
            return
        seconds = (ended - started).total_seconds()
        r.ended_seconds += seconds
        if status == StageStatus.COMPLETED:
            r.count += 1
            self.histogram[bucket(seconds)] += 1
            if len(self.durations) <= EXACT_PER_ROW:
                self.durations.append(round(seconds, 3))

    def done(self) -> AnalyticsRollup:
        r = self.row
        r.histogram = {str(b): n for b, n in sorted(self.histogram.items())}
        r.durations = sorted(self.durations) if r.count <= EXACT_PER_ROW else None
        return r


def partition_runs(day: dt.date, orchestration_id: int) -> QuerySet[Run]:
    start, end = day_bounds(day)
    return Run.objects.filter(
        orchestration_id=orchestration_id, started_at__gte=start, started_at__lt=end
    ).order_by()


def rebuild_partition(day: dt.date, orchestration_id: int) -> int:
    """Replace the rollup rows of one partition (inside the caller's transaction). Four queries
    for the engine's rows and what each registered part takes; returns the rows written."""
    runs = partition_runs(day, orchestration_id)
    key = {"day": day, "orchestration_id": orchestration_id}
    version_of = dict(runs.values_list("id", "version_id"))
    rows: dict[tuple[Any, ...], _Row] = {}

    def row(version_id: int, level: str, stage: str = "", step: str = "", kind: str = "") -> _Row:
        k = (version_id, level, stage, step, kind)
        if k not in rows:
            rows[k] = _Row(**key, version_id=version_id, level=level, stage=stage, step=step, kind=kind)
        return rows[k]

    for version_id in version_of.values():
        row(version_id, AnalyticsRollup.RUN).row.started += 1
    completed = (
        runs.filter(status=RunStatus.COMPLETED, ended_at__isnull=False)
        .annotate(on=TruncDate("ended_at"))
        .values("version_id", "on")
        .annotate(n=Count("id"))
        .values_list("version_id", "on", "n")
    )
    for version_id, on, n in completed:
        row(version_id, AnalyticsRollup.RUN).row.completed_on[on.isoformat()] = n
    run_ids = runs.values("id")
    for run_id, stage, status, started, ended in (
        StageRun.objects.filter(run__in=run_ids)
        .order_by()
        .values_list("run_id", "key", "status", "started_at", "ended_at")
    ):
        row(version_of[run_id], AnalyticsRollup.STAGE, stage).add(status, started, ended)
    for run_id, stage, step, kind, status, started, ended in (
        StepRun.objects.filter(run__in=run_ids)
        .order_by()
        .values_list("run_id", "stage_run__key", "key", "kind", "status", "started_at", "ended_at")
    ):
        row(version_of[run_id], AnalyticsRollup.STEP, stage, step, kind).add(status, started, ended)
    AnalyticsRollup.objects.filter(**key).delete()
    AnalyticsRollup.objects.bulk_create([r.done() for r in rows.values()])
    written = len(rows)
    for part in registry.ROLLUP_PARTS:
        written += part(day, orchestration_id, runs)
    mark([(day.replace(day=1), orchestration_id)], whole_month=True)  # its month's sums are next
    return written


# --- months -----------------------------------------------------------------------------------


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def span_q(day_from: dt.date, day_to: dt.date) -> Q:
    """The rows of a rollup table that cover the days from `day_from` to `day_to` once: the
    month rows of the months inside the range whole, the day rows of the days around them."""
    first = day_from.replace(day=1)
    if first < day_from:
        first = next_month(first)
    months = []
    while next_month(first) - dt.timedelta(days=1) <= day_to:
        months.append(first)
        first = next_month(first)
    if not months:
        return Q(whole_month=False, day__gte=day_from, day__lte=day_to)
    q = Q(whole_month=True, day__in=months)
    if day_from < months[0]:
        q |= Q(whole_month=False, day__gte=day_from, day__lt=months[0])
    after = next_month(months[-1])
    if after <= day_to:
        q |= Q(whole_month=False, day__gte=after, day__lte=day_to)
    return q


def _sum_rows(
    table: registry.RollupTable, rows: Iterable[dict[str, Any]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        k = tuple(r[f] for f in table.key)
        acc = out.get(k)
        if acc is None:
            acc = out[k] = {f: r[f] for f in table.key}
            acc.update({f: 0 for f in table.sums})
            acc.update({f: {} for f in (*table.counters,)})
            acc.update({f: [] for f in (*table.sorted_lists, *table.exact)})
        for f in table.sums:
            acc[f] += r[f]
        for f in table.counters:
            counter = acc[f]
            for name, n in r[f].items():
                counter[name] = counter.get(name, 0) + n
        for f in table.sorted_lists:
            acc[f].extend(r[f])
        for f in table.exact:
            if acc[f] is not None:
                acc[f] = None if r[f] is None or len(acc[f]) + len(r[f]) > table.exact_cap else acc[f] + r[f]
    for acc in out.values():
        for f in (*table.sorted_lists, *table.exact):
            if acc[f] is not None:
                acc[f].sort()
    return out


def rebuild_month(month: dt.date, orchestration_id: int) -> int:
    """Replace the month rows of one orchestration's month by the sums of its day rows, in every
    rollup table (inside the caller's transaction). Two queries and an insert per table."""
    written = 0
    for table in (TABLE, *registry.ROLLUP_TABLES):
        model = table.model
        days = model.objects.filter(
            orchestration_id=orchestration_id, whole_month=False, day__gte=month, day__lt=next_month(month)
        ).order_by()
        fields = (*table.key, *table.sums, *table.counters, *table.sorted_lists, *table.exact)
        sums = _sum_rows(table, days.values(*fields))
        model.objects.filter(orchestration_id=orchestration_id, whole_month=True, day=month).delete()
        model.objects.bulk_create(
            [
                model(day=month, whole_month=True, orchestration_id=orchestration_id, **acc)
                for acc in sums.values()
            ]
        )
        written += len(sums)
    return written


# --- the refresh ------------------------------------------------------------------------------


@dataclass
class RefreshReport:
    marked: int = 0  # partitions found changed (or all of them, the first time)
    rebuilt: int = 0  # day partitions
    months: int = 0  # month sums
    rows: int = 0
    remaining: int = 0  # dirty partitions left for the next refresh (the limit was reached)
    full: bool = False


def _mark(runs: QuerySet[Run]) -> int:
    """Mark the partitions of these runs dirty (one query to find them, one to insert); returns
    how many there were."""
    pairs = (
        runs.filter(started_at__isnull=False)
        .order_by()
        .annotate(day=TruncDate("started_at"))
        .values_list("day", "orchestration_id")
        .distinct()
    )
    return mark(pairs)


def mark(pairs: Iterable[tuple[dt.date, int]], *, whole_month: bool = False) -> int:
    rows = [RollupDirty(day=day, orchestration_id=o, whole_month=whole_month) for day, o in set(pairs)]
    RollupDirty.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def _top_event_id() -> int:
    """The highest event id written so far (some below it may commit later)."""
    return RunEvent.objects.aggregate(m=Max("id"))["m"] or 0


def _scan_from(checkpoints: list[list[Any]], before: dt.datetime) -> int:
    """The event id to scan from: the newest checkpoint taken at or before `before`, else the
    oldest there is."""
    low = checkpoints[0][1]
    for taken, top in checkpoints:
        if dt.datetime.fromisoformat(taken) <= before:
            low = top
    return int(low)


def _keep(checkpoints: list[list[Any]], before: dt.datetime) -> list[list[Any]]:
    """The checkpoints still needed: those after `before` and the newest one at or before it."""
    old = [c for c in checkpoints if dt.datetime.fromisoformat(c[0]) <= before]
    return old[-1:] + [c for c in checkpoints if dt.datetime.fromisoformat(c[0]) > before]


def refresh(
    *, now: dt.datetime | None = None, limit: int | None = None, rebuild: bool = False
) -> RefreshReport:
    """Mark the partitions changed since the last refresh (every one the first time, or with
    `rebuild`), then rebuild the dirty ones, newest day first, then the months they are in; at
    most `limit` (days and months together)."""
    now = now or timezone.now()
    report = RefreshReport()
    with transaction.atomic():
        state, _ = RollupState.objects.select_for_update().get_or_create(pk=1)
        top = _top_event_id()
        if rebuild or not state.checkpoints:
            report.full = True
            report.marked = _mark(Run.objects.all())
            state.checkpoints = []
            state.built_at = now
        else:
            low = _scan_from(
                state.checkpoints, now - dt.timedelta(seconds=settings.ORCHESTRATION_ROLLUP_MARGIN_SECONDS)
            )
            changed = Run.objects.filter(pk__in=RunEvent.objects.filter(id__gt=low).values("run_id"))
            report.marked = _mark(changed)
        margin = dt.timedelta(seconds=settings.ORCHESTRATION_ROLLUP_MARGIN_SECONDS)
        state.checkpoints = _keep([*state.checkpoints, [now.isoformat(), top]], now - margin)
        state.save(update_fields=["checkpoints", "built_at"])
    while limit is None or report.rebuilt + report.months < limit:
        with transaction.atomic():
            # Days first, newest first; then the months whose days were rebuilt.
            dirty = (
                RollupDirty.objects.select_for_update(skip_locked=True)
                .order_by("whole_month", "-day", "orchestration_id")
                .first()
            )
            if dirty is None:
                break
            if dirty.whole_month:
                report.rows += rebuild_month(dirty.day, dirty.orchestration_id)
                report.months += 1
            else:
                report.rows += rebuild_partition(dirty.day, dirty.orchestration_id)
                report.rebuilt += 1
            dirty.delete()
    if limit is not None and report.rebuilt + report.months >= limit:
        report.remaining = RollupDirty.objects.count()
    if not report.remaining:
        RollupState.objects.filter(pk=1).update(refreshed_at=now)
    return report


def refreshed_at() -> tuple[dt.datetime | None, int]:
    """When the rollups were last brought up to date, and how many partitions wait for a
    rebuild. Two queries."""
    state = RollupState.objects.filter(pk=1).values_list("refreshed_at", flat=True).first()
    return state, RollupDirty.objects.filter(whole_month=False).count()


def forget_run(run: Run) -> None:
    """A run was deleted: its partition is out of date (no event of it is left to say so)."""
    if run.started_at is not None and run.orchestration_id is not None:
        mark([(local_day(run.started_at), run.orchestration_id)])


def open_seconds(count: int, started_sum: float, now: dt.datetime) -> float:
    """The time `count` open runs whose start times sum to `started_sum` have spent until now."""
    return count * now.timestamp() - started_sum if count else 0.0


def past(sorted_epochs: list[float], now: dt.datetime) -> int:
    """How many of these sorted instants (epoch seconds) are before now."""
    return bisect.bisect_left(sorted_epochs, now.timestamp())
