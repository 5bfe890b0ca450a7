"""The Analytics page's work-item figures (registered as registry.work_figures): SLA breaches per
step and open items per holder, for the runs the page's filter selects. Two queries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, F, Q, QuerySet

from orchestration.registry import OpenWork, StepBreaches, WorkFigures

from .models import WorkItem, WorkItemStatus

TOP_WIP = 20


def work_figures(runs: QuerySet[Any], now: dt.datetime) -> WorkFigures:
    """`runs`: a queryset of run ids. Breached: an item with a due time completed after it, or
    still open past it, over the items with a due time; canceled items are left out (nobody had
    to finish them). Open items: the top TOP_WIP holders (a person, a group or a queue)."""
    items = WorkItem.objects.filter(run__in=runs).order_by()
    breaches = [
        StepBreaches(stage=row["step_run__stage_run__key"], step=row["step_run__key"], **_counts(row))
        for row in items.filter(due_at__isnull=False)
        .exclude(status=WorkItemStatus.CANCELED)
        .values("step_run__stage_run__key", "step_run__key")
        .annotate(
            with_due=Count("id"),
            breached=Count(
                "id",
                filter=Q(status=WorkItemStatus.COMPLETED, completed_at__gt=F("due_at"))
                | Q(status=WorkItemStatus.ASSIGNED, due_at__lt=now),
            ),
        )
    ]
    holders = (
        items.filter(status=WorkItemStatus.ASSIGNED)
        .values(
            "assignee_user__username",
            "assignee_user__first_name",
            "assignee_user__last_name",
            "assignee_group__name",
            "assignee_queue__label",
        )
        .annotate(n=Count("id"))
        .order_by("-n", "assignee_user__username", "assignee_group__name", "assignee_queue__label")[:TOP_WIP]
    )
    return WorkFigures(breaches=breaches, wip=[_open_work(row) for row in holders])


def _counts(row: Any) -> dict[str, int]:
    return {"with_due": row["with_due"], "breached": row["breached"]}


def _open_work(row: Any) -> OpenWork:
    if row["assignee_user__username"] is not None:
        name = f"{row['assignee_user__first_name']} {row['assignee_user__last_name']}".strip()
        return OpenWork(holder=name or row["assignee_user__username"], kind="user", count=row["n"])
    if row["assignee_group__name"] is not None:
        return OpenWork(holder=f"group {row['assignee_group__name']}", kind="group", count=row["n"])
    return OpenWork(holder=f"queue {row['assignee_queue__label']}", kind="queue", count=row["n"])
