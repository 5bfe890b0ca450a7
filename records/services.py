"""Writes for records: create, update (with field history), and the record-type schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from orchestration.services.common import _require  # the engine's check: the system (None) may do anything
from orchestration.values import TypeCoercionError, from_json, to_json

from .models import FieldChange, FieldType, Record, RecordType
from .signals import record_saved

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

# The same check as every service of the engine: the system (None) may do anything.

FIELD_TYPES = {c.value for c in FieldType}


def record_type_validate_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a record type's field list; raise ValidationError naming the field at fault."""
    import re

    clean = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        name = f.get("name", "")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,79}", str(name)):
            raise ValidationError(f"fields[{i}].name: must be lower_snake_case")
        if name in seen or name in {"id", "name", "owner", "owner_id", "type"}:
            raise ValidationError(f"fields[{i}].name: '{name}' is duplicate or reserved")
        seen.add(name)
        ftype = f.get("type", "text")
        if ftype not in FIELD_TYPES:
            raise ValidationError(f"fields[{i}].type: unknown type '{ftype}'")
        if ftype == "choice" and not f.get("choices"):
            raise ValidationError(f"fields[{i}].choices: a choice field needs choices")
        clean.append(
            {
                "name": name,
                "label": f.get("label") or name.replace("_", " ").capitalize(),
                "type": ftype,
                "required": bool(f.get("required", False)),
                "choices": [str(c) for c in f.get("choices", [])],
                "help": f.get("help", ""),
            }
        )
    return clean


def record_type_upsert(
    *, api_name: str, label: str, fields: list[dict[str, Any]], label_plural: str = ""
) -> RecordType:
    clean = record_type_validate_fields(fields)
    rt, _ = RecordType.objects.update_or_create(
        api_name=api_name, defaults={"label": label, "fields": clean, "label_plural": label_plural}
    )
    return rt


def record_values_clean(
    record_type: RecordType,
    values: dict[str, Any],
    *,
    partial: bool = False,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate values against the type's fields; raise ValidationError per field."""
    errors: dict[str, list[str]] = {}
    declared = {f["name"]: f for f in record_type.fields}
    for name in values:
        if name not in declared:
            errors.setdefault(name, []).append(f"'{name}' is not a field of {record_type.label}")
    out = dict(current or {})
    for name, f in declared.items():
        if partial and name not in values:
            continue
        try:
            value = to_json(f["type"], values.get(name))
        except TypeCoercionError as exc:
            errors.setdefault(name, []).append(str(exc))
            continue
        if f["type"] == "user" and value is not None:
            User = get_user_model()
            lookup = {"pk": value} if isinstance(value, int) else {"username": value}
            user = User.objects.filter(**lookup).first()
            if user is None:
                errors.setdefault(name, []).append(f"no user {value!r}")
                continue
            value = user.pk
        if f["type"] == "choice" and value is not None and value not in f["choices"]:
            errors.setdefault(name, []).append(f"choose one of: {', '.join(f['choices'])}")
            continue
        if f.get("required") and value in (None, ""):
            errors.setdefault(name, []).append("this field is required")
            continue
        out[name] = value
    if errors:
        raise ValidationError(errors)
    return out


def _snapshot(record: Record) -> dict[str, Any]:
    return {"name": record.name, "owner": record.owner_id, **record.data}


def record_create(
    *, record_type: RecordType, name: str, values: dict[str, Any], owner: Any = None, actor: Actor = None
) -> Record:
    """Create a record; record-triggered orchestrations launch when the transaction commits."""
    actor_id = _require(actor, "records.add_record")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["a record needs a name"]})
    data = record_values_clean(record_type, values)
    with transaction.atomic():
        record = Record.objects.create(record_type=record_type, name=name[:200], owner=owner, data=data)
        record_saved.send(
            sender=Record,
            record=record,
            record_type=record_type.api_name,
            old=None,
            new=_snapshot(record),
            actor_id=actor_id,
        )
    return record


def record_update(
    *,
    record: Record,
    values: dict[str, Any] | None = None,
    name: str | None = None,
    owner: Any = ...,
    actor: Actor = None,
    idempotency_key: str = "",
) -> Record:
    """Change some fields; keeps history; re-evaluates record-triggered orchestrations.

    With an `idempotency_key` (a flow action's), an update already applied under that key
    changes nothing: a step retried after a crash does not write its history or launch
    record-triggered orchestrations a second time."""
    actor_id = _require(actor, "records.change_record")
    with transaction.atomic():
        # Lock the record so two concurrent edits produce two ordered changes, not a lost update.
        record = Record.objects.select_for_update().select_related("record_type").get(pk=record.pk)
        # Checked under the record's lock: two attempts of one step cannot both pass it.
        if idempotency_key and FieldChange.objects.filter(record=record, effect_key=idempotency_key).exists():
            return record
        old = _snapshot(record)
        if values:
            record.data = record_values_clean(record.record_type, values, partial=True, current=record.data)
        if name is not None:
            if not name.strip():
                raise ValidationError({"name": ["a record needs a name"]})
            record.name = name.strip()[:200]
        if owner is not ...:
            record.owner = owner
        new = _snapshot(record)
        changed = [k for k in new if new.get(k) != old.get(k)] + [k for k in old if k not in new]
        if not changed:
            return record
        record.save()
        FieldChange.objects.bulk_create(
            [
                FieldChange(
                    record=record,
                    field=k,
                    old=old.get(k),
                    new=new.get(k),
                    changed_by_id=actor_id,
                    effect_key=idempotency_key[:200],
                )
                for k in changed
            ]
        )
        record_saved.send(
            sender=Record,
            record=record,
            record_type=record.record_type.api_name,
            old=old,
            new=new,
            actor_id=actor_id,
        )
    return record


def record_context(record: Record) -> dict[str, Any]:
    """What expressions see as `record`: typed field values plus id, name, owner, type."""
    types = {f["name"]: f["type"] for f in record.record_type.fields}
    ctx: dict[str, Any] = {k: from_json(types.get(k, "text"), v) for k, v in record.data.items()}
    for f in record.record_type.fields:
        ctx.setdefault(f["name"], None)
    owner = record.owner
    ctx.update(
        {
            "id": record.pk,
            "name": record.name,
            "type": record.record_type.api_name,
            "owner": owner.get_username() if owner else None,
            "owner_id": record.owner_id,
            "owner_email": owner.email if owner else None,
        }
    )
    return ctx
