"""The Analytics page's work-item figures: SLA breaches per step and open items per holder.

Kept in WorkRollup rows, one per partition (orchestration/rollup.py: the runs of one
orchestration started on one day), version and step, rebuilt with the engine's rows
(`rollup_part`, registry.ROLLUP_PARTS) and read back for a scope (`work_figures`,
registry.WORK_FIGURES) in one query, and one per kind of holder for the names of the top ones."""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.utils import timezone

from orchestration.people import person_name
from orchestration.registry import OpenWork, RollupScope, RollupTable, StepBreaches, WorkFigures
from orchestration.selectors.analytics import scope_rows

from .models import Queue, WorkItem, WorkItemStatus, WorkRollup

TOP_WIP = 20
TABLE = RollupTable(
    model=WorkRollup,
    key=("version_id", "stage", "step"),
    sums=("with_due", "breached", "open_overdue"),
    counters=("holders",),
    sorted_lists=("open_due",),
)


def rollup_part(day: dt.date, orchestration_id: int, runs: QuerySet[Any]) -> int:
    """Replace the partition's WorkRollup rows. Breached: an item with a due time completed
    after it, or still open past it (decided when the page is read), over the items with a due
    time; canceled items are left out (nobody had to finish them). One query to read, two to
    write."""
    rows: dict[tuple[int, str, str], WorkRollup] = {}
    now = timezone.now()
    items = (
        WorkItem.objects.filter(run__in=runs.values("id"))
        .order_by()
        .values_list(
            "run__version_id",
            "step_run__stage_run__key",
            "step_run__key",
            "status",
            "due_at",
            "completed_at",
            "assignee_user_id",
            "assignee_group_id",
            "assignee_queue_id",
        )
    )
    for version_id, stage, step, status, due, done_at, user, group, queue in items:
        key = (version_id, stage, step)
        row = rows.get(key)
        if row is None:
            row = rows[key] = WorkRollup(
                day=day, orchestration_id=orchestration_id, version_id=version_id, stage=stage, step=step
            )
        if status == WorkItemStatus.ASSIGNED:
            if due is not None and due <= now:
                row.open_overdue += 1  # open past due now: so at any later reading too
            elif due is not None:
                bisect.insort(row.open_due, due.timestamp())
            holder = f"user:{user}" if user else f"group:{group}" if group else f"queue:{queue}"
            row.holders[holder] = row.holders.get(holder, 0) + 1
        elif status == WorkItemStatus.COMPLETED and due is not None:
            row.with_due += 1
            if done_at is not None and done_at > due:
                row.breached += 1
    WorkRollup.objects.filter(day=day, orchestration_id=orchestration_id).delete()
    WorkRollup.objects.bulk_create(rows.values())
    return len(rows)


def work_figures(scope: RollupScope, now: dt.datetime) -> WorkFigures:
    """Breaches per step (items still open count as breached once past due, as of `now`), and
    the TOP_WIP holders with the most open items."""
    breaches: dict[tuple[str, str], list[int]] = {}
    holders: dict[str, int] = {}
    moment = now.timestamp()
    for stage, step, with_due, breached, overdue, open_due, held in scope_rows(WorkRollup, scope).values_list(
        "stage", "step", "with_due", "breached", "open_overdue", "open_due", "holders"
    ):
        if with_due or overdue or open_due:
            b = breaches.setdefault((stage, step), [0, 0])
            b[0] += with_due + overdue + len(open_due)
            b[1] += breached + overdue + bisect.bisect_left(open_due, moment)
        for holder, n in held.items():
            holders[holder] = holders.get(holder, 0) + n
    top = sorted(holders.items(), key=lambda h: (-h[1], h[0]))[:TOP_WIP]
    return WorkFigures(
        breaches=[
            StepBreaches(stage=k[0], step=k[1], with_due=w, breached=b) for k, (w, b) in breaches.items()
        ],
        wip=_named(top),
    )


def _named(top: list[tuple[str, int]]) -> list[OpenWork]:
    """The holders' names: a query per kind of holder among them."""
    ids: dict[str, list[int]] = {"user": [], "group": [], "queue": []}
    for holder, _ in top:
        kind, _, pk = holder.partition(":")
        if pk.isdigit():
            ids[kind].append(int(pk))
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=ids["user"])} if ids["user"] else {}
    groups = dict(Group.objects.filter(pk__in=ids["group"]).values_list("pk", "name")) if ids["group"] else {}
    queues = (
        dict(Queue.objects.filter(pk__in=ids["queue"]).values_list("pk", "label")) if ids["queue"] else {}
    )
    out = []
    for holder, n in top:
        kind, _, pk = holder.partition(":")
        key = int(pk) if pk.isdigit() else 0
        if kind == "user" and key in users:
            out.append(OpenWork(holder=person_name(users[key]), kind="user", count=n))
        elif kind == "group" and key in groups:
            out.append(OpenWork(holder=f"group {groups[key]}", kind="group", count=n))
        elif kind == "queue" and key in queues:
            out.append(OpenWork(holder=f"queue {queues[key]}", kind="queue", count=n))
    return out
