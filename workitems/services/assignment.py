"""Who a work item is for: resolving a step's assignee, the interactive step kind that creates
the item (and its assignment emails), and who may act on an item."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from orchestration import engine, expressions, hot
from orchestration.definitions import Assignee
from orchestration.models import Run, StepRun
from orchestration.people import person_name
from orchestration.registry import register_step_kind

from ..models import Queue, WorkItem, WorkItemStatus

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
        from .. import delegation, sla

        # Someone away: their delegate gets it, and it says whom it was for.
        fields = delegation.route(resolve_assignee(step.assignee, context))
        now = timezone.now()
        terms = sla.initial_terms(
            doc=lambda: engine.orchestration_doc(run.version), step=step, context=context, now=now
        )
        item = WorkItem(
            run=run,
            step_run=step_run,
            record_type_id=run.record_type_id,
            record_id=run.record_id,
            label=(step.label or step.key)[:200],
            due_at=terms.due_at,
            priority=terms.priority,
            assigned_at=now,
            next_rule_at=terms.next_rule_at,
            **fields,
        )
        hot.insert([item])
        if step.email.enabled:
            from ..emails import assignment_emails_write

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
        who = person_name(item.completed_by, default="the system")
        when = timezone.localtime(item.completed_at).strftime("%Y-%m-%d %H:%M") if item.completed_at else ""
        return f"This item was already completed by {who} {when}".strip() + "."
    return "This item was canceled: the step it belonged to ended or the run was stopped."
