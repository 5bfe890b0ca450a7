"""How records plug into the engine: the record accessor, the record flow actions, definition
checks, and launching on save. Registered from RecordsConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from orchestration import expressions
from orchestration.flows import FlowError
from orchestration.registry import (
    FlowContext,
    RecordAccessor,
    register_flow_action,
    register_record_accessor,
    register_record_type_labels,
)
from orchestration.values import from_json, to_jsonable

from .models import Record, RecordType


def _load(record_id: int) -> dict[str, Any] | None:
    from .services import record_context

    record = Record.objects.select_related("record_type", "owner").filter(pk=record_id).first()
    return record_context(record) if record else None


def _label(record_id: int) -> str:
    return Record.objects.filter(pk=record_id).values_list("name", flat=True).first() or f"#{record_id}"


def _may_view(user: Any, record_id: int) -> bool:
    from .panels import may_view_record

    if user.has_perm("records.view_record"):  # cached per user: no query for who may see all
        return True
    record = Record.objects.filter(pk=record_id).first()
    return record is not None and may_view_record(user, record)


def _url(record_id: int) -> str:
    record = Record.objects.select_related("record_type").filter(pk=record_id).first()
    return record.get_absolute_url() if record else ""


def values_context(
    record_type: RecordType, snapshot: dict[str, Any] | None, record: Record
) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    types = {f["name"]: f["type"] for f in record_type.fields}
    ctx = {k: from_json(types.get(k, "text"), v) for k, v in snapshot.items() if k not in {"owner"}}
    for f in record_type.fields:
        ctx.setdefault(f["name"], None)
    ctx.update({"id": record.pk, "type": record_type.api_name, "owner_id": snapshot.get("owner")})
    return ctx


def on_record_saved(
    sender: Any,
    *,
    record: Record,
    record_type: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    actor_id: int | None,
    **kwargs: Any,
) -> None:
    """Launch record-triggered orchestrations when the save commits: a rolled-back save
    launches nothing, and each committed save is evaluated exactly once."""
    from orchestration.services import launch_for_record_change

    rt = record.record_type
    old_ctx = values_context(rt, old, record)
    new_ctx = values_context(rt, new, record) or {}
    owner = record.owner
    new_ctx["owner"] = owner.get_username() if owner else None
    if old_ctx is not None:
        # The owner before the save, by username like record.owner: a `changed_to_meet`
        # condition on record.owner must see the old owner, not None.
        old_owner_id = old.get("owner") if old else None
        if old_owner_id == record.owner_id:
            old_ctx["owner"] = new_ctx["owner"]
        else:
            from django.contrib.auth import get_user_model

            User = get_user_model()
            old_ctx["owner"] = (
                User._default_manager.filter(pk=old_owner_id)
                .values_list(User.USERNAME_FIELD, flat=True)
                .first()
                if old_owner_id
                else None
            )

    def launch() -> None:
        launch_for_record_change(
            record=record, record_type=record_type, old=old_ctx, new=new_ctx, actor_id=actor_id
        )

    transaction.on_commit(launch)


def update_record_action(action: Any, ctx: FlowContext) -> dict[str, Any]:
    from .services import record_update

    if ctx.record_id is None:
        raise FlowError("update_record: this run has no record")
    record = Record.objects.filter(pk=ctx.record_id).first()
    if record is None:
        raise FlowError(f"update_record: record {ctx.record_id} no longer exists")
    ectx = ctx.expression_context()
    values = {k: to_jsonable(expressions.evaluate(v, ectx)) for k, v in action.values.items()}
    name = values.pop("name", None)
    try:
        # The action's key: the same on every attempt of the step, so a retry after a crash
        # that follows this update finds it applied and changes nothing.
        record_update(record=record, values=values, name=name, idempotency_key=ctx.action_key)
    except Exception as exc:  # ValidationError: report which field was refused
        raise FlowError(f"update_record: {exc}") from exc
    return {}


def create_record_action(action: Any, ctx: FlowContext) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from .services import record_create

    rt = RecordType.objects.filter(api_name=action.record_type).first()
    if rt is None:
        raise FlowError(f"create_record: no record type '{action.record_type}'")
    ectx = ctx.expression_context()
    values = {k: to_jsonable(expressions.evaluate(v, ectx)) for k, v in action.values.items()}
    owner = None
    if action.owner:
        who = expressions.evaluate(action.owner, ectx)
        User = get_user_model()
        owner = User.objects.filter(**({"pk": who} if isinstance(who, int) else {"username": who})).first()
    try:
        record = record_create(
            record_type=rt,
            name=str(expressions.evaluate(action.name, ectx) or ""),
            values=values,
            owner=owner,
        )
    except Exception as exc:
        raise FlowError(f"create_record: {exc}") from exc
    return {action.output: record.pk} if action.output else {}


def check_record_type(api_name: str) -> str | None:
    if RecordType.objects.filter(api_name=api_name).exists():
        return None
    known = ", ".join(RecordType.objects.values_list("api_name", flat=True)) or "none yet"
    return f"unknown record type '{api_name}' (known: {known})"


def _type_labels(api_names: list[str]) -> dict[str, str]:
    if not api_names:
        return {}
    return dict(RecordType.objects.filter(api_name__in=api_names).values_list("api_name", "label"))


def register() -> None:
    from orchestration.validation import RECORD_TYPE_CHECKS

    from .signals import record_saved

    register_record_accessor(
        "records.record", RecordAccessor(load=_load, label=_label, url=_url, may_view=_may_view)
    )
    register_record_type_labels(_type_labels)
    register_flow_action("update_record")(update_record_action)
    register_flow_action("create_record")(create_record_action)
    if check_record_type not in RECORD_TYPE_CHECKS:
        RECORD_TYPE_CHECKS.append(check_record_type)
    record_saved.connect(on_record_saved, sender=Record, dispatch_uid="records.launch_on_save")
