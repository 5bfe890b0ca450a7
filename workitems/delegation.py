"""Out of office: while a person is away, work assigned to them goes to their delegate.

- New items of a step assigned to the person, and items reassigned to them, go to the delegate
  and remember whom they were for (`WorkItem.delegated_from`); the assignment email goes to the
  delegate. A delegate who is away too passes it on to their own delegate (a few hops at most;
  where the delegates go round in a circle, the last one before it closes takes it).
- The person's open items can be handed over in one action (each a reassignment with its event).
- The person sets it on their Out of office page; their manager (PersonProfile.manager) and
  people who may reassign work (`workitems.reassign_workitem`) can set it for them.

Days are the site's dates (TIME_ZONE): away from `starts_on` to `ends_on`, both included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from orchestration import engine
from orchestration.people import person_name

from .models import OutOfOffice, PersonProfile, WorkItem, WorkItemStatus

MAX_HOPS = 5
# Whether anyone at all is away today, remembered this long per process: an interactive step's
# start then costs no query while nobody is (the common case); an absence saved in this process
# is seen at once (the model's signals forget it), one saved elsewhere within this many seconds.
AWAY_CACHE_SECONDS = 30.0
_anyone: dict[str, Any] = {"day": None, "until": 0.0, "value": True}


def forget() -> None:
    _anyone["day"] = None


def anyone_away(day: dt.date) -> bool:
    import time

    now = time.monotonic()
    if _anyone["day"] == day and now < _anyone["until"]:
        return bool(_anyone["value"])
    value = OutOfOffice.objects.filter(starts_on__lte=day, ends_on__gte=day).exists()
    _anyone.update(day=day, until=now + AWAY_CACHE_SECONDS, value=value)
    return value


def today() -> dt.date:
    return timezone.localdate()


def away(user_ids: set[int], day: dt.date) -> dict[int, int]:
    """{user id: delegate id} of these people away on `day` (one query)."""
    rows = OutOfOffice.objects.filter(user_id__in=user_ids, starts_on__lte=day, ends_on__gte=day)
    return dict(rows.values_list("user_id", "delegate_id"))


def delegate_for(user: Any, day: dt.date | None = None) -> Any | None:
    """Who takes `user`'s new work on `day`, or None when they are present (or no delegate is
    active). Follows delegates who are away themselves, a few hops at most."""
    day = day or today()
    if not anyone_away(day):
        return None
    User = get_user_model()
    seen = [user.pk]
    current = user.pk
    for _ in range(MAX_HOPS):
        nxt = away({current}, day).get(current)
        if nxt is None or nxt in seen:
            break
        seen.append(nxt)
        current = nxt
    if current == user.pk:
        return None
    return User._default_manager.filter(pk=current, is_active=True).first()


def may_manage(actor: Any, user: Any) -> bool:
    """The person themself, their manager, or someone who may reassign work."""
    if not getattr(actor, "is_authenticated", False):
        return False
    if actor.pk == user.pk or actor.has_perm("workitems.reassign_workitem"):
        return True
    return PersonProfile.objects.filter(user=user, manager=actor).exists()


def team_of(actor: Any) -> list[Any]:
    """The people whose absences `actor` may set besides their own: those they manage."""
    User = get_user_model()
    ids = PersonProfile.objects.filter(manager=actor).values("user_id")
    return list(User._default_manager.filter(pk__in=ids, is_active=True).order_by("first_name", "username"))


@dataclass(frozen=True)
class Absence:
    user: Any
    starts_on: dt.date
    ends_on: dt.date
    delegate: Any


def out_of_office_set(*, user: Any, starts_on: Any, ends_on: Any, delegate: Any, actor: Any) -> OutOfOffice:
    """Set (or replace) `user`'s absence. ValidationError by field for what does not fit."""
    if not may_manage(actor, user):
        raise PermissionDenied("you may not set someone else's out of office")
    errors: dict[str, str] = {}
    if starts_on is None:
        errors["starts_on"] = "Say from which day."
    if ends_on is None:
        errors["ends_on"] = "Say until which day."
    if starts_on and ends_on and ends_on < starts_on:
        errors["ends_on"] = "The last day comes before the first."
    elif ends_on and ends_on < today():
        errors["ends_on"] = "That day is past: choose today or later."
    if delegate is None:
        errors["delegate"] = "Choose who takes the work meanwhile."
    elif delegate.pk == user.pk:
        errors["delegate"] = f"{person_name(user)} cannot be their own delegate."
    elif not delegate.is_active:
        errors["delegate"] = f"{person_name(delegate)} can no longer be assigned work."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        row, _ = OutOfOffice.objects.update_or_create(
            user=user,
            defaults={"starts_on": starts_on, "ends_on": ends_on, "delegate": delegate, "set_by": actor},
        )
    return row


def out_of_office_clear(*, user: Any, actor: Any) -> bool:
    if not may_manage(actor, user):
        raise PermissionDenied("you may not change someone else's out of office")
    deleted, _ = OutOfOffice.objects.filter(user=user).delete()
    return bool(deleted)


def open_items_of(user: Any) -> Any:
    return WorkItem.objects.filter(assignee_user=user, status=WorkItemStatus.ASSIGNED)


def hand_over(*, user: Any, actor: Any) -> int:
    """Move `user`'s open items to their delegate now (each in its own transaction, with its
    reassignment event and email). Returns how many moved."""
    if not may_manage(actor, user):
        raise PermissionDenied("you may not hand over someone else's work")
    row = OutOfOffice.objects.filter(user=user).select_related("delegate").first()
    if row is None:
        raise ValidationError("Set who takes the work first.")
    from .services.completion import reassign_locked

    moved = 0
    for pk, run_id in list(open_items_of(user).values_list("pk", "run_id")):
        with transaction.atomic():
            engine.lock_run(run_id)
            item = WorkItem.objects.select_related("step_run", "run").get(pk=pk)
            if item.status != WorkItemStatus.ASSIGNED or item.assignee_user_id != user.pk:
                continue
            reassign_locked(
                item,
                actor_id=actor.pk,
                reason=f"{person_name(user)} is out of office",
                user=row.delegate,
                delegated_from=user,
            )
            moved += 1
    return moved


def route(fields: dict[str, Any], day: dt.date | None = None) -> dict[str, Any]:
    """Work-item fields of a new assignment, sent to the delegate when the user is away
    (`delegated_from` set); unchanged otherwise, and for groups and queues."""
    user = fields.get("assignee_user")
    if user is None:
        return fields
    delegate = delegate_for(user, day)
    if delegate is None:
        return {**fields, "delegated_from": None}
    return {**fields, "assignee_user": delegate, "delegated_from": user}


def _forget_on_change(**kwargs: Any) -> None:
    forget()


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.connect(_forget_on_change, sender=OutOfOffice, dispatch_uid="ooo-forget-save")
    post_delete.connect(_forget_on_change, sender=OutOfOffice, dispatch_uid="ooo-forget-delete")
