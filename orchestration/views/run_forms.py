"""The forms of the run detail page's actions: a reason, and for a skip the step's outputs,
typed, drawn by the data-type module as the Work Guide draws a screen."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .. import datatypes, engine
from ..models import StepRun


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason (optional, kept in the run's events)",
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._style()

    def output_fields(self) -> list[forms.BoundField]:
        return []

    def full_clean(self) -> None:
        super().full_clean()
        self._style()

    def _style(self) -> None:
        """Bootstrap classes, and `is-invalid` on fields in error (screen readers get
        aria-invalid from Django itself)."""
        for name, f in self.fields.items():
            widget = f.widget
            if isinstance(widget, forms.CheckboxSelectMultiple):
                continue
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            # `_errors`, not `errors`: reading `errors` would validate the form before
            # SkipForm has added its fields.
            errors = getattr(self, "_errors", None)
            if errors and name in errors:
                css += " is-invalid"
            widget.attrs["class"] = css


def output_specs(sr: StepRun) -> list[tuple[str, str, Any]]:
    """(name, type, screen field or None) of what the step's flow gives."""
    if sr.flow_version is None:
        return []
    fdoc = engine.flow_doc(sr.flow_version)
    if hasattr(fdoc, "outputs"):
        return [(o.name, str(o.type), None) for o in fdoc.outputs]
    if hasattr(fdoc, "fields"):
        return [(f.name, str(f.type), f) for f in fdoc.fields()]
    return [("is_condition_met", "boolean", None)]


def _output_field(type_: str, spec: Any) -> forms.Field:
    """An output as a form field; a screen field gives its label, requirement and choices (a
    choice without choices is typed in as text)."""
    choices = list(spec.choices) if spec is not None else []
    if type_ in ("choice", "multi_choice") and not choices:
        type_ = "text"
    field = datatypes.form_field(
        type_,
        label=(spec.label if spec is not None and spec.label else None),  # type: ignore[arg-type]
        required=bool(spec is not None and spec.required),
        help_text="" if type_ == "json" else type_,
        choices=choices,
    )
    if type_ == "long_text":
        field.widget.attrs["rows"] = 3
    return field


class SkipForm(ReasonForm):
    """The step's outputs, typed, then the reason. Field names are prefixed so an output called
    `reason` cannot collide with the reason."""

    def __init__(self, *args: Any, specs: list[tuple[str, str, Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reason = self.fields.pop("reason")
        self.outputs: dict[str, str] = {}
        for name, type_, spec in specs:
            key = f"out_{name}"
            self.fields[key] = _output_field(type_, spec)
            if self.fields[key].label is None:
                self.fields[key].label = name
            self.outputs[key] = name
        self.fields["reason"] = reason
        self._style()

    def output_fields(self) -> list[forms.BoundField]:
        return [self[key] for key in self.outputs]

    def output_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, name in self.outputs.items():
            value = self.cleaned_data.get(key)
            if isinstance(value, dt.date | dt.datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, str) and value == "" and not self.fields[key].required:
                value = None
            values[name] = value
        return values

    def add_service_errors(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for name, errors in exc.message_dict.items():
                key = f"out_{name}"
                self.add_error(key if key in self.fields else None, errors)
        else:
            self.add_error(None, exc.messages)
        self._style()
