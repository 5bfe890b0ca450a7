"""Acting on a work item: completing it (its screen flow's values become the step's outputs),
claiming and releasing it, reassigning one or many."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from orchestration import engine, hot, logcontext
from orchestration.definitions import ScreenFlow, Step
from orchestration.flows import screen_flow_validate
from orchestration.models import Run
from orchestration.people import person_name
from orchestration.services import StepNotOpen, run_event_add, step_complete_locked

from ..models import Queue, WorkItem, WorkItemStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser
from .assignment import WorkItemClosed, _closed_message, _same_assignee, _user_id, may_act

log = logging.getLogger(__name__)
User = get_user_model()

# --- completion -------------------------------------------------------------------------------


def screen_flow_for(item: WorkItem) -> ScreenFlow:
    sr = item.step_run
    assert sr.flow_version is not None
    return engine.flow_doc(sr.flow_version)  # type: ignore[no-any-return]


class ClaimRequired(PermissionDenied):
    """The item's step says `claim_required` and the person has not claimed the item."""


CLAIM_REQUIRED = "Claim this item to complete it: this step is completed by the team member who holds it."


def step_of(item: WorkItem, run: Run | None = None) -> Step:
    """The item's step as the version its run started on defines it (parsed once per process)."""
    version = (run or item.run).version
    key = item.step_run.key
    return next(t for s in engine.orchestration_doc(version).stages for t in s.steps if t.key == key)


def claim_needed(item: WorkItem, user: Any, run: Run | None = None) -> bool:
    """Whether `user` must claim `item` before finishing it: a group or queue item of a step with
    `claim_required` that they do not hold. An item for one user is theirs already."""
    if item.assignee_user_id is not None or item.claimed_by_id == getattr(user, "pk", None):
        return False
    return step_of(item, run).claim_required


def _in_item_context[T](fn: Callable[..., T]) -> Callable[..., T]:
    """Log lines made while acting on an item name it and its run (orchestration.logcontext)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        item = kwargs.get("item")
        with logcontext.bind(work_item_id=getattr(item, "pk", None), run_id=getattr(item, "run_id", None)):
            return fn(*args, **kwargs)

    return wrapper


@_in_item_context
def workitem_complete(*, item: WorkItem, user: Actor, data: dict[str, Any]) -> WorkItem:
    """Validate `data` against every screen of the item's flow, store the outputs, complete
    the step and advance the run. Exactly one of several concurrent completions counts.

    Raises PermissionDenied (ClaimRequired for a `claim_required` step's group or queue item
    the person has not claimed), ValidationError (per-field messages) or WorkItemClosed."""
    if not may_act(item, user):
        raise PermissionDenied("you may not act on this work item")
    flow = screen_flow_for(item)
    clean, errors = screen_flow_validate(flow, data)
    if errors:
        raise ValidationError({k: [v] for k, v in errors.items()})
    with transaction.atomic():
        # Lock order: the run first (as every engine change does), then the item.
        run = engine.lock_run(item.run_id)
        checked, item = item, hot.get(WorkItem, item.pk, join=["step_run"])
        if item.status != WorkItemStatus.ASSIGNED:
            raise WorkItemClosed(_closed_message(item), item)
        # Asked again on the row read under the lock: the item may have been reassigned since
        # the caller loaded it (a page left open while a manager moved the item to someone else).
        if not _same_assignee(item, checked) and not may_act(item, user):
            raise PermissionDenied("this item has been reassigned: you may no longer act on it")
        if item.claimed_by_id is not None and item.claimed_by_id != user.pk:
            raise PermissionDenied("another person has claimed this item")
        # Read on the locked row: a claim released (or the item reassigned) since the page
        # loaded counts as not claimed.
        if claim_needed(item, user, run):
            raise ClaimRequired(CLAIM_REQUIRED)
        if run.status not in ("in_progress", "error"):
            raise WorkItemClosed(
                f"The run is {run.get_status_display().lower()}; this item cannot be completed now.", item
            )
        # We hold the run lock and read the item assigned under it: nobody else completes it now.
        item.status, item.completed_at, item.outputs = WorkItemStatus.COMPLETED, timezone.now(), clean
        item.completed_by_id = user.pk
        hot.update(item, ["status", "completed_by", "completed_at", "outputs"])
        try:
            step_complete_locked(run=run, step_run=item.step_run, outputs=clean, actor_id=_user_id(user))
        except StepNotOpen as exc:
            raise WorkItemClosed(str(exc), item) from exc
    return item


def workitem_log(item: WorkItem, name: str, actor_id: int | None, **payload: Any) -> None:
    run_event_add(
        run_id=item.run_id,
        name=f"workitems.item.{name}",
        actor_id=actor_id,
        payload={"work_item": item.pk, **payload},
        step=item.step_run.key,
    )


@_in_item_context
def workitem_reassign(
    *,
    item: WorkItem,
    actor: Actor,
    user: Any = None,
    group: Group | None = None,
    queue: Queue | None = None,
    reason: str = "",
) -> WorkItem:
    """Move an open item to another user, group or queue; the new assignee is emailed."""
    if not (actor.is_authenticated and actor.has_perm("workitems.reassign_workitem")):
        raise PermissionDenied("you may not reassign work items")
    if sum(x is not None for x in (user, group, queue)) != 1:
        raise ValidationError("choose exactly one new assignee: a user, a group or a queue")
    with transaction.atomic():
        engine.lock_run(item.run_id)
        item = WorkItem.objects.select_related("step_run", "run").get(pk=item.pk)
        if item.status != WorkItemStatus.ASSIGNED:
            raise WorkItemClosed(_closed_message(item), item)
        reassign_locked(item, actor_id=int(actor.pk), reason=reason, user=user, group=group, queue=queue)
    return item


def reassign_locked(
    item: WorkItem,
    *,
    actor_id: int | None,
    reason: str,
    user: Any = None,
    group: Group | None = None,
    queue: Queue | None = None,
    now: Any = None,
    delegated_from: Any = None,
) -> None:
    """Move an open item read under its run's lock (a manager's reassignment, or an SLA rule's
    with `actor_id` None): a new assignment, the claim dropped, the event, the new assignee's
    emails, and its SLA rules re-timed for the new assignment (workitems/sla.py)."""
    from .. import delegation, sla

    before = item.assignee_label
    if user is not None and delegated_from is None:
        # To someone away: their delegate takes it (workitems/delegation.py).
        routed = delegation.route({"assignee_user": user})
        user, delegated_from = routed["assignee_user"], routed["delegated_from"]
    item.assignee_user, item.assignee_group, item.assignee_queue = user, group, queue
    item.delegated_from = delegated_from
    item.claimed_by = None
    # A new assignment: its emails have keys of their own (emails.assignment_email_key).
    item.assignments += 1
    item.assigned_at = now or timezone.now()
    item.save(
        update_fields=[
            "assignee_user", "assignee_group", "assignee_queue", "claimed_by", "assignments", "assigned_at",
            "delegated_from",
        ]
    )  # fmt: skip
    extra = {"delegated_from": person_name(delegated_from)} if delegated_from is not None else {}
    workitem_log(item, "reassigned", actor_id, old=before, new=item.assignee_label, reason=reason, **extra)
    from ..emails import assignment_emails_enabled, assignment_emails_write

    if assignment_emails_enabled(item):
        assignment_emails_write(item=item)
    if actor_id is not None:
        sla.cancel_reassigning_rules(item, actor_id=actor_id)
    sla.reschedule(item)


@_in_item_context
def workitem_claim(*, item: WorkItem, user: Actor) -> WorkItem:
    """Take a group or queue item: others then see who holds it."""
    if not may_act(item, user):
        raise PermissionDenied("you may not act on this work item")
    with transaction.atomic():
        engine.lock_run(item.run_id)
        checked, item = item, hot.get(WorkItem, item.pk, join=["step_run"])
        if item.status != WorkItemStatus.ASSIGNED:
            raise WorkItemClosed(_closed_message(item), item)
        # Asked again on the row read under the lock, as workitem_complete does: a manager may
        # have moved the item since the caller loaded it, and a claim by someone who may no
        # longer act would lock out the new assignees (only the claimer can release it).
        if not _same_assignee(item, checked) and not may_act(item, user):
            raise PermissionDenied("this item has been reassigned: you may no longer act on it")
        if item.assignee_user_id is not None:
            raise ValidationError("this item is assigned to one person; there is nothing to claim")
        if item.claimed_by_id not in (None, user.pk):
            raise ValidationError("someone else already holds this item")
        item.claimed_by_id = user.pk
        hot.update(item, ["claimed_by"])
        workitem_log(item, "claimed", _user_id(user))
    return item


@_in_item_context
def workitem_release(*, item: WorkItem, user: Actor) -> WorkItem:
    with transaction.atomic():
        engine.lock_run(item.run_id)
        item = WorkItem.objects.select_related("step_run", "run").get(pk=item.pk)
        if item.status != WorkItemStatus.ASSIGNED:
            # A closed item keeps who held it (who was on it when it closed): nothing to release.
            raise WorkItemClosed(_closed_message(item), item)
        if item.claimed_by_id != user.pk:
            raise PermissionDenied("you do not hold this item")
        item.claimed_by = None
        item.save(update_fields=["claimed_by"])
        workitem_log(item, "released", _user_id(user))
    return item


@dataclass
class ReassignOutcome:
    """What `workitems_reassign_many` did: the items moved, and why each other one was not."""

    reassigned: list[WorkItem] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (item id, sentence saying why)


def workitems_reassign_many(
    *,
    item_ids: Collection[int],
    actor: Actor,
    user: Any = None,
    group: Group | None = None,
    queue: Queue | None = None,
    reason: str = "",
) -> ReassignOutcome:
    """Move each open item of `item_ids` to one new user, group or queue (see `workitem_reassign`:
    an event with the actor, old and new assignee and reason; the new assignee is emailed).

    Each item moves in a transaction of its own, holding only its own run's lock (never two run
    locks at once): an item completed or canceled meanwhile fails alone and is reported, the
    others still move. Raises PermissionDenied, before touching anything, if the
    actor may not reassign."""
    if not (actor.is_authenticated and actor.has_perm("workitems.reassign_workitem")):
        raise PermissionDenied("you may not reassign work items")
    outcome = ReassignOutcome()
    items = {i.pk: i for i in WorkItem.objects.filter(pk__in=item_ids).order_by("pk")}
    for pk in sorted(set(item_ids)):
        item = items.get(pk)
        if item is None:
            outcome.failed.append((pk, f"Item {pk} does not exist (any more)."))
            continue
        try:
            moved = workitem_reassign(
                item=item, actor=actor, user=user, group=group, queue=queue, reason=reason
            )
        except WorkItemClosed as exc:
            # "This item was already completed by bob …" -> "“Check” (item 7) was already completed by bob …"
            said = str(exc).removeprefix("This item was ")
            outcome.failed.append((pk, f"“{item.label}” (item {pk}) was not reassigned: {said}"))
        except ValidationError as exc:
            outcome.failed.append(
                (pk, f"“{item.label}” (item {pk}) was not reassigned: {' '.join(exc.messages)}")
            )
        else:
            outcome.reassigned.append(moved)
    return outcome
