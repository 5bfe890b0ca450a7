"""When an open work item is due and how urgent it is, changed by a manager: the item's run
gets an event saying who changed what, from what, and why."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from orchestration import engine

from ..models import Priority, WorkItem, WorkItemStatus
from .assignment import WorkItemClosed, _closed_message, _user_id
from .completion import workitem_log

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser

PERMISSION = "workitems.reassign_workitem"  # who may move work may also say when it is due
REASON_MAX_LENGTH = 500


def may_schedule(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(PERMISSION))


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def workitem_set_schedule(
    *,
    item: WorkItem,
    actor: Actor,
    due_at: dt.datetime | None,
    priority: int,
    reason: str = "",
) -> WorkItem:
    """Set an open item's due date (None: no due date) and priority (a `Priority` value).

    Writes `workitems.item.rescheduled` on the item's run with the old and new values (due date
    in ISO 8601, priority by its label) and the reason; nothing, and no event, when both are
    already so. Raises PermissionDenied (without `workitems.reassign_workitem`), WorkItemClosed
    (a completed or canceled item) or ValidationError ({field: message}: an unknown priority, a
    naive or newly past due date, a reason too long), changing nothing."""
    if not may_schedule(actor):
        raise PermissionDenied("you may not change when work items are due")
    errors: dict[str, str] = {}
    if priority not in Priority.values:
        errors["priority"] = "Choose one of the listed priorities."
    if due_at is not None and timezone.is_naive(due_at):
        errors["due_at"] = "A due date needs its time zone."
    reason = reason.strip()
    if len(reason) > REASON_MAX_LENGTH:
        errors["reason"] = f"Say why in at most {REASON_MAX_LENGTH} characters."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        # Lock order: the run first (as every engine change and every other item change does:
        # completion, claim, reassignment), then the item. The run lock is what serialises them;
        # the item's row lock keeps a writer that forgot the run from slipping in between.
        engine.lock_run(item.run_id)
        item = WorkItem.objects.select_for_update().select_related("step_run").get(pk=item.pk)
        if item.status != WorkItemStatus.ASSIGNED:
            raise WorkItemClosed(_closed_message(item), item)
        old = {"due_at": _iso(item.due_at), "priority": Priority(item.priority).label}
        # Leaving a past due date as it is (to change only the priority of an overdue item) is
        # fine; setting a new one in the past is a mistake worth stopping.
        if due_at is not None and due_at != item.due_at and due_at < timezone.now():
            raise ValidationError({"due_at": "The new due date is in the past: choose a later one."})
        if due_at == item.due_at and priority == item.priority:
            return item
        item.due_at, item.priority = due_at, priority
        item.save(update_fields=["due_at", "priority"])
        new = {"due_at": _iso(item.due_at), "priority": Priority(item.priority).label}
        workitem_log(item, "rescheduled", _user_id(actor), old=old, new=new, reason=reason)
        if old["due_at"] != new["due_at"]:
            from .. import sla

            sla.reschedule(item)  # the step's reminders and escalations follow the new due time
    return item
