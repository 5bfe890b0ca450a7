"""Reads for My Work and its navigation badge: the open items a person may act on, on every record.

Each function runs a fixed number of queries whatever the number of items, records, groups and
queues (asserted in tests/workitems/test_mywork__queries.py): group and queue membership are
subqueries, and the record each item is on is read with correlated subqueries on the same row.

Work items point at their record generically (content type + id). The record pages, names and
types belong to `records.Record`, the model runs are anchored on; an item on another model (a run
launched through the API on something else) is listed with the run's record label and no link.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, F, OuterRef, Q, QuerySet, Subquery, TextField, Value, When
from django.db.models.functions import Cast, Coalesce, Lower
from django.utils import timezone
from django.utils.http import urlencode

from orchestration import engine
from orchestration.models import Orchestration, OrchestrationVersion
from orchestration.people import person_name
from orchestration.selectors import stage_labels
from records.models import Record, RecordType

from .models import SavedFilter, WorkItem, WorkItemStatus
from .rows import MINUTE, WorkItemRow, item_link, work_item_row  # noqa: F401  (MINUTE, item_link: their old home)
from .selectors import actionable_q

SORTS = {
    "oldest": "Oldest first",
    "newest": "Newest first",
    "priority": "Priority, highest first",
    "due": "Due soonest first",
    "record": "Record name, A to Z",
}
DEFAULT_SORT = "oldest"  # the item that has waited longest is the one to pick up first
SEARCH_MAX_LENGTH = 100
# The parameters that make a view of My Work: what the address carries, what a saved view keeps.
PARAMS = ("q", "orchestration", "record_type", "sort")
_API_NAME = re.compile(r"[-\w]{1,80}")  # what an orchestration's or a record type's api name can be


@dataclass(frozen=True)
class MyWorkView:
    """What My Work shows: a search, two filters and a sort, read from a query string."""

    q: str = ""
    orchestration: str = ""
    record_type: str = ""
    sort: str = DEFAULT_SORT
    error: str = ""  # why the search typed was not applied ("" when it was)
    typed: str = ""  # the search as typed, shown back in the box (even when refused)

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.orchestration or self.record_type)

    @property
    def query(self) -> str:
        """The query string of this view, its parameters in a fixed order and the default sort
        left out: the same view always has the same text (saved views are compared by it)."""
        values = {k: getattr(self, k) for k in PARAMS}
        if values["sort"] == DEFAULT_SORT:
            values["sort"] = ""
        return urlencode({k: v for k, v in values.items() if v})


def my_work_view(params: Mapping[str, Any]) -> MyWorkView:
    """The view a query string (the address's, or a saved view's) asks for. Parameters other
    than PARAMS are ignored; values are trimmed; an unknown sort is the default one; a filter
    value no api name can have is dropped; a search longer than SEARCH_MAX_LENGTH is not applied
    and `error` says why."""

    def value(key: str) -> str:
        raw = params.get(key, "")
        return " ".join(str(raw).split()) if key == "q" else str(raw).strip()

    typed, error = value("q"), ""
    q = typed
    if len(typed) > SEARCH_MAX_LENGTH:
        q, error = (
            "",
            (
                f"Search for at most {SEARCH_MAX_LENGTH} characters (you typed {len(typed)}): "
                "the list below is not searched."
            ),
        )
    orchestration, record_type = (v if _API_NAME.fullmatch(v := value(k)) else "" for k in PARAMS[1:3])
    sort = value("sort")
    return MyWorkView(
        q=q,
        orchestration=orchestration,
        record_type=record_type,
        sort=sort if sort in SORTS else DEFAULT_SORT,
        error=error,
        typed=typed,
    )


def _on_a_record() -> Q:
    """The item's run is anchored on a records.Record (not on some other model)."""
    return Q(record_type__app_label=Record._meta.app_label, record_type__model=Record._meta.model_name)


def actionable_items(*, user: Any) -> QuerySet[WorkItem]:
    """Open items assigned to `user`, to one of their groups, or to a queue they belong to
    directly or through one of their groups: the same items the Work Guide lists."""
    return WorkItem.objects.filter(actionable_q(user), status=WorkItemStatus.ASSIGNED)


def my_work_count(*, user: Any) -> int:
    """How many open items the user may act on: the navigation badge (one COUNT query).

    Counted as a UNION ALL of the three kinds of assignee rather than one OR: each branch uses
    its (assignee_*, status) index, where the OR made PostgreSQL scan every open item (about
    400 ms with 300,000 open items, on every page). The branches are disjoint: an item has
    exactly one kind of assignee (a check constraint)."""
    from django.contrib.auth.models import Group

    from .models import Queue

    open_items = WorkItem.objects.filter(status=WorkItemStatus.ASSIGNED).values("pk")
    groups = Group.objects.filter(user=user).values("pk")
    queues = Queue.objects.filter(Q(users=user) | Q(groups__user=user)).values("pk")
    return (
        open_items.filter(assignee_user=user)
        .union(
            open_items.filter(assignee_group__in=groups),
            open_items.filter(assignee_queue__in=queues),
            all=True,
        )
        .count()
    )


def my_work_stage_labels(*, user: Any) -> dict[tuple[int, str], str]:
    """The stage labels of every version the user has open items in (one query): a search
    matches stages by label, and the rows are then labelled from the same answer."""
    versions = OrchestrationVersion.objects.filter(
        pk__in=actionable_items(user=user).values("run__version_id")
    ).only("pk", "checksum", "document")
    return {(v.pk, s.key): s.label or s.key for v in versions for s in engine.orchestration_doc(v).stages}


def _search_q(q: str, stages: Mapping[tuple[int, str], str]) -> Q:
    """Items whose record name, label, stage label or run variables contain `q` (any case)."""
    match = (
        Q(record_name__icontains=q)
        | Q(label__icontains=q)
        # The variables' JSON text: values (and names) of every variable, nested ones included.
        | Q(variables_text__icontains=q)
    )
    # JSON text escapes quotes and backslashes (both databases) and, on SQLite, non-ASCII letters
    # ("Zoë" is stored as "Zo\u00eb"): look for the escaped spelling too.
    escaped = json.dumps(q)[1:-1]
    if escaped != q:
        match |= Q(variables_text__icontains=escaped)
    by_version: dict[int, list[str]] = {}
    for (version_id, key), label in stages.items():
        if q.casefold() in label.casefold():
            by_version.setdefault(version_id, []).append(key)
    for version_id, keys in by_version.items():
        match |= Q(run__version_id=version_id, stage_key__in=keys)
    return match


def my_work_items(
    *,
    user: Any,
    orchestration: str = "",
    record_type: str = "",
    sort: str = DEFAULT_SORT,
    q: str = "",
    stages: Mapping[tuple[int, str], str] | None = None,
) -> QuerySet[WorkItem]:
    """The user's open items with what the My Work table shows, filtered by orchestration and
    record type (api names; empty means all) and by the search `q`, in the order `sort` (a key
    of SORTS) names. A search matches stage labels among `stages` (my_work_stage_labels)."""
    record = Record.objects.filter(pk=OuterRef("record_id"))
    qs = (
        actionable_items(user=user)
        .select_related(
            "run__orchestration",
            "assignee_user",
            "assignee_group",
            "assignee_queue",
            "claimed_by",
            "delegated_from",
        )
        # The run's JSON columns can be large and the table shows none of them.
        .defer("run__variables", "run__inputs", "run__step_outputs", "outputs")
        .annotate(
            stage_key=F("step_run__stage_run__key"),
            record_name=Coalesce(
                Case(When(_on_a_record(), then=Subquery(record.values("name")[:1]))),
                F("run__record_label"),
                Value(""),
            ),
            record_type_name=Case(
                When(_on_a_record(), then=Subquery(record.values("record_type__api_name")[:1])),
                default=Value(""),
            ),
            record_type_label=Case(
                When(_on_a_record(), then=Subquery(record.values("record_type__label")[:1])),
                default=Value(""),
            ),
        )
    )
    if q:
        # Cast in the WHERE clause only (alias, not annotate): the page never loads the variables.
        qs = qs.alias(variables_text=Cast("run__variables", TextField())).filter(_search_q(q, stages or {}))
    if orchestration:
        qs = qs.filter(run__orchestration__api_name=orchestration)
    if record_type:
        qs = qs.filter(
            _on_a_record(),
            record_id__in=Record.objects.filter(record_type__api_name=record_type).values("pk"),
        )
    if sort == "newest":
        return qs.order_by("-created_at", "-id")
    if sort == "record":
        return qs.order_by(Lower("record_name"), "created_at", "id")
    if sort == "priority":
        return qs.order_by("-priority", "created_at", "id")  # equal priorities: the oldest first
    if sort == "due":
        # The most overdue first, then the soonest due; items without a due time last, oldest first.
        return qs.order_by(F("due_at").asc(nulls_last=True), "created_at", "id")
    return qs.order_by("created_at", "id")


def my_work_orchestrations(*, user: Any) -> list[Orchestration]:
    """The orchestrations the user has open items in: the choices of the filter."""
    ids = actionable_items(user=user).values("run__orchestration_id")
    return list(Orchestration.objects.filter(pk__in=ids).order_by("label", "api_name"))


def my_work_record_types(*, user: Any) -> list[RecordType]:
    """The record types the user has open items on: the choices of the filter."""
    record_ids = actionable_items(user=user).filter(_on_a_record()).values("record_id")
    type_ids = Record.objects.filter(pk__in=record_ids).values("record_type_id")
    return list(RecordType.objects.filter(pk__in=type_ids).order_by("label"))


MyWorkRow = WorkItemRow  # the rows of My Work (workitems/rows.py)


def my_work_rows(
    *,
    items: list[WorkItem],
    user: Any,
    highlight: int | None = None,
    stages: Mapping[tuple[int, str], str] | None = None,
) -> list[MyWorkRow]:
    """What each row of the table shows, for items from `my_work_items` (one more query, for
    stage labels, unless `stages` already has them). `highlight` is the id of an item to mark
    (a link to My Work with ?item=)."""
    if stages is None:
        stages = stage_labels(i.run.version_id for i in items)
    now: datetime = timezone.now()
    rows = []
    for item in items:
        people = {
            u.pk: ("you" if u.pk == user.pk else person_name(u))
            for u in (item.assignee_user, item.claimed_by, item.delegated_from)
            if u is not None
        }
        stage_key = item.stage_key  # type: ignore[attr-defined]
        rows.append(
            work_item_row(
                item,
                now=now,
                people=people,
                group_name=item.assignee_group.name if item.assignee_group_id else "",  # type: ignore[union-attr]
                queue_label=item.assignee_queue.label if item.assignee_queue_id else "",  # type: ignore[union-attr]
                record_type_name=item.record_type_name,  # type: ignore[attr-defined]
                record_type_label=item.record_type_label,  # type: ignore[attr-defined]
                record_name=item.record_name,  # type: ignore[attr-defined]
                orchestration_label=str(item.run.orchestration),
                stage_label=stages.get((item.run.version_id, stage_key), stage_key),
                highlighted=item.pk == highlight,
            )
        )
    return rows


# --- saved views --------------------------------------------------------------------------------


def saved_views(*, user: Any) -> list[SavedFilter]:
    """The user's saved views of My Work, by name (one query)."""
    return list(SavedFilter.objects.filter(user=user).order_by("name", "id"))


def saved_view(*, user: Any, pk: int) -> SavedFilter | None:
    """One of the user's saved views; None for another person's, as for one that does not exist."""
    return SavedFilter.objects.filter(user=user, pk=pk).first()
