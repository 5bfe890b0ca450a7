"""Reads for work items. Each is one query whatever the number of items, records, groups and
queues, so the Work Guide and My Work cost the same for one item or thousands (asserted in
tests/workitems/test_guide__queries.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q, QuerySet

from .models import Queue, WorkItem, WorkItemDraft, WorkItemStatus

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
    """The label of the item's stage, read from the run's version document (already loaded)."""
    key = item.step_run.stage_run.key
    for stage in item.run.version.document.get("stages", []):
        if stage.get("key") == key:
            return str(stage.get("label") or key)
    return key
