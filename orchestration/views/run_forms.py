"""The forms of the run detail page's actions: a reason, for a skip the step's outputs, and for
a variable changed by hand its new value, typed, drawn by the data-type module as the Work
Guide draws a screen."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .. import datatypes, engine
from ..definitions import Variable
from ..models import StepRun
from ..services.operations import VARIABLE_REASON_MAX
from ..values import from_json


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


# A variable declares no choices: a choice is typed in, several as a JSON list.
VARIABLE_WIDGET_TYPES = {"choice": "text", "multi_choice": "json"}


class _ListedPeople(forms.models.ModelChoiceIterator):
    """A user field's options from a list read once for the page (`VariableForm(people=…)`):
    every user variable's form shares it, one query for all of them."""

    def __iter__(self) -> Any:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for person in getattr(self.field, "people", ()):
            yield self.choice(person)

    def __len__(self) -> int:
        return len(getattr(self.field, "people", ())) + (self.field.empty_label is not None)


class _PersonField(datatypes.UserChoiceField):
    iterator = _ListedPeople
    people: Any = ()


class VariableForm(ReasonForm):
    """A run variable's new value, drawn by its declared type, and why (required: it is kept in
    the run's events). Prefixed with the variable's name, so the page can hold one per variable.
    `people`: the active users, read once for every user field of the page (a lazy list)."""

    def __init__(
        self, *args: Any, variable: Variable, current: Any, people: Any = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("prefix", f"var-{variable.name}")
        super().__init__(*args, **kwargs)
        self.variable = variable
        self.type = str(variable.type)
        widget_type = VARIABLE_WIDGET_TYPES.get(self.type, self.type)
        value = datatypes.form_field(
            widget_type,
            label="New value",
            required=variable.required,
            # The type is written beside the value already; JSON gets its example.
            help_text='A JSON list, e.g. ["a", "b"]' if self.type == "multi_choice" else "",
            classes={"user": _PersonField} if people is not None else None,
        )
        if isinstance(value, _PersonField):
            value.people = people
        if widget_type == "long_text":
            value.widget.attrs["rows"] = 3
        value.initial = _initial(self.type, current)
        self.fields = {
            "value": value,
            "reason": forms.CharField(
                label="Reason, kept in the run's events",
                max_length=VARIABLE_REASON_MAX,
                widget=forms.Textarea(attrs={"rows": 2}),
            ),
        }
        self._style()

    def clean_value(self) -> Any:
        value = self.cleaned_data.get("value")
        if self.type == "multi_choice" and value is not None and not isinstance(value, list | str):
            raise ValidationError('Give a JSON list of choices, e.g. ["a", "b"].')
        return value

    def add_service_errors(self, exc: ValidationError) -> None:
        if hasattr(exc, "error_dict"):
            for name, errors in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, errors)
        else:
            self.add_error(None, exc.messages)
        self._style()


def _initial(type_: str, current: Any) -> Any:
    """The stored JSON value as the widget shows it (a date as a date, a decimal as a number)."""
    if type_ == "multi_choice":
        return current
    return from_json(type_, current)
