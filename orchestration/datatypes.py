"""One data-type module: each data type of a definition (definitions.DataType) as a form field,
for the three forms that draw typed values (a record's fields, a screen flow's fields, the skip
form's outputs), with its label; coercion of values is values.py (`to_json`, `from_json`).

Record field types are these data types less `multi_choice` and `json` (records.models.FieldType
is derived from RECORD_FIELD_TYPES), so a record field, a screen field and a flow output of one
type are drawn and read alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models.fields import BLANK_CHOICE_LABEL

from .definitions import DataType
from .people import person_label

LABELS: dict[str, str] = {
    DataType.text: "Text",
    DataType.long_text: "Long text",
    DataType.number: "Number",
    DataType.decimal: "Decimal",
    DataType.date: "Date",
    DataType.datetime: "Date and time",
    DataType.boolean: "Boolean",
    DataType.choice: "Choice",
    DataType.multi_choice: "Multiple choice",
    DataType.email: "Email",
    DataType.user: "User reference",
    DataType.json: "JSON",
}
RECORD_FIELD_TYPES: tuple[DataType, ...] = tuple(
    t for t in DataType if t not in (DataType.multi_choice, DataType.json)
)

# The format of a datetime-local input's value; the empty option of a required choice.
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
CHOOSE_LABEL = "Choose…"


def active_users() -> Any:
    return get_user_model().objects.filter(is_active=True).order_by(get_user_model().USERNAME_FIELD)


class UserChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A person, listed by name with the username that tells namesakes apart."""

    def label_from_instance(self, obj: Any) -> str:
        return person_label(obj)


# The Django field class of each type; a form may give its own subclasses (`classes`).
FIELD_CLASSES: dict[str, type[forms.Field]] = {
    DataType.text: forms.CharField,
    DataType.long_text: forms.CharField,
    DataType.number: forms.IntegerField,
    DataType.decimal: forms.DecimalField,
    DataType.date: forms.DateField,
    DataType.datetime: forms.DateTimeField,
    DataType.boolean: forms.BooleanField,
    DataType.choice: forms.ChoiceField,
    DataType.multi_choice: forms.MultipleChoiceField,
    DataType.email: forms.EmailField,
    DataType.user: UserChoiceField,
    DataType.json: forms.JSONField,
}


def whole(bound: float | None, rounding: Any) -> int | None:
    """A whole-number input's `min`/`max` attribute (`1`, not `1.0`)."""
    return None if bound is None else int(rounding(bound))


def form_field(
    type_: str,
    *,
    label: str,
    required: bool = False,
    help_text: str = "",
    choices: Iterable[str] = (),
    min_value: float | None = None,
    max_value: float | None = None,
    max_length: int | None = None,
    classes: Mapping[str, type[forms.Field]] | None = None,
) -> forms.Field:
    """The form field that draws a value of `type_` (an unknown type draws as text).

    A checkbox is never required (unticked is an answer: false); a choice offers an empty
    option first ("Choose…" when required, so nothing looks picked until someone picks)."""
    kind = type_ if type_ in FIELD_CLASSES else DataType.text
    cls = (classes or {}).get(kind) or FIELD_CLASSES[kind]
    kwargs: dict[str, Any] = {"label": label, "required": required, "help_text": help_text}
    match kind:
        case DataType.text | DataType.email:
            kwargs["max_length"] = max_length
        case DataType.long_text:
            kwargs.update(widget=forms.Textarea(attrs={"rows": 4}), max_length=max_length)
        case DataType.number:
            kwargs.update(min_value=whole(min_value, math.ceil), max_value=whole(max_value, math.floor))
        case DataType.decimal:
            kwargs.update(
                widget=forms.TextInput(attrs={"inputmode": "decimal"}),
                min_value=min_value,
                max_value=max_value,
            )
        case DataType.date:
            kwargs["widget"] = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
        case DataType.datetime:
            kwargs["widget"] = forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)
        case DataType.boolean:
            kwargs["required"] = False
        case DataType.choice:
            # Always an empty first option: a browser shows the first option of a select as
            # chosen, so without one a required choice would look answered before anyone picked
            # (and be sent as if they had). Required, it must be replaced by a pick.
            blank = ("", CHOOSE_LABEL if required else BLANK_CHOICE_LABEL)
            kwargs["choices"] = [blank, *((c, c) for c in choices)]
        case DataType.multi_choice:
            kwargs.update(choices=[(c, c) for c in choices], widget=forms.CheckboxSelectMultiple)
        case DataType.user:
            kwargs["queryset"] = active_users()
        case DataType.json:
            kwargs["widget"] = forms.Textarea(attrs={"rows": 2})
            kwargs["help_text"] = help_text or 'JSON, e.g. 1, "text", [1, 2] or {"a": 1}'
    return cls(**kwargs)
