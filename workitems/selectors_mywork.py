"""Reads for My Work and its navigation badge: the open items a person may act on, on every record.

Each function runs a fixed number of queries whatever the number of items, records, groups and
queues (asserted in tests/workitems/test_mywork__queries.py): group and queue membership are
subqueries, and the record each item is on is read with correlated subqueries on the same row.

Work items point at their record generically (content type + id). The record pages, names and
types belong to `records.Record`, the model runs are anchored on; an item on another model (a run
launched through the API on something else) is listed with the run's record label and no link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Case, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from orchestration.models import Orchestration
from orchestration.selectors import stage_labels
from records.models import Record, RecordType

from .models import WorkItem, WorkItemStatus
from .rows import MINUTE, WorkItemRow, item_link, work_item_row  # noqa: F401  (MINUTE, item_link: their old home)
from .selectors import actionable_q

SORTS = {
    "oldest": "Oldest first",
    "newest": "Newest first",
    "record": "Record name, A to Z",
}
DEFAULT_SORT = "oldest"  # the item that has waited longest is the one to pick up first


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


def my_work_items(
    *, user: Any, orchestration: str = "", record_type: str = "", sort: str = DEFAULT_SORT
) -> QuerySet[WorkItem]:
    """The user's open items with what the My Work table shows, filtered by orchestration and
    record type (api names; empty means all), in the order `sort` (a key of SORTS) names."""
    record = Record.objects.filter(pk=OuterRef("record_id"))
    qs = (
        actionable_items(user=user)
        .select_related(
            "run__orchestration", "assignee_user", "assignee_group", "assignee_queue", "claimed_by"
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


def my_work_rows(*, items: list[WorkItem], user: Any, highlight: int | None = None) -> list[MyWorkRow]:
    """What each row of the table shows, for items from `my_work_items` (one more query, for
    stage labels). `highlight` is the id of an item to mark (a link to My Work with ?item=)."""
    stages = stage_labels(i.run.version_id for i in items)
    now: datetime = timezone.now()
    rows = []
    for item in items:
        people = {
            u.pk: ("you" if u.pk == user.pk else u.get_username())
            for u in (item.assignee_user, item.claimed_by)
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
