"""Reads for work items. Each is one query whatever the number of items, records, groups and
queues, so the Work Guide and My Work cost the same for one item or thousands (asserted in
tests/workitems/test_guide__queries.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Case, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orchestration.models import Orchestration
from orchestration.people import person_name
from records.models import Record

from .models import Queue, WorkItem, WorkItemDraft, WorkItemStatus
from .rows import WorkItemRow

# What a list of items shows (step, orchestration, stage, assignee, holder) without a query per row.
LIST_RELATED = (
    "run__orchestration",
    "run__version",
    "step_run__stage_run",
    "assignee_user",
    "assignee_group",
    "assignee_queue",
    "claimed_by",
)


def actionable_q(user: Any) -> Q:
    """Items `user` may act on: assigned to them, to one of their groups, or to a queue they
    belong to directly or through a group. Group and queue membership are subqueries, so the
    caller's query stays one statement (no membership lists loaded first)."""
    groups = Group.objects.filter(user=user).values("pk")
    queues = Queue.objects.filter(Q(users=user) | Q(groups__user=user)).values("pk")
    return Q(assignee_user=user) | Q(assignee_group__in=groups) | Q(assignee_queue__in=queues)


def workitems_actionable(*, user: Any, record: models.Model | None = None) -> QuerySet[WorkItem]:
    """Open items `user` may act on, oldest first (the longest-waiting work comes first);
    only those on `record` when given."""
    if not (user.is_authenticated and user.is_active):
        return WorkItem.objects.none()
    qs = WorkItem.objects.filter(actionable_q(user), status=WorkItemStatus.ASSIGNED)
    if record is not None:
        # ContentType.get_for_model is cached by its manager: no query after the first.
        ct = ContentType.objects.get_for_model(record)
        qs = qs.filter(record_type=ct, record_id=record.pk)
    return qs.select_related(*LIST_RELATED).order_by("created_at", "id")


def workitem_on_record(*, pk: int, record: models.Model) -> WorkItem | None:
    """The item `pk` if it belongs to `record` (any status), with who completed it."""
    ct = ContentType.objects.get_for_model(record)
    return (
        WorkItem.objects.select_related("completed_by", "claimed_by", *LIST_RELATED)
        .filter(pk=pk, record_type=ct, record_id=record.pk)
        .first()
    )


def workitem_draft(*, item: WorkItem, user: Any) -> WorkItemDraft | None:
    """What `user` has typed into `item` so far, if anything."""
    if not user.is_authenticated:
        return None
    return WorkItemDraft.objects.filter(item=item, user=user).first()


def stage_label(item: WorkItem) -> str:
    """The label of the item's stage, from the run's version (parsed once per process), as
    orchestration.selectors.stage_labels gives it for many."""
    from orchestration import engine

    key = item.step_run.stage_run.key
    stage = next((st for st in engine.orchestration_doc(item.run.version).stages if st.key == key), None)
    return (stage.label or key) if stage is not None else key


def step_holders(run_ids: list[int]) -> dict[int, str]:
    """Who holds each step run's work in these runs (registry.WORK_HOLDERS): the open work
    item's assignee, else the last item's, `{step_run_id: label}`. One query."""
    rows = (
        WorkItem.objects.filter(run_id__in=run_ids)
        .select_related("assignee_user", "assignee_group", "assignee_queue", "claimed_by")
        .order_by("step_run_id", "-id")
    )
    out: dict[int, str] = {}
    open_seen: set[int] = set()
    for item in rows:
        label = item.assignee_label
        if item.claimed_by is not None:
            label = f"{label} (held by {person_name(item.claimed_by)})"
        is_open = item.status == WorkItemStatus.ASSIGNED
        # Newest first per step; an open item wins over a newer closed one (there is at most one).
        if item.step_run_id not in out or (is_open and item.step_run_id not in open_seen):
            out[item.step_run_id] = label
        if is_open:
            open_seen.add(item.step_run_id)
    return out


# --- the Work Items monitoring page (workitems/views/manage.py) ---------------------------------

# Each view of the page: which items, and the order they are paged in. The order is a column and
# the id as a tie-break, both in one direction, so a page boundary is one (value, id) pair (keyset
# paging: page N costs what page 1 costs, with 3,000,000 items). Each has a partial index
# (migration 0003_workitem_monitoring_indexes).
MANAGE_VIEWS: dict[str, tuple[str, str | None, bool]] = {
    # key: (label, order column or None for the id alone, descending)
    "open": ("Open", None, True),
    "overdue": ("Overdue", "due_at", False),  # the most overdue first
    "stalled": ("Stalled", "created_at", False),  # the longest waiting first
    "completed": ("Completed", "completed_at", True),  # the last completed first
}


@dataclass(frozen=True)
class ManageFilters:
    """What the Work Items page is asked to show; empty strings and None mean "any"."""

    view: str = "open"
    user: str = ""  # username of the assignee
    group: str = ""  # group name
    queue: str = ""  # queue api name
    orchestration: str = ""  # orchestration api name
    record_type: str = ""  # records.RecordType api name
    older_than_days: int | None = None


@dataclass(frozen=True)
class Cursor:
    """A page boundary: the order column's value (None for id-only orders) and the id."""

    value: datetime | None
    pk: int

    def encode(self) -> str:
        return f"{self.value.isoformat()}|{self.pk}" if self.value is not None else str(self.pk)

    @classmethod
    def decode(cls, raw: str, *, with_value: bool) -> Cursor | None:
        """The cursor in a query string, or None if it was tampered with (then: the first page)."""
        value_text, _, pk_text = raw.rpartition("|")
        if not pk_text.isdigit() or bool(value_text) != with_value:
            return None
        value = parse_datetime(value_text) if with_value else None
        if with_value and value is None:
            return None
        return cls(value=value, pk=int(pk_text))


@dataclass
class ManagePage:
    items: list[WorkItem]
    next_cursor: str  # "" when this is the last page
    prev_cursor: str  # "" when this is the first page


def workitems_manage_queryset(
    *,
    filters: ManageFilters,
    now: datetime | None = None,
    annotate: bool = True,
    named: dict[str, list[int]] | None = None,
) -> QuerySet[WorkItem]:
    """Items of one view of the Work Items page, filtered, unordered and unpaged, with the ids a
    row needs (run's orchestration and version, stage key, the record's name and record type).

    Deliberately few joins: with a dozen (users, groups, queues, orchestrations, versions…)
    PostgreSQL spent 60 ms planning a query that runs in 5 ms on 3,000,000 items. The small
    tables are read once per page instead (`workitems_manage_rows`). The record's name and type
    are correlated subqueries on the same row (one query however many records a page spans)."""
    now = now or timezone.now()
    record = Record.objects.filter(pk=OuterRef("record_id"))
    # get_for_model is cached by the ContentType manager: no query after the first.
    on_a_record = Q(record_type_id=ContentType.objects.get_for_model(Record).pk)
    qs: QuerySet[WorkItem] = WorkItem.objects.all()
    if annotate:
        qs = qs.defer("outputs").annotate(
            stage_key=F("step_run__stage_run__key"),
            run_orchestration_id=F("run__orchestration_id"),
            run_version_id=F("run__version_id"),
            record_name=Coalesce(
                Case(When(on_a_record, then=Subquery(record.values("name")[:1]))),
                F("run__record_label"),
                Value(""),
            ),
            record_type_ref=Case(When(on_a_record, then=Subquery(record.values("record_type_id")[:1]))),
        )
    if filters.view == "completed":
        qs = qs.filter(status=WorkItemStatus.COMPLETED)
    else:
        qs = qs.filter(status=WorkItemStatus.ASSIGNED)
    if filters.view == "overdue":
        qs = qs.filter(due_at__lt=now)
    qs = qs.filter(**(_named_ids(filters) if named is None else named))
    if filters.record_type:
        # The record type users know (records.RecordType) is the one the run's version starts on.
        qs = qs.filter(run__version__record_type=filters.record_type)
    if filters.older_than_days is not None:
        qs = qs.filter(created_at__lt=now - timedelta(days=filters.older_than_days))
    return qs


def _ids(qs: QuerySet[Any]) -> list[int]:
    return list(qs.values_list("pk", flat=True))


def _named_ids(filters: ManageFilters) -> dict[str, list[int]]:
    """The user, group, queue and orchestration filters as lookups on ids (a small query each).

    The items are then filtered on the ids as literals, so PostgreSQL's statistics say how many
    items the assignee has. Through a join it cannot know, and for an assignee with no items it
    walked the whole completed-items index (2.7 million entries, 0.5 s) for the page's 50."""
    found: dict[str, list[int]] = {}
    if filters.user:
        User = get_user_model()
        users = User._default_manager.filter(**{User.USERNAME_FIELD: filters.user})
        found["assignee_user_id__in"] = _ids(users)
    if filters.group:
        found["assignee_group_id__in"] = _ids(Group.objects.filter(name=filters.group))
    if filters.queue:
        found["assignee_queue_id__in"] = _ids(Queue.objects.filter(api_name=filters.queue))
    if filters.orchestration:
        orchestrations = Orchestration.objects.filter(api_name=filters.orchestration)
        found["run__orchestration_id__in"] = _ids(orchestrations)
    return found


def _keyset(qs: QuerySet[WorkItem], column: str | None, desc: bool, cursor: Cursor, *, forward: bool) -> Any:
    """Rows strictly after (`forward`) or before `cursor` in the order (column, id)."""
    later = desc != forward  # moving towards greater values?
    op = "gt" if later else "lt"
    if column is None:
        return qs.filter(**{f"pk__{op}": cursor.pk})
    # The redundant `column >= value` (or <=) lets PostgreSQL start the index scan at the cursor
    # instead of filtering every row before it.
    return qs.filter(**{f"{column}__{op}e": cursor.value}).filter(
        Q(**{f"{column}__{op}": cursor.value}) | Q(**{column: cursor.value, f"pk__{op}": cursor.pk})
    )


# An assignee with at most this many items of the view's status has them read through the
# assignee index and sorted (see `_few_for_assignee`).
ASSIGNEE_SORT_CAP = 2_000


def _few_for_assignee(filters: ManageFilters, named: dict[str, list[int]]) -> bool:
    """Whether the page is filtered to an assignee who holds at most ASSIGNEE_SORT_CAP items of
    the view's status: one query reading at most that many entries of the (assignee, status)
    index. PostgreSQL does not know how an assignee's items spread over the order column, and for
    one whose items are all at the far end of it (or who has none in the view) it walks the whole
    view's index (2.7 million completed items, 0.5 s) looking for the page's 50."""
    status = WorkItemStatus.COMPLETED if filters.view == "completed" else WorkItemStatus.ASSIGNED
    assignee = {k: v for k, v in named.items() if k.startswith("assignee_")}
    if not assignee:
        return False
    probe = WorkItem.objects.filter(status=status, **assignee)
    return probe.order_by()[: ASSIGNEE_SORT_CAP + 1].count() <= ASSIGNEE_SORT_CAP


def workitems_manage_page(
    *, filters: ManageFilters, after: str = "", before: str = "", per_page: int = 50
) -> ManagePage:
    """One page of the Work Items page's view: the first, the one after cursor `after`, or the
    one before cursor `before` (cursors come from a previous ManagePage). One query, plus one
    per name filter (`_named_ids`) and one when filtered by assignee (`_few_for_assignee`)."""
    _, column, desc = MANAGE_VIEWS[filters.view]
    now = timezone.now()
    named = _named_ids(filters)
    qs = workitems_manage_queryset(filters=filters, now=now, named=named)
    fields = [column, "pk"] if column else ["pk"]
    sort = _few_for_assignee(filters, named)
    plain = workitems_manage_queryset(filters=filters, now=now, annotate=False, named=named) if sort else qs

    def order(reverse: bool, *, expression: bool = False) -> list[Any]:
        down = desc != reverse
        if not expression:
            return [f"-{f}" if down else f for f in fields]
        # An expression of the column, which no index serves: PostgreSQL reads the matching
        # items by the assignee index and sorts them.
        keys: list[Any] = [F(column) + Value(timedelta(0)) if column else F("pk") + 0, F("pk")]
        return [k.desc() if down else k.asc() for k in keys[: len(fields)]]

    def fetch(cursor: Cursor | None, *, forward: bool, reverse: bool, limit: int) -> list[WorkItem]:
        def rows(base: QuerySet[WorkItem]) -> QuerySet[WorkItem]:
            return _keyset(base, column, desc, cursor, forward=forward) if cursor else base

        if not sort:
            return list(rows(qs).order_by(*order(reverse))[:limit])
        # The page's ids are picked first, from the items alone, then only those are joined.
        ids = rows(plain).order_by(*order(reverse, expression=True)).values("pk")[:limit]
        return list(qs.filter(pk__in=Subquery(ids)).order_by(*order(reverse)))

    def cursor_of(item: WorkItem) -> str:
        return Cursor(value=getattr(item, column) if column else None, pk=item.pk).encode()

    after_cursor = Cursor.decode(after, with_value=bool(column)) if after else None
    before_cursor = Cursor.decode(before, with_value=bool(column)) if before else None
    if before_cursor is not None:
        rows = fetch(before_cursor, forward=False, reverse=True, limit=per_page + 1)
        more_before = len(rows) > per_page
        items = list(reversed(rows[:per_page]))
        return ManagePage(
            items=items,
            next_cursor=cursor_of(items[-1]) if items else "",
            prev_cursor=cursor_of(items[0]) if items and more_before else "",
        )
    rows = fetch(after_cursor, forward=True, reverse=False, limit=per_page + 1)
    items = rows[:per_page]
    return ManagePage(
        items=items,
        next_cursor=cursor_of(items[-1]) if len(rows) > per_page else "",
        prev_cursor=cursor_of(items[0]) if items and after_cursor is not None else "",
    )


ManageRow = WorkItemRow  # the rows of the Work Items page (workitems/rows.py)


def workitems_manage_rows(
    *,
    items: list[WorkItem],
    groups: list[Group],
    queues: list[Queue],
    orchestrations: list[Any],
    record_types: list[Any],
) -> list[ManageRow]:
    """What each row of the Work Items page shows, for items from `workitems_manage_page`.

    The groups, queues, orchestrations and record types are the page's filter choices, already
    loaded; the people named (assignees, holders, completers) and the versions' stage labels
    take one query each, whatever the number of rows."""
    from django.contrib.auth import get_user_model

    from orchestration.selectors import stage_labels, work_item_emails

    from .rows import work_item_row

    user_ids = {
        pk
        for i in items
        for pk in (i.assignee_user_id, i.claimed_by_id, i.completed_by_id, i.delegated_from_id)
        if pk is not None
    }
    User = get_user_model()
    names = {u.pk: person_name(u) for u in User._default_manager.filter(pk__in=user_ids)} if user_ids else {}
    stages = stage_labels(getattr(i, "run_version_id") for i in items)  # noqa: B009 (an annotation)
    group_names = {g.pk: g.name for g in groups}
    queue_labels = {q.pk: q.label for q in queues}
    orchestration_labels = {o.pk: str(o) for o in orchestrations}
    types = {t.pk: t for t in record_types}
    emails = work_item_emails([i.pk for i in items])
    now = timezone.now()
    rows = []
    for item in items:
        row: Any = item  # the annotations of workitems_manage_queryset
        record_type = types.get(row.record_type_ref)
        rows.append(
            work_item_row(
                item,
                now=now,
                people=names,
                group_name=group_names.get(item.assignee_group_id or 0, ""),
                queue_label=queue_labels.get(item.assignee_queue_id or 0, ""),
                record_type_name=record_type.api_name if record_type else "",
                record_type_label=record_type.label if record_type else "",
                record_name=row.record_name,
                orchestration_label=orchestration_labels.get(row.run_orchestration_id, ""),
                stage_label=stages.get((row.run_version_id, row.stage_key), row.stage_key),
                completed_by=names.get(item.completed_by_id, "") if item.completed_by_id is not None else "",
                emails=[
                    e
                    for e in emails.get(item.pk, [])
                    if e.idempotency_key.startswith(f"workitem:{item.pk}:assignment:{item.assignments}:")
                ],
            )
        )
    return rows
