"""Turn stored JSON values into what a person reads. Values stay plain strings: templates
escape them, and long text keeps its line breaks through `linebreaksbr` (which escapes too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..models import FieldChange, FieldType, Record, RecordType


@dataclass(frozen=True)
class Shown:
    label: str
    type: str
    value: str


def format_value(ftype: str, value: Any, usernames: dict[int, str]) -> str:
    if value is None or value == "":
        return ""
    match ftype:
        case FieldType.USER:
            try:
                return usernames.get(int(value), f"user #{value}")
            except (TypeError, ValueError):
                return str(value)
        case FieldType.BOOLEAN:
            return "Yes" if value else "No"
        case FieldType.DATE:
            d = parse_date(str(value))
            return formats.date_format(d, "DATE_FORMAT") if d else str(value)
        case FieldType.DATETIME:
            t = parse_datetime(str(value))
            if t is None:
                return str(value)
            if timezone.is_aware(t):
                t = timezone.localtime(t)
            return formats.date_format(t, "DATETIME_FORMAT")
        case _:
            return str(value)


def field_rows(record: Record, usernames: dict[int, str]) -> list[Shown]:
    """The record's declared fields in declaration order, formatted by type."""
    return [
        Shown(f["label"], f["type"], format_value(f["type"], record.data.get(f["name"]), usernames))
        for f in record.record_type.fields
    ]


def list_columns(record_type: RecordType, limit: int = 3) -> list[dict[str, Any]]:
    """A few short fields to show as list columns (long text would not fit a table cell)."""
    return [f for f in record_type.fields if f["type"] != FieldType.LONG_TEXT][:limit]


@dataclass(frozen=True)
class ChangeRow:
    change: FieldChange
    label: str
    old: str
    new: str


def change_type(record_type: RecordType, field: str) -> str:
    if field == "owner":
        return FieldType.USER
    declared = record_type.field(field)
    return declared["type"] if declared else FieldType.TEXT


def change_label(record_type: RecordType, field: str) -> str:
    if field in ("name", "owner"):
        return field.capitalize()
    declared = record_type.field(field)
    # A field removed from the type since the change keeps its raw name in the history.
    return declared["label"] if declared else field


def change_rows(
    record_type: RecordType, changes: list[FieldChange], usernames: dict[int, str]
) -> list[ChangeRow]:
    rows = []
    for c in changes:
        ftype = change_type(record_type, c.field)
        rows.append(
            ChangeRow(
                c,
                change_label(record_type, c.field),
                format_value(ftype, c.old, usernames),
                format_value(ftype, c.new, usernames),
            )
        )
    return rows


def change_user_ids(record_type: RecordType, changes: list[FieldChange]) -> set[Any]:
    ids: set[Any] = set()
    for c in changes:
        if change_type(record_type, c.field) == FieldType.USER:
            ids.update(v for v in (c.old, c.new) if v is not None)
    return ids
