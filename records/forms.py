"""Forms built from a record type's field schema. The form checks input for the person typing;
records.services validates again (the source of truth), and any error it raises is put back on
the form field it names so nothing typed is lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import escape

from orchestration import datatypes
from orchestration.values import from_json

from .models import Record, RecordType

DATETIME_LOCAL = datatypes.DATETIME_LOCAL


active_users = datatypes.active_users


class RecordForm(forms.Form):
    """Base of the generated forms: `name`, `owner`, then one form field per record field."""

    record_type: RecordType

    name = forms.CharField(label="Name", max_length=200, strip=True)
    owner = datatypes.UserChoiceField(
        queryset=active_users(), required=False, label="Owner", empty_label="No owner"
    )

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.record_type.fields]

    def values(self, *, only_changed: bool = False) -> dict[str, Any]:
        """Cleaned values of the record's fields, as records.services accepts them. With
        `only_changed`, just what the person changed: an unchanged value is not re-sent, so a
        reformatted display (seconds, trailing zeros) never shows up as a change in the history."""
        names = self.field_names
        if only_changed:
            names = [n for n in names if n in self.changed_data]
        return {n: self.cleaned_data.get(n) for n in names}

    def add_service_errors(self, exc: ValidationError) -> None:
        """Show a service's ValidationError on the fields it names (others above the form)."""
        if hasattr(exc, "error_dict"):
            for name, errors in exc.message_dict.items():
                target = name if name in self.fields else None
                for message in errors:
                    self.add_error(target, message if target else f"{name}: {message}")
        else:
            for message in exc.messages:
                self.add_error(None, message)


def form_field(spec: dict[str, Any]) -> forms.Field:
    """One Django form field for a record field spec {name, label, type, required, choices, help}."""
    return datatypes.form_field(
        spec["type"],
        label=spec.get("label") or spec["name"],
        # crispy-bootstrap5 prints help text with |safe; a record type's help is data: escape it.
        help_text=escape(spec.get("help", "")),
        required=bool(spec.get("required")),
        choices=spec.get("choices", []),
    )


def record_form_class(record_type: RecordType) -> type[RecordForm]:
    """A form class for this record type's current field schema."""
    attrs: dict[str, Any] = {"record_type": record_type}
    for spec in record_type.fields:
        attrs[spec["name"]] = form_field(spec)
    return type(f"{record_type.api_name.title().replace('_', '')}Form", (RecordForm,), attrs)


def initial_for(record: Record) -> dict[str, Any]:
    """Form initial values from a record's stored JSON values, as Python values: comparing
    like with like is how the form tells which fields the person actually changed."""
    initial: dict[str, Any] = {"name": record.name, "owner": record.owner_id}
    for spec in record.record_type.fields:
        value = from_json(spec["type"], record.data.get(spec["name"]))
        if isinstance(value, dt.datetime) and timezone.is_aware(value):
            # datetime-local inputs take local wall-clock time without an offset.
            value = timezone.localtime(value)
        initial[spec["name"]] = value
    return initial
