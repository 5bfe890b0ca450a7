"""The orchestrations page: runs by status, durations (mean and 90th percentile), versions."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db import connections
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    F,
    FloatField,
    Func,
    OuterRef,
    QuerySet,
    Subquery,
    Window,
)
from django.db.models.functions import RowNumber

from ..models import (
    DefinitionEvent,
    Orchestration,
    OrchestrationVersion,
    Run,
    RunStatus,
)
from .base import MAX_ID

# --- orchestrations page (monitoring) --------------------------------------------------------

# SQLite has no percentile_cont: there the duration figures come from the newest completed runs
# of each orchestration, at most this many, computed in Python.
DURATION_SAMPLE = 10_000
FINISHED = (RunStatus.COMPLETED, RunStatus.CANCELED, RunStatus.ERROR)


@dataclass
class OrchestrationStats:
    orchestration: Orchestration
    active_number: int | None
    version_count: int
    by_status: dict[str, int]
    avg_seconds: float | None = None
    p90_seconds: float | None = None

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def failed(self) -> int:
        return self.by_status.get(RunStatus.ERROR, 0)

    @property
    def completion_rate(self) -> float | None:
        """Completed runs among finished ones (completed, canceled, error); None before any ends."""
        finished = sum(self.by_status.get(s, 0) for s in FINISHED)
        return self.by_status.get(RunStatus.COMPLETED, 0) / finished if finished else None


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the two nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    pos = fraction * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class _P90(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.9) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _completed_runs() -> QuerySet[Run]:
    return Run.objects.filter(
        status=RunStatus.COMPLETED, started_at__isnull=False, ended_at__isnull=False
    ).order_by()


def _durations() -> dict[int, tuple[float | None, float | None]]:
    """{orchestration id: (average, p90) seconds of its completed runs}. One query."""
    if connections[Run.objects.db].vendor == "postgresql":
        seconds = Func(
            F("ended_at") - F("started_at"),
            template="EXTRACT(EPOCH FROM %(expressions)s)::double precision",
            output_field=FloatField(),
        )
        rows = (
            _completed_runs()
            .values("orchestration_id")
            .annotate(avg=Avg(seconds), p90=_P90(seconds))
            .values_list("orchestration_id", "avg", "p90")
        )
        return {oid: (avg, p90) for oid, avg, p90 in rows}
    newest_first = Window(RowNumber(), partition_by=[F("orchestration_id")], order_by=F("id").desc())
    sample = (
        _completed_runs()
        .annotate(rank=newest_first)
        .filter(rank__lte=DURATION_SAMPLE)
        .values_list("orchestration_id", "started_at", "ended_at")
    )
    by_orch: dict[int, list[float]] = {}
    for oid, started, ended in sample:
        if started and ended:  # always, by the filter; says so to the type checker
            by_orch.setdefault(oid, []).append((ended - started).total_seconds())
    return {oid: (sum(v) / len(v), percentile_cont(v, 0.9)) for oid, v in by_orch.items()}


def orchestration_stats() -> list[OrchestrationStats]:
    """Every orchestration with its active version number, version count, runs by status and
    duration figures. Three queries, however many orchestrations and runs."""
    active = OrchestrationVersion.objects.filter(orchestration=OuterRef("pk"), is_active=True)
    orchestrations = Orchestration.objects.order_by("api_name").annotate(
        active_number=Subquery(active.values("number")[:1]),
        version_count=Count("versions"),
    )
    counts: dict[int, dict[str, int]] = {}
    for row in Run.objects.order_by().values("orchestration_id", "status").annotate(n=Count("id")):
        counts.setdefault(row["orchestration_id"], {})[row["status"]] = row["n"]
    durations = _durations()
    out = []
    for o in orchestrations:
        avg, p90 = durations.get(o.pk, (None, None))
        out.append(
            OrchestrationStats(
                orchestration=o,
                active_number=o.active_number,  # type: ignore[attr-defined]
                version_count=o.version_count,  # type: ignore[attr-defined]
                by_status=counts.get(o.pk, {}),
                avg_seconds=avg,
                p90_seconds=p90,
            )
        )
    return out


def orchestration_versions(orchestration: Orchestration) -> list[OrchestrationVersion]:
    """Versions, newest first, each with `run_count` and its author. One query."""
    return list(
        orchestration.versions.select_related("created_by")
        .annotate(run_count=Count("runs"))
        .order_by("-number")
    )


HISTORY_SIZE = 50


def definition_events(orchestration: Orchestration, *, limit: int = HISTORY_SIZE) -> list[DefinitionEvent]:
    """The orchestration's audit log (activations, with what each changed), newest first, each
    with its actor. One query."""
    return list(orchestration.definition_events.select_related("actor").order_by("-id")[:limit])


def orchestration_version(api_name: str, number: int) -> OrchestrationVersion | None:
    if not 0 < number <= MAX_ID:
        return None
    return (
        OrchestrationVersion.objects.select_related("orchestration", "created_by")
        .filter(orchestration__api_name=api_name, number=number)
        .first()
    )
