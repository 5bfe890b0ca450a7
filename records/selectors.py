"""Reads for the record pages. Each returns a bounded number of queries whatever the data size,
so the pages' query counts stay flat (asserted in tests/records/test_pages__queries.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from orchestration import engine
from orchestration.definitions import AutolaunchedStart
from orchestration.models import OrchestrationVersion, Run, RunStatus

from .models import FieldChange, FieldType, Record, RecordType

HISTORY_LIMIT = 100
RUNS_LIMIT = 50
RECENT_LIMIT = 10
# A run that still has something to do (or someone to repair it): what "open runs" counts.
OPEN_RUN_STATUSES = (RunStatus.IN_PROGRESS, RunStatus.SUSPENDED, RunStatus.ERROR)


@dataclass(frozen=True)
class RecordTypeCounts:
    record_type: RecordType
    records: int  # records of the type
    with_open_runs: int  # of those, the ones with at least one run in progress, suspended or failed


def _count(qs: QuerySet[Any]) -> Coalesce:
    """COUNT(*) of `qs` (filtered on OuterRef("pk")) as a correlated subquery: 0 when empty."""
    counted = qs.order_by().values("record_type").annotate(n=Count("*")).values("n")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def record_type_counts() -> list[RecordTypeCounts]:
    """Every record type with how many records it has and how many of them have an open run,
    by label (one query: both counts are correlated subqueries, on the record type index and
    the run status index)."""
    ct = ContentType.objects.get_for_model(Record)  # cached by ContentType's manager
    open_runs = Run.objects.filter(record_type=ct, status__in=OPEN_RUN_STATUSES).values("record_id")
    types = RecordType.objects.annotate(
        n_records=_count(Record.objects.filter(record_type=OuterRef("pk"))),
        n_open=_count(Record.objects.filter(record_type=OuterRef("pk"), pk__in=open_runs)),
    ).order_by("label", "api_name")
    return [RecordTypeCounts(t, t.n_records, t.n_open) for t in types]  # type: ignore[attr-defined]


def record_types() -> list[RecordType]:
    """Every record type, by label (one query)."""
    return list(RecordType.objects.order_by("label", "api_name"))


def recent_records(*, owner: Any = None, limit: int = RECENT_LIMIT) -> list[Record]:
    """The newest records (of `owner` when given), with their type and owner (one query).

    Newest by creation: the primary key orders them on an index, where "last updated" would
    sort the whole table on every home page."""
    qs = Record.objects.select_related("record_type", "owner")
    if owner is not None:
        qs = qs.filter(owner=owner)
    return list(qs.order_by("-id")[:limit])


def record_list(*, record_type: RecordType, q: str = "") -> QuerySet[Record]:
    """Records of a type, newest first, optionally filtered by a case-insensitive name search."""
    qs = Record.objects.filter(record_type=record_type).select_related("owner")
    q = q.strip()
    if q:
        qs = qs.filter(name__icontains=q)
    return qs.order_by("-id")


def record_changes(*, record: Record, limit: int = HISTORY_LIMIT) -> list[FieldChange]:
    """The newest `limit` field changes; one more is fetched so callers can say "older not shown"."""
    return list(
        FieldChange.objects.filter(record=record).select_related("changed_by").order_by("-id")[: limit + 1]
    )


def record_runs(*, record: Record, limit: int = RUNS_LIMIT) -> list[Run]:
    """Orchestration runs anchored on this record, newest first."""
    ct = ContentType.objects.get_for_model(Record)  # cached by ContentType's manager
    return list(
        Run.objects.filter(record_type=ct, record_id=record.pk)
        .select_related("orchestration", "version")
        .order_by("-id")[:limit]
    )


def run_stage_label(run: Run) -> str:
    """The label of the run's current stage, read from the version document (already loaded)."""
    if not run.current_stage:
        return ""
    for stage in run.version.document.get("stages", []):
        if stage.get("key") == run.current_stage:
            return str(stage.get("label") or run.current_stage)
    return run.current_stage


def launchable_orchestrations(*, record_type: RecordType) -> list[OrchestrationVersion]:
    """Active autolaunched orchestrations on this record type that a button can start: every
    input is optional or has a default, since the button asks for nothing."""
    versions = (
        OrchestrationVersion.objects.filter(
            is_active=True, start_type="autolaunched", record_type=record_type.api_name
        )
        .select_related("orchestration")
        .order_by("orchestration__label", "orchestration__api_name")
    )
    out = []
    for version in versions:
        start = engine.orchestration_doc(version).start
        if isinstance(start, AutolaunchedStart) and any(
            v.required and v.default is None for v in start.inputs
        ):
            continue
        out.append(version)
    return out


def usernames_by_id(ids: Iterable[Any]) -> dict[int, str]:
    """Usernames for the given user ids in one query (none when there are no ids)."""
    wanted = {int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}
    if not wanted:
        return {}
    User = get_user_model()
    return {
        pk: name for pk, name in User.objects.filter(pk__in=wanted).values_list("pk", User.USERNAME_FIELD)
    }


def user_ids_in(record_type: RecordType, values: Iterable[dict[str, Any]]) -> set[Any]:
    """The user ids that user-type fields of these value dicts refer to."""
    user_fields = [f["name"] for f in record_type.fields if f["type"] == FieldType.USER]
    return {v.get(name) for v in values for name in user_fields if v.get(name) is not None}
