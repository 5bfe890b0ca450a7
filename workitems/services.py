"""Writes for work items: creation by the interactive step kind, completion, claim/release,
reassignment, and assignment emails."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from orchestration import engine, expressions, hot, logcontext
from orchestration.definitions import Assignee, ScreenFlow
from orchestration.flows import screen_flow_validate, typed_inputs
from orchestration.models import Run, StepRun
from orchestration.registry import register_step_kind
from orchestration.services import StepNotOpen, run_event_add, step_complete_locked
from orchestration.values import TypeCoercionError, to_json, to_jsonable

from .models import Queue, WorkItem, WorkItemDraft, WorkItemStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser

log = logging.getLogger(__name__)
User = get_user_model()


def _user_id(user: Any) -> int:
    """The id of an authenticated user (callers have checked may_act or the permission)."""
    if user.pk is None:
        raise PermissionDenied("log in first")
    return int(user.pk)


class WorkItemClosed(Exception):
    """The item is no longer open; the message says what happened to it."""

    def __init__(self, message: str, item: WorkItem):
        super().__init__(message)
        self.item = item


# --- assignment -------------------------------------------------------------------------------


def resolve_assignee(assignee: Assignee, context: dict[str, Any]) -> dict[str, Any]:
    """Turn a definition's assignee into work-item fields; raise engine.EngineError if unknown."""
    kind, value = "user", None
    if assignee.user:
        value = assignee.user
    elif assignee.group:
        kind, value = "group", assignee.group
    elif assignee.queue:
        kind, value = "queue", assignee.queue
    else:
        assert assignee.expression is not None
        result = expressions.evaluate(assignee.expression, context)
        if isinstance(result, str) and result.startswith(("group:", "queue:")):
            kind, value = result.split(":", 1)
        else:
            value = result
    if value in (None, ""):
        raise engine.EngineError(f"assignee {assignee.expression!r} evaluated to nothing")
    if kind == "user":
        by_id = isinstance(value, int) or str(value).isdigit()
        lookup = {User._meta.pk.name: int(value)} if by_id else {User.USERNAME_FIELD: value}
        # Plain SQL (orchestration/hot.py): this runs at every start of an interactive step.
        user = hot.first(User, is_active=True, **lookup)
        if user is None:
            raise engine.EngineError(f"no active user {value!r} to assign")
        return {"assignee_user": user}
    if kind == "group":
        group = hot.first(Group, name=value)
        if group is None:
            raise engine.EngineError(f"no group {value!r} to assign")
        return {"assignee_group": group}
    queue = hot.first(Queue, api_name=value)
    if queue is None:
        raise engine.EngineError(f"no queue {value!r} to assign")
    return {"assignee_queue": queue}


def check_assignee(kind: str, value: str) -> str | None:
    """Definition-time check that a named user, group or queue exists."""
    if kind == "user" and not User.objects.filter(username=value).exists():
        return f"no user '{value}'"
    if kind == "group" and not Group.objects.filter(name=value).exists():
        return f"no group '{value}'"
    if kind == "queue" and not Queue.objects.filter(api_name=value).exists():
        return f"no queue '{value}'"
    return None


class InteractiveKind:
    """Interactive steps: a work item for a person, completed through the Work Guide."""

    def start(self, *, run: Run, step_run: StepRun, step: Any, context: dict[str, Any]) -> None:
        fields = resolve_assignee(step.assignee, context)
        due = timezone.now() + dt.timedelta(hours=step.due_in_hours) if step.due_in_hours else None
        item = WorkItem(
            run=run,
            step_run=step_run,
            record_type_id=run.record_type_id,
            record_id=run.record_id,
            label=(step.label or step.key)[:200],
            due_at=due,
            **fields,
        )
        hot.insert([item])
        if step.email.enabled:
            from .emails import assignment_emails_write

            # In the engine's transaction: the emails are committed with the item, or not at all.
            assignment_emails_write(item=item)

    def stop(self, *, run: Run, step_runs: list[StepRun], reason: str) -> None:
        WorkItem.objects.filter(step_run__in=step_runs, status=WorkItemStatus.ASSIGNED).update(
            status=WorkItemStatus.CANCELED, completed_at=timezone.now()
        )


register_step_kind("interactive", InteractiveKind())


# --- who may act ------------------------------------------------------------------------------


def may_act(item: WorkItem, user: Any) -> bool:
    """Assigned to the user, to one of their groups, or to a queue they belong to."""
    if not user.is_authenticated or not user.is_active:
        return False
    if item.assignee_user_id is not None:
        return bool(item.assignee_user_id == user.pk)
    if item.assignee_group_id is not None:
        return user.groups.filter(pk=item.assignee_group_id).exists()
    queue_id = item.assignee_queue_id
    if queue_id is None:
        return False
    # A member directly or through one of their groups: one statement, no query building (this
    # runs twice for every claim and completion of a queue item).
    with connection.cursor() as cursor:
        cursor.execute(_queue_member_sql(), [queue_id, _user_id(user), queue_id, _user_id(user)])
        return cursor.fetchone() is not None


@functools.cache
def _queue_member_sql() -> str:
    qn = connection.ops.quote_name

    def table(m2m: Any) -> tuple[str, str, str]:
        through = m2m.through._meta
        source, target = (f for f in through.get_fields() if f.is_relation and f.many_to_one)
        return qn(through.db_table), qn(source.column), qn(target.column)

    users, users_queue, users_user = table(Queue.users)
    groups, groups_queue, groups_group = table(Queue.groups)
    member, member_user, member_group = table(User.groups)
    if member_user.strip('"') == "group_id":  # the through model lists (user, group): be sure
        member_user, member_group = member_group, member_user
    return (
        f"SELECT 1 FROM {users} WHERE {users_queue} = %s AND {users_user} = %s"  # noqa: S608 (names only)
        f" UNION ALL SELECT 1 FROM {groups} qg"
        f" INNER JOIN {member} ug ON ug.{member_group} = qg.{groups_group}"
        f" WHERE qg.{groups_queue} = %s AND ug.{member_user} = %s LIMIT 1"
    )


def _same_assignee(a: WorkItem, b: WorkItem) -> bool:
    return (a.assignee_user_id, a.assignee_group_id, a.assignee_queue_id) == (
        b.assignee_user_id,
        b.assignee_group_id,
        b.assignee_queue_id,
    )


def models_q_member(user_id: int, group_ids: set[int]) -> Any:
    from django.db.models import Q

    return Q(users__pk=user_id) | Q(groups__pk__in=group_ids)


def _closed_message(item: WorkItem) -> str:
    if item.status == WorkItemStatus.COMPLETED:
        who = item.completed_by.get_username() if item.completed_by else "the system"
        when = timezone.localtime(item.completed_at).strftime("%Y-%m-%d %H:%M") if item.completed_at else ""
        return f"This item was already completed by {who} {when}".strip() + "."
    return "This item was canceled: the step it belonged to ended or the run was stopped."


# --- completion -------------------------------------------------------------------------------


def screen_flow_for(item: WorkItem) -> ScreenFlow:
    sr = item.step_run
    assert sr.flow_version is not None
    return engine.flow_doc(sr.flow_version)  # type: ignore[no-any-return]


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

    Raises PermissionDenied, ValidationError (per-field messages) or WorkItemClosed."""
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
        before = item.assignee_label
        item.assignee_user, item.assignee_group, item.assignee_queue = user, group, queue
        item.claimed_by = None
        # A new assignment: its emails have keys of their own (emails.assignment_email_key).
        item.assignments += 1
        item.save(
            update_fields=["assignee_user", "assignee_group", "assignee_queue", "claimed_by", "assignments"]
        )
        workitem_log(item, "reassigned", int(actor.pk), old=before, new=item.assignee_label, reason=reason)
        from .emails import assignment_emails_enabled, assignment_emails_write

        if assignment_emails_enabled(item):
            assignment_emails_write(item=item)
    return item


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
        item = WorkItem.objects.get(pk=item.pk)
        if item.claimed_by_id != user.pk:
            raise PermissionDenied("you do not hold this item")
        item.claimed_by = None
        item.save(update_fields=["claimed_by"])
        workitem_log(item, "released", _user_id(user))
    return item


# --- drafts: what a person typed, kept between screens ------------------------------------------


def workitem_draft_save(*, item: WorkItem, user: Any, screen: int, values: dict[str, Any]) -> WorkItemDraft:
    """Remember `values` (merged over what `user` typed before) and the screen they are on, so
    a reload, a second tab or another device resumes there with nothing lost.

    Values are kept as typed, valid or not: they are checked when the person moves on and
    again by `workitem_complete`. Raises PermissionDenied or ValidationError (no such screen)."""
    if not may_act(item, user):
        raise PermissionDenied("you may not act on this work item")
    if not 0 <= screen < len(screen_flow_for(item).screens):
        raise ValidationError("this screen flow has no such screen")
    # PostgreSQL's jsonb cannot hold a NUL character: the rest of what was typed is kept (the
    # form tells the person the field is refused), rather than the whole save failing.
    values = {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in values.items()}
    with transaction.atomic():
        # Two tabs saving at once: the row lock makes the second merge over the first's values
        # instead of overwriting them with what it read before.
        draft, created = WorkItemDraft.objects.select_for_update().get_or_create(
            item=item, user=user, defaults={"screen": screen, "values": to_jsonable(values)}
        )
        if not created:
            draft.screen = screen
            draft.values = {**draft.values, **to_jsonable(values)}
            draft.save(update_fields=["screen", "values", "updated_at"])
    return draft


def workitem_draft_discard(*, item: WorkItem, user: Any) -> None:
    """Forget what `user` typed into `item` (after their Finish completed it)."""
    WorkItemDraft.objects.filter(item=item, user_id=user.pk).delete()


def workitem_drafts_cleanup(*, batch: int = 1000) -> int:
    """Delete the drafts of items no longer open (completed by someone else, canceled with their
    stage): nobody can resume them. Run by Celery beat (`workitems.tasks.cleanup_drafts`), in
    batches so that one run stays short. Returns how many were deleted."""
    ids = list(
        WorkItemDraft.objects.exclude(item__status=WorkItemStatus.ASSIGNED).values_list("pk", flat=True)[
            :batch
        ]
    )
    if ids:
        WorkItemDraft.objects.filter(pk__in=ids).delete()
    return len(ids)


def workitem_screen_defaults(*, item: WorkItem, screen: int, skip: Collection[str] = ()) -> dict[str, Any]:
    """Initial values of the fields of one screen that have a `default`, evaluated when the
    screen is shown and the person has not answered them yet (`skip`): over `record`, `vars`,
    `steps`, `run` and `inputs` (the step's resolved flow inputs), as docs/definitions.md says.

    A default that fails, or gives a value that does not fit the field, leaves the field empty
    (and is logged): the person can still answer, which beats an error page."""
    flow = screen_flow_for(item)
    fields = [f for f in flow.screens[screen].fields if f.default and f.name not in skip]
    if not fields:
        return {}
    step_run = item.step_run
    assert step_run.flow_version is not None
    # The engine's own context (vars typed, steps, run); the record only when the flow's text
    # can name it, and `inputs` are the flow's, not the run's.
    context = engine.Pass(item.run, actor_id=None).context(
        record=engine.definition_uses_record(step_run.flow_version)
    )
    context["inputs"] = typed_inputs(flow.inputs, step_run.inputs)
    out: dict[str, Any] = {}
    for f in fields:
        try:
            out[f.name] = to_json(f.type, expressions.evaluate(f.default or "", context))
        except (expressions.ExpressionError, TypeCoercionError) as exc:
            log.warning("work item %s: default of field %r not used: %s", item.pk, f.name, exc)
    return out


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
