"""The runs page: filters, counts by status, keyset pages, rows, and the bulk operations' runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from .. import transitions
from ..formatting import format_duration
from ..models import (
    Orchestration,
    OrchestrationVersion,
    Run,
    RunStatus,
    StageStatus,
    StepRun,
)
from ..registry import record_model_label, record_type_labels
from .base import MAX_ID, stage_labels

# --- runs page and bulk operations (monitoring) -----------------------------------------------

RUNS_PAGE_SIZE = 50
# Statuses a run can be canceled from (the state machine's).
CANCELABLE = tuple(sorted(transitions.RUN_ACTIONS["cancel"]))


@dataclass(frozen=True)
class RunFilter:
    """What the runs page is narrowed to; every field empty means all runs."""

    orchestration: str = ""
    version: int | None = None
    status: str = ""
    stage: str = ""
    record_type: str = ""
    record: int | None = None
    started_from: dt.date | None = None
    started_to: dt.date | None = None
    started_by: str = ""
    q: str = ""


def _record_content_type() -> ContentType | None:
    """The content type of the business records runs are anchored on: the record model
    registered with the engine (registry.record_model_label), not imported."""
    label = record_model_label()
    if label is None:
        return None
    try:
        return ContentType.objects.get_by_natural_key(*label.split("."))  # cached per process
    except ContentType.DoesNotExist:
        return None


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def runs_filtered(f: RunFilter) -> QuerySet[Run]:
    """Runs matching the filter, unordered.

    Orchestrations, versions, record types and users are looked up first (a small indexed query
    each, only when that filter is set) so that the run query carries literal ids: the planner
    can then estimate how many runs match and use the (column, -id) indexes on Run, where a
    subquery made it guess and scan a million rows. Dates become ranges on started_at rather
    than a function of it, which no index serves."""
    qs = Run.objects.all()
    if f.orchestration:
        ids = list(Orchestration.objects.filter(api_name=f.orchestration).values_list("id", flat=True))
        qs = qs.filter(orchestration_id__in=ids)
    versions: set[int] | None = None
    if f.version is not None:
        found = OrchestrationVersion.objects.filter(number=f.version)
        if f.orchestration:
            found = found.filter(orchestration__api_name=f.orchestration)
        versions = set(found.values_list("id", flat=True))
    if f.record_type:
        # The record type an orchestration runs on is kept on its versions (indexed), so this
        # needs neither the records app nor a join over a million records.
        of_type = set(
            OrchestrationVersion.objects.filter(record_type=f.record_type).values_list("id", flat=True)
        )
        versions = of_type if versions is None else versions & of_type
    if versions is not None:
        qs = qs.filter(version_id__in=sorted(versions))
    if f.status:
        qs = qs.filter(status=f.status)
    if f.stage:
        qs = qs.filter(current_stage=f.stage)
    if f.record is not None:
        if not 0 < f.record <= MAX_ID:
            return Run.objects.none()
        # Ids are per kind of record: the form means business records. Giving the content type
        # also lets the planner use the run_record index (record_type, record_id).
        qs = qs.filter(record_id=f.record)
        ct = _record_content_type()
        if ct is not None:
            qs = qs.filter(record_type=ct)
    if f.started_from is not None:
        qs = qs.filter(started_at__gte=_day_start(f.started_from))
    if f.started_to is not None:
        qs = qs.filter(started_at__lt=_day_start(f.started_to + dt.timedelta(days=1)))
    if f.started_by:
        user_model = get_user_model()
        users = list(
            user_model._default_manager.filter(**{user_model.USERNAME_FIELD: f.started_by}).values_list(
                "pk", flat=True
            )
        )
        qs = qs.filter(started_by_id__in=users)
    if f.q:
        qs = qs.filter(record_label__icontains=f.q)
    return qs


# A date filter matching at most this many runs is answered by reading them through the
# started_at index and sorting them (see `few_in_date_range`).
DATE_RANGE_SORT_CAP = 100_000


def few_in_date_range(f: RunFilter) -> bool:
    """Whether the filter has a date range holding at most DATE_RANGE_SORT_CAP runs: one query
    reading at most that many entries of the started_at index.

    Runs are created in started_at order, so a range of dates is a range of ids, but PostgreSQL
    does not know the two columns go together: for an older month it walks the id index from the
    newest run, skipping the hundreds of thousands started since, looking for a page (100 ms at a
    million runs), where reading the month's runs by date and sorting them takes a few ms. The
    pages then order by an expression of the id, which no index serves, so it does that."""
    if f.started_from is None and f.started_to is None:
        return False
    probe = runs_filtered(RunFilter(started_from=f.started_from, started_to=f.started_to))
    return probe.order_by()[: DATE_RANGE_SORT_CAP + 1].count() <= DATE_RANGE_SORT_CAP


def _id_order(*, descending: bool, sort: bool) -> Any:
    """Order by id, from the id index, or (`sort`) by an expression that makes PostgreSQL read
    the matching rows by another index and sort them (see `few_in_date_range`)."""
    if not sort:
        return "-id" if descending else "id"
    key = F("id") + 0
    return key.desc() if descending else key.asc()


# Counting a million runs exactly takes most of a second; past this many per status the badge
# says "1000+" and stays fast (each count reads at most this many index entries).
COUNT_CAP = 1_000


def run_status_counts(f: RunFilter, *, few_in_range: bool = False) -> dict[str, int]:
    """{status: number of matching runs, at most COUNT_CAP + 1} for every status. One query of
    one capped count per status; the status filter itself is left out, so the badges show what
    each status holds under the other filters. `few_in_range`: see `few_in_date_range`."""
    base = runs_filtered(replace(f, status="")).order_by()
    if few_in_range:
        # At most DATE_RANGE_SORT_CAP runs: counted exactly in one pass over the range.
        found = dict(base.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        return {status: min(found.get(status, 0), COUNT_CAP + 1) for status in RunStatus.values}
    parts: list[str] = []
    params: list[Any] = []
    for status in RunStatus.values:
        # Ordered like the index (status, -id), so the scan stops after the cap instead of
        # building a bitmap of every run of the status.
        capped = base.filter(status=status).order_by("-id").values("id")[: COUNT_CAP + 1]
        sql, p = capped.query.sql_with_params()
        # The SQL is Django's own compilation; every value stays a parameter.
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS capped_{len(parts)})")  # noqa: S608
        params.extend(p)
    with connections[base.db].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return dict(zip(RunStatus.values, row, strict=True))


@dataclass
class RunPage:
    runs: list[Run]
    # Keyset cursors: the id to pass as ?after= (newer runs) and ?before= (older runs), or None.
    newer: int | None
    older: int | None


def runs_for_display(qs: QuerySet[Run]) -> QuerySet[Run]:
    """What a list of runs shows, in the same query: orchestration, version, who started it.
    The JSON columns and the version's document can be large and a list shows none of them."""
    return qs.select_related("orchestration", "version", "started_by").defer(
        "variables", "inputs", "step_outputs", "error", "version__document"
    )


def run_page(
    f: RunFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    size: int = RUNS_PAGE_SIZE,
    few_in_range: bool = False,
) -> RunPage:
    """A page of matching runs, newest first, keyset-paginated on id: the cost of a page does not
    grow with how far back it is (no OFFSET). One query, two when paging newer reaches the top.
    `few_in_range`: see `few_in_date_range`."""
    matching = runs_filtered(f)

    def fetch(qs: QuerySet[Run], *, descending: bool) -> list[Run]:
        order = "-id" if descending else "id"
        if not few_in_range:
            return list(runs_for_display(qs).order_by(order)[: size + 1])
        # The page's ids are picked (and sorted) first, then only those rows are joined.
        ids = qs.order_by(_id_order(descending=descending, sort=True)).values("id")[: size + 1]
        return list(runs_for_display(Run.objects.filter(id__in=Subquery(ids))).order_by(order))

    if after is not None:
        rows = fetch(matching.filter(id__gt=after), descending=False)
        if len(rows) > size:
            rows = rows[:size]
            rows.reverse()
            return RunPage(rows, newer=rows[0].pk, older=rows[-1].pk)
        # Fewer than a page of newer runs: show the newest page instead, so it is full.
        before = None
    if before is not None:
        rows = fetch(matching.filter(id__lt=before), descending=True)
        more = len(rows) > size
        rows = rows[:size]
        return RunPage(rows, newer=rows[0].pk if rows else before - 1, older=rows[-1].pk if more else None)
    rows = fetch(matching, descending=True)
    return RunPage(rows[:size], newer=None, older=rows[size - 1].pk if len(rows) > size else None)


@dataclass
class RunRow:
    run: Run
    stage_label: str
    record_name: str
    record_url: str
    duration: dt.timedelta | None

    @property
    def duration_text(self) -> str:
        return format_duration(self.duration.total_seconds(), empty="") if self.duration is not None else ""


def _record_urls(runs: list[Run]) -> dict[tuple[int, int], str]:
    """{(content type id, record id): URL} for the runs' records: one query per kind of record
    on the page (one in practice). The record's required foreign keys come in the same query:
    a URL is built from them (a Record's URL names its type)."""
    by_type: dict[int, set[int]] = {}
    for run in runs:
        if run.record_type_id and run.record_id:
            by_type.setdefault(run.record_type_id, set()).add(run.record_id)
    urls: dict[tuple[int, int], str] = {}
    for ct_id, ids in by_type.items():
        model = ContentType.objects.get_for_id(ct_id).model_class()
        if model is None or not hasattr(model, "get_absolute_url"):
            continue
        required = [f.name for f in model._meta.concrete_fields if f.many_to_one and not f.null]
        for obj in model._default_manager.select_related(*required).filter(pk__in=ids):
            urls[(ct_id, obj.pk)] = obj.get_absolute_url()
    return urls


def run_rows(runs: list[Run], *, now: dt.datetime) -> list[RunRow]:
    """What the runs table shows for each run. At most two queries whatever the page size."""
    urls = _record_urls(runs)
    labels = stage_labels(run.version_id for run in runs if run.current_stage)
    rows = []
    for run in runs:
        end = run.ended_at or now
        rows.append(
            RunRow(
                run=run,
                stage_label=labels.get((run.version_id, run.current_stage), run.current_stage),
                record_name=run.record_label,
                record_url=urls.get((run.record_type_id or 0, run.record_id or 0), ""),
                duration=(end - run.started_at) if run.started_at else None,
            )
        )
    return rows


def run_filter_choices() -> dict[str, Any]:
    """Choices for the filter form: orchestrations (one query) and the record types
    orchestrations run on (one query, and one for their labels)."""
    types = list(
        OrchestrationVersion.objects.exclude(record_type="")
        .order_by("record_type")
        .values_list("record_type", flat=True)
        .distinct()
    )
    return {
        "orchestrations": list(Orchestration.objects.order_by("api_name").only("api_name", "label")),
        # (api name, label), by label: the labels from the app that owns record types.
        "record_types": sorted(record_type_labels(types).items(), key=lambda kv: (kv[1].lower(), kv[0])),
    }


def run_stage_choices(orchestration: str) -> list[tuple[str, str]]:
    """(key, label) of the stages of every version of an orchestration, in order of first
    appearance (newest version first). One query."""
    from .. import engine

    seen: dict[str, str] = {}
    versions = OrchestrationVersion.objects.filter(orchestration__api_name=orchestration).order_by("-number")
    for version in versions:
        for stage in engine.orchestration_doc(version).stages:
            seen.setdefault(stage.key, stage.label or stage.key)
    return list(seen.items())


def runs_for_bulk(f: RunFilter, action: str) -> QuerySet[Run]:
    """The matching runs for which a bulk action is valid, oldest first (so repeated batches
    work through them in a stable order): `cancel` takes open runs (in progress, suspended, in
    error); `retry` takes runs in error with a failed step in their current stage."""
    qs = runs_filtered(f)
    if action == "cancel":
        qs = qs.filter(status__in=CANCELABLE)
    elif action == "retry":
        qs = qs.filter(status=RunStatus.ERROR).filter(
            Exists(_failed_current_steps().filter(run_id=OuterRef("pk")))
        )
    else:
        raise ValueError(f"unknown bulk action {action!r}")
    return qs.order_by("id")


def _failed_current_steps() -> QuerySet[StepRun]:
    return StepRun.objects.filter(status=StageStatus.ERROR, stage_run__status=StageStatus.IN_PROGRESS)


def failed_step_ids(run_ids: list[int]) -> dict[int, list[int]]:
    """{run id: ids of its failed steps in the current stage}. One query."""
    out: dict[int, list[int]] = {}
    for run_id, step_id in (
        _failed_current_steps().filter(run_id__in=run_ids).order_by("id").values_list("run_id", "id")
    ):
        out.setdefault(run_id, []).append(step_id)
    return out
