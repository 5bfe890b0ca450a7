"""What a person typed in the Work Guide, kept between screens, and each screen's defaults."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from orchestration import engine, expressions
from orchestration.flows import typed_inputs
from orchestration.values import TypeCoercionError, to_json, to_jsonable

from ..models import WorkItem, WorkItemDraft, WorkItemStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser
from .assignment import may_act
from .completion import screen_flow_for

log = logging.getLogger(__name__)

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
