"""A Django form for one screen of a screen flow.

The form draws the fields (widgets, labels, help, required marks, ids that tie errors to
fields) but does not have rules of its own: every field is checked by the flow's own
`orchestration.flows.screen_field_value`, the function `workitem_complete` runs at Finish. So
Next shows exactly the message Finish would, and the two can never disagree."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.utils.dateparse import parse_datetime
from django.utils.html import escape

from orchestration import datatypes
from orchestration.definitions import DataType, Screen, ScreenField
from orchestration.flows import screen_field_value
from orchestration.people import person_name
from orchestration.values import TypeCoercionError

DATETIME_LOCAL = datatypes.DATETIME_LOCAL
# Submitted field names carry this prefix, so that a flow field called `action` or `screen`
# cannot collide with the form's own controls.
PREFIX = "f"


# The flow's generic "expected a value of type X", said the way a form says it.
FRIENDLY = {
    "number": "Enter a whole number.",
    "decimal": "Enter a number.",
    "email": "Enter a valid email address.",
    "user": "Choose one of the listed people.",
}


def sentence(message: str, type_: str = "") -> str:
    """`expected a whole number` -> `Expected a whole number.`"""
    message = message.strip()
    if message.startswith("expected a value of type"):
        message = FRIENDLY.get(type_ or message.rsplit(" ", 1)[-1].rstrip("."), message)
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else f"{message}."


active_users = datatypes.active_users


class FlowChecked:
    """Mixin for form fields: cleaning is the flow's, not Django's (see the module docstring)."""

    spec: ScreenField

    def clean(self, value: Any) -> Any:
        if isinstance(value, str) and self.spec.type != DataType.long_text:
            value = value.strip()
        try:
            return screen_field_value(self.spec, value)
        except TypeCoercionError as exc:
            raise ValidationError(sentence(str(exc), self.spec.type), code="invalid") from exc


class TextField(FlowChecked, forms.CharField):
    pass


class IntField(FlowChecked, forms.IntegerField):
    pass


class DecimalField(FlowChecked, forms.DecimalField):
    pass


class DateField(FlowChecked, forms.DateField):
    pass


class DateTimeField(FlowChecked, forms.DateTimeField):
    def clean(self, value: Any) -> Any:
        # A datetime-local input sends wall-clock time: read it in the current time zone, so
        # the stored value has an offset and compares with now() in expressions.
        parsed = parse_datetime(value.strip()) if isinstance(value, str) and value.strip() else None
        if parsed is not None and timezone.is_naive(parsed):
            value = timezone.make_aware(parsed)
        return super().clean(value)


class BoolField(FlowChecked, forms.BooleanField):
    pass


class ChoiceField(FlowChecked, forms.ChoiceField):
    pass


class MultiChoiceField(FlowChecked, forms.MultipleChoiceField):
    pass


class EmailField(FlowChecked, forms.EmailField):
    pass


class UserField(FlowChecked, datatypes.UserChoiceField):
    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        # The flow accepts any id or username; the form also checks that the person exists.
        if value is not None:
            lookup = {"pk": value} if isinstance(value, int) else {get_user_model().USERNAME_FIELD: value}
            if not active_users().filter(**lookup).exists():
                raise ValidationError("Choose one of the listed people.", code="invalid_choice")
        return value


# Screen fields are drawn by the data-type module with the flow-checked classes above.
SCREEN_FIELD_CLASSES: dict[str, type[forms.Field]] = {
    DataType.text: TextField,
    DataType.long_text: TextField,
    DataType.number: IntField,
    DataType.decimal: DecimalField,
    DataType.date: DateField,
    DataType.datetime: DateTimeField,
    DataType.boolean: BoolField,
    DataType.choice: ChoiceField,
    DataType.multi_choice: MultiChoiceField,
    DataType.email: EmailField,
    DataType.user: UserField,
    DataType.json: TextField,
}


def form_field(spec: ScreenField) -> forms.Field:
    """The form field that draws one screen field."""
    field = datatypes.form_field(
        spec.type,
        label=spec.label or spec.name,
        # crispy-bootstrap5 prints help text with |safe; definitions are data, so escape here.
        help_text=escape(spec.help),
        required=spec.required,
        choices=spec.choices,
        min_value=spec.min_value,
        max_value=spec.max_value,
        max_length=spec.max_length,
        classes=SCREEN_FIELD_CLASSES,
    )
    field.spec = spec  # type: ignore[attr-defined]
    return field


def display_value(spec: ScreenField, value: Any) -> Any:
    """A stored value (JSON, or as typed) in the form a widget shows."""
    if spec.type == DataType.datetime and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            if timezone.is_aware(parsed):
                # datetime-local inputs take local wall-clock time without an offset.
                parsed = timezone.localtime(parsed)
            return parsed.strftime(DATETIME_LOCAL)
    if spec.type == DataType.boolean:
        return value is True or str(value).lower() in {"true", "1", "yes", "on"}
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


class ScreenForm(forms.Form):
    """The fields of one screen. Bound to a POST it checks them; unbound it shows `values`."""

    def __init__(
        self,
        *,
        screen: Screen,
        data: Any = None,
        values: dict[str, Any] | None = None,
        id_prefix: str = "wi",
    ) -> None:
        values = values or {}
        initial = {f.name: display_value(f, values[f.name]) for f in screen.fields if f.name in values}
        super().__init__(data=data, initial=initial, prefix=PREFIX, auto_id=f"{id_prefix}_%s")
        self.screen = screen
        for spec in screen.fields:
            self.fields[spec.name] = form_field(spec)

    @classmethod
    def bound_to(cls, *, screen: Screen, values: dict[str, Any], id_prefix: str = "wi") -> ScreenForm:
        """A form bound to stored values as if they had just been posted: checking it shows
        the same errors the person saw when they sent them."""
        data: MultiValueDict[str, str] = MultiValueDict()
        for spec in screen.fields:
            key = f"{PREFIX}-{spec.name}"
            value = display_value(spec, values.get(spec.name))
            if spec.type == DataType.boolean:
                if value:
                    data[key] = "on"
            elif spec.type == DataType.multi_choice:
                items = value if isinstance(value, list) else ([value] if value not in (None, "") else [])
                data.setlist(key, [str(v) for v in items])
            else:
                data[key] = "" if value is None else str(value)
        return cls(screen=screen, data=data, id_prefix=id_prefix)

    def typed(self) -> dict[str, Any]:
        """What the person sent, valid or not, JSON-safe: kept in their draft as is, so Back,
        a reload or an error never loses a keystroke."""
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            raw = field.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
            if isinstance(raw, str) and field.spec.type != DataType.long_text:  # type: ignore[attr-defined]
                raw = raw.strip()
            out[name] = raw
        return out

    def add_errors(self, errors: dict[str, list[str]]) -> None:
        """Put a service's per-field messages on the fields (others on the form)."""
        for name, messages in errors.items():
            for message in messages:
                spec = self.fields[name].spec if name in self.fields else None  # type: ignore[attr-defined]
                self.add_error(name if spec else None, sentence(message, spec.type if spec else ""))

    def focus_first(self) -> None:
        """Let the browser (and htmx after a swap) move focus to the first field with an error,
        or else to the first field: a keyboard or screen reader user lands where to act."""
        names = [n for n in self.fields if self.is_bound and n in self.errors] or list(self.fields)
        if names:
            self.fields[names[0]].widget.attrs["autofocus"] = True


# --- the Work Items monitoring page -------------------------------------------------------------


class ManageFilterForm(forms.Form):
    """The filters of the Work Items page (GET). A value that does not parse is reported next to
    its field and ignored, so a hand-edited address still shows a page."""

    view = forms.ChoiceField(choices=[], required=False)
    who = forms.CharField(label="Assigned to", required=False, max_length=150)  # the picker's text
    user = forms.CharField(label="Assigned to user", required=False, max_length=150)
    group = forms.CharField(label="Group", required=False, max_length=150)
    queue = forms.CharField(label="Queue", required=False, max_length=80)
    orchestration = forms.CharField(label="Orchestration", required=False, max_length=80)
    record_type = forms.CharField(label="Record type", required=False, max_length=80)
    older_than = forms.IntegerField(label="Older than (days)", required=False, min_value=0, max_value=36500)

    def __init__(self, *args: Any, views: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["view"].choices = views  # type: ignore[attr-defined]


REASSIGN_KINDS = [("user", "User"), ("group", "Group"), ("queue", "Queue")]


class ReassignForm(forms.Form):
    """Who to move the selected items to, and why. The page's picker sends `pick`, a token of
    the user, group or queue picked (workitems/picker.py); without it `target` is resolved as
    typed: by `kind` when given (a username, a group name, a queue's api name or label), else by
    any exact name, with near matches offered when it names no one. `choice` is the result."""

    items = forms.TypedMultipleChoiceField(
        coerce=int,
        choices=[],
        error_messages={"required": "Select at least one item to reassign."},
    )
    pick = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
    kind = forms.ChoiceField(label="Reassign to a", choices=REASSIGN_KINDS, required=False)
    target = forms.CharField(label="Assign to", max_length=150, required=False)
    reason = forms.CharField(label="Reason", required=False, max_length=500, widget=forms.TextInput)

    choice: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "reassign-%s")
        super().__init__(*args, **kwargs)
        # Any id may be sent: the service reports the ones that do not exist or are closed.
        items = self.data.getlist("items") if hasattr(self.data, "getlist") else self.data.get("items", [])
        self.fields["items"].choices = [(v, v) for v in items if str(v).isdigit()]  # type: ignore[attr-defined]
        self.fields["items"].error_messages["invalid_choice"] = "Select the items to reassign by their boxes."

    def clean(self) -> dict[str, Any]:
        from . import picker

        data = super().clean() or {}
        token, kind = (data.get("pick") or "").strip(), data.get("kind") or ""
        target = (data.get("target") or "").strip()
        if token:
            self.choice = picker.resolve_token(token)
            if self.choice is None:
                self.add_error("target", "That choice is no longer available: pick again from the list.")
            return data
        if not target:
            self.add_error("target", "Name the user, group or queue to reassign to.")
        elif kind:
            self.choice = picker.resolve_value(kind, target)
            if self.choice is None:
                missing = {"user": "active user", "group": "group", "queue": "queue"}[kind]
                self.add_error("target", f"There is no {missing} “{target}”.")
        else:
            found = picker.resolve_text(target)
            if len(found) == 1:
                self.choice = found[0]
            elif found:
                self.add_error("target", picker.ambiguous_message(target, found))
            else:
                self.add_error("target", picker.not_found_message(target))
        return data

    @property
    def target_object(self) -> Any:
        return self.choice.obj if self.choice is not None else None

    def target_label(self) -> str:
        """ "Dana Whitfield", "group support", "queue Triage": how messages name the new assignee."""
        choice = self.choice
        if choice.kind == "user":
            return person_name(choice.obj)
        return choice.described

    def assignee(self) -> dict[str, Any]:
        """The keyword argument the reassign service takes: user=, group= or queue=."""
        return {self.choice.kind: self.choice.obj}
