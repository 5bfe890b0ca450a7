"""What the services share: who may act (permissions), the run a background flow runs for,
events from other apps, a run's record accessor."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models

from .. import events, hot
from ..models import (
    Run,
    RunEvent,
)
from ..registry import RECORD_ACCESSORS

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

# (orchestration id, record id) of the run whose background flow is executing in this context.
CURRENT_RUN: ContextVar[tuple[int, int | None] | None] = ContextVar("orchestration_current_run", default=None)

# Each admin action has its own permission (Meta.permissions of Run).
PERM_CANCEL = "orchestration.cancel_run"
PERM_SUSPEND = "orchestration.suspend_run"  # suspend and resume
PERM_RETRY = "orchestration.retry_step"  # retry a failed step, re-check conditions
PERM_SKIP = "orchestration.skip_step"
PERM_LAUNCH = "orchestration.launch_orchestration"
PERM_IMPORT = "orchestration.import_definitions"


def _require(actor: Actor, perm: str) -> int | None:
    """Check `perm` for a human actor; the system (None) may do anything. Returns the actor id."""
    if actor is None:
        return None
    if not actor.is_authenticated or not actor.has_perm(perm):
        raise PermissionDenied(f"you need the permission {perm!r}")
    return int(actor.pk)


def record_visible_to(*, user: Actor, record: models.Model) -> bool:
    """Whether `user` may see `record`, by the rule its app registered with the record accessor
    (records: records.view_record, or work on that record). The system (None) sees everything."""
    if user is None:
        return True
    ct = ContentType.objects.get_for_model(record)
    accessor = RECORD_ACCESSORS.get(f"{ct.app_label}.{ct.model}")
    if accessor is None or accessor.may_view is None:
        return True
    return accessor.may_view(user, int(record.pk))


def run_event_add(
    *,
    run: Run | None = None,
    run_id: int | None = None,
    name: str,
    actor_id: int | None,
    payload: dict[str, Any] | None = None,
    stage: str = "",
    step: str = "",
) -> RunEvent:
    """Append an event from another app (e.g. a work item reassigned)."""
    run_id = run.pk if run is not None else run_id
    assert run_id is not None, "give the run or its id"
    events.require_known(name)
    event = RunEvent(
        run_id=run_id,
        name=name,
        actor_id=actor_id,
        payload=payload or {},
        stage=stage,
        step=step,
    )
    hot.insert([event])
    return event


def record_accessor_for(run: Run) -> Any:
    if not run.record_type_id:
        return None
    ct = ContentType.objects.get_for_id(run.record_type_id)
    return RECORD_ACCESSORS.get(f"{ct.app_label}.{ct.model}")
