"""The builder's forms: one per kind of element, each turning what the person typed into the
parameters of an edit (ops.py) and a document's element back into initial values. Lists of pairs
(a step's inputs, a set_outputs action's values) are one "name: expression" a line."""

from __future__ import annotations

from typing import Any

from django import forms

from ..definitions import END, DataType
from . import ops

TYPES = [(t.value, t.value) for t in DataType]
KINDS = [
    ("background", "Background (an autolaunched flow on a worker)"),
    ("interactive", "Interactive (a screen flow for a person)"),
    ("wait", "Wait (a duration, a date or a condition)"),
]
ASSIGNEE = [
    ("", "Nobody yet"),
    ("user", "A user"),
    ("group", "A group"),
    ("queue", "A queue"),
    ("expression", "An expression"),
]
PRIORITIES = [
    ("", "Normal (default)"),
    ("low", "Low"),
    ("normal", "Normal"),
    ("high", "High"),
    ("urgent", "Urgent"),
]


class Pairs(forms.CharField):
    """ "name: value" a line <-> {name: value}."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "class": "font-monospace"}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dict[str, str]:  # type: ignore[override]
        text = super().clean(value) or ""
        out: dict[str, str] = {}
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            name, sep, rest = line.partition(":")
            if not sep or not name.strip():
                raise forms.ValidationError(f"line {n}: write name: value")
            out[name.strip()] = rest.strip()
        return out

    @staticmethod
    def text(d: Any) -> str:
        return "\n".join(f"{k}: {v}" for k, v in d.items()) if isinstance(d, dict) else ""


# Expression inputs offer the names expressions know (a datalist the page fills: variables,
# record fields, step outputs, inputs).
EXPRESSIONS = {
    "condition",
    "default",
    "start_condition",
    "completion_condition",
    "exit_condition",
    "wait_until",
    "wait_condition",
    "to",
    "url",
    "owner",
}


class BuilderForm(forms.Form):
    """Bootstrap's classes on every widget; the names' datalist on expression inputs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.style()

    def style(self) -> None:
        for name, field in self.fields.items():
            w = field.widget
            if isinstance(w, (forms.CheckboxInput, forms.CheckboxSelectMultiple)):
                w.attrs.setdefault("class", "form-check-input")
            elif isinstance(w, forms.Select):
                w.attrs.setdefault("class", "form-select")
            elif not isinstance(w, forms.HiddenInput) and "form-control" not in w.attrs.get("class", ""):
                w.attrs["class"] = (w.attrs.get("class", "") + " form-control").strip()
            if name in EXPRESSIONS or name.startswith("when_"):
                w.attrs.setdefault("list", "expr-names")
                w.attrs.setdefault("autocomplete", "off")


def sub(d: Any, key: str) -> dict[str, Any]:
    """d[key] when it is a mapping, else an empty one (a draft may hold anything)."""
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def _choices(form: forms.Form, name: str, choices: list[tuple[str, str]]) -> None:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


def _lines(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").replace(",", "\n").splitlines() if v.strip()]


class SettingsForm(BuilderForm):
    api_name = forms.CharField(
        max_length=80, label="API name", help_text="lower_snake_case; the name launches and the API use"
    )
    label = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    calendar = forms.CharField(
        max_length=80, required=False, help_text="A business calendar for the steps' SLAs"
    )

    @staticmethod
    def initial_of(o: dict[str, Any]) -> dict[str, Any]:
        return {k: o.get(k, "") for k in ("api_name", "label", "description", "calendar")}


class StartForm(BuilderForm):
    type = forms.ChoiceField(
        choices=[
            ("record", "When a record is created or updated"),
            ("autolaunched", "On demand (autolaunched)"),
        ]
    )
    record_type = forms.CharField(max_length=80, required=False)
    on = forms.ChoiceField(
        choices=[("create", "created"), ("update", "updated"), ("create_or_update", "created or updated")],
        required=False,
    )
    condition = forms.CharField(
        max_length=2000, required=False, help_text="An expression over record; empty: always"
    )
    run = forms.ChoiceField(
        choices=[("every_time", "every time it holds"), ("changed_to_meet", "only when it changes to hold")],
        required=False,
    )

    @staticmethod
    def initial_of(o: dict[str, Any]) -> dict[str, Any]:
        s = sub(o, "start")
        return {
            "type": s.get("type", "record"),
            "record_type": s.get("record_type", ""),
            "on": s.get("on", "create_or_update"),
            "condition": s.get("condition", ""),
            "run": s.get("run", "every_time"),
        }


# The start form's fields only a record-triggered start uses (shown as STEP_KIND_FIELDS are).
START_TYPE_FIELDS: dict[str, tuple[str, ...]] = {name: ("record",) for name in ("on", "condition", "run")}


class VariableForm(BuilderForm):
    old_name = forms.CharField(required=False, widget=forms.HiddenInput)
    where = forms.ChoiceField(
        choices=[("variables", "variables"), ("inputs", "inputs")],
        widget=forms.HiddenInput,
        initial="variables",
    )
    name = forms.CharField(max_length=80)
    type = forms.ChoiceField(choices=TYPES, initial="text")
    default = forms.CharField(max_length=2000, required=False, help_text="An expression")
    required = forms.BooleanField(required=False)
    description = forms.CharField(max_length=500, required=False)


class StageForm(BuilderForm):
    new_key = forms.CharField(max_length=80, label="Key")
    label = forms.CharField(max_length=200, required=False)
    exit_after = forms.MultipleChoiceField(
        required=False,
        label="Ends when these steps are done (empty: all of them)",
        widget=forms.CheckboxSelectMultiple,
    )
    exit_condition = forms.CharField(max_length=2000, required=False, label="Or when this holds")
    exit_evaluation_flow = forms.CharField(
        max_length=80, required=False, label="Or when this evaluation flow says so"
    )
    fault_path = forms.ChoiceField(required=False, label="When a step fails, go to")

    def __init__(self, *args: Any, steps: list[str], stages: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "exit_after", [(s, s) for s in steps])
        _choices(self, "fault_path", [("", "nowhere: the run stops in error"), *((s, s) for s in stages)])

    @staticmethod
    def initial_of(st: dict[str, Any]) -> dict[str, Any]:
        gate = sub(st, "exit")
        return {
            "new_key": st.get("key"),
            "label": st.get("label", ""),
            "exit_after": gate.get("after", []),
            "exit_condition": gate.get("condition", ""),
            "exit_evaluation_flow": gate.get("evaluation_flow", ""),
            "fault_path": st.get("fault_path", ""),
        }

    def params(self, key: str) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "key": key,
            **{
                k: d[k]
                for k in (
                    "new_key",
                    "label",
                    "exit_after",
                    "exit_condition",
                    "exit_evaluation_flow",
                    "fault_path",
                )
            },
        }


OUTCOME_ROWS = 4


class RouteForm(BuilderForm):
    """Where a stage goes: the next in order, a stage, the end, or a decision of up to
    OUTCOME_ROWS outcomes (label, when, goto) and a default."""

    next = forms.ChoiceField(required=False, label="Then")
    default = forms.ChoiceField(required=False, label="Otherwise go to")

    def __init__(self, *args: Any, stages: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        targets = [(s, f"stage {s}") for s in stages] + [("end", "the end")]
        _choices(
            self, "next", [("", "the next stage in order"), *targets, ("decision", "a decision (below)")]
        )
        _choices(self, "default", targets)
        for i in range(OUTCOME_ROWS):
            self.fields[f"label_{i}"] = forms.CharField(max_length=200, required=False, label="Outcome")
            self.fields[f"when_{i}"] = forms.CharField(max_length=2000, required=False, label="When")
            self.fields[f"goto_{i}"] = forms.ChoiceField(
                choices=[("", "-"), *targets], required=False, label="Go to"
            )
        self.style()

    @staticmethod
    def initial_of(st: dict[str, Any]) -> dict[str, Any]:
        nxt = st.get("next")
        if isinstance(nxt, dict):
            out: dict[str, Any] = {"next": "decision", "default": nxt.get("default", "end")}
            for i, o in enumerate((nxt.get("outcomes") or [])[:OUTCOME_ROWS]):
                out.update(
                    {
                        f"label_{i}": o.get("label", ""),
                        f"when_{i}": o.get("when", ""),
                        f"goto_{i}": o.get("goto", ""),
                    }
                )
            return out
        # No decision yet: one typed in goes to the end otherwise, not to the first stage listed.
        return {"next": nxt or "", "default": END}

    def rows(self) -> list[tuple[Any, Any, Any]]:
        return [(self[f"label_{i}"], self[f"when_{i}"], self[f"goto_{i}"]) for i in range(OUTCOME_ROWS)]

    def params(self, key: str) -> dict[str, Any]:
        d = self.cleaned_data
        if d["next"] != "decision":
            return {"key": key, "next": d["next"]}
        outcomes = [
            {"label": d[f"label_{i}"], "when": d[f"when_{i}"], "goto": d[f"goto_{i}"]}
            for i in range(OUTCOME_ROWS)
            if d[f"when_{i}"] or d[f"goto_{i}"]
        ]
        if not outcomes:
            raise ops.BuilderError("a decision needs at least one outcome: a condition and where it goes")
        return {"key": key, "outcomes": outcomes, "default": d["default"] or "end"}


class StepForm(BuilderForm):
    new_key = forms.CharField(max_length=80, label="Key")
    label = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=KINDS)
    flow = forms.CharField(
        max_length=80,
        required=False,
        help_text="The flow it runs (interactive: a screen flow; background: an autolaunched flow)",
    )
    wait_for = forms.CharField(
        max_length=40, required=False, label="Wait for", help_text="2h, 3d, 1 business day"
    )
    wait_until = forms.CharField(
        max_length=2000, required=False, label="Or until", help_text="An expression giving a date or datetime"
    )
    wait_condition = forms.CharField(max_length=2000, required=False, label="Or until this holds")
    wait_timeout = forms.CharField(
        max_length=40,
        required=False,
        label="Give up after",
        help_text="Condition waits: fail the step after this",
    )
    after = forms.MultipleChoiceField(
        required=False,
        label="Starts after these steps (empty: when the stage starts)",
        widget=forms.CheckboxSelectMultiple,
    )
    start_condition = forms.CharField(max_length=2000, required=False, label="Starts only when this holds")
    completion_condition = forms.CharField(
        max_length=2000,
        required=False,
        label="Complete when this holds",
        help_text="Interactive steps: instead of when the assignee finishes the form",
    )
    completion_evaluation_flow = forms.CharField(
        max_length=80, required=False, label="Or when this evaluation flow says so"
    )
    inputs = Pairs(label="Inputs (input: expression, one a line)")
    # A step's outputs map orchestration variables to the flow's outputs (definitions.Step).
    outputs = Pairs(label="Outputs kept in variables (variable: flow output, one a line)")
    assignee_kind = forms.ChoiceField(choices=ASSIGNEE, required=False, label="Assigned to")
    assignee = forms.CharField(
        max_length=200,
        required=False,
        label="Who",
        help_text="A username, a group's name, a queue's api name or an expression",
    )
    claim_required = forms.BooleanField(
        required=False, label="Someone must claim it first (group and queue items)"
    )
    due = forms.CharField(max_length=40, required=False, label="Due", help_text="4h, 2d, 3 business days")
    priority = forms.ChoiceField(choices=PRIORITIES, required=False)
    email_enabled = forms.BooleanField(required=False, initial=True, label="Email the assignee")
    email_subject = forms.CharField(max_length=300, required=False, label="Email subject")
    email_body = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Email body")
    max_attempts = forms.IntegerField(
        min_value=1, max_value=20, required=False, label="Tries before it fails (background)"
    )

    def __init__(self, *args: Any, siblings: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "after", [(s, s) for s in siblings])

    @staticmethod
    def initial_of(sp: dict[str, Any]) -> dict[str, Any]:
        def sub(name: str) -> dict[str, Any]:
            v = sp.get(name)
            return v if isinstance(v, dict) else {}

        wait, start, assignee, email, sla = (
            sub("wait"),
            sub("start"),
            sub("assignee"),
            sub("email"),
            sub("sla"),
        )
        kind = next((k for k in ("user", "group", "queue", "expression") if assignee.get(k)), "")
        return {
            "new_key": sp.get("key"),
            "label": sp.get("label", ""),
            "kind": sp.get("kind", "background"),
            "flow": sp.get("flow", ""),
            "wait_for": wait.get("for", ""),
            "wait_until": wait.get("until", ""),
            "wait_condition": wait.get("condition", ""),
            "wait_timeout": wait.get("timeout", ""),
            "after": start.get("after", []),
            "start_condition": start.get("condition", ""),
            "completion_condition": sub("completion").get("condition", ""),
            "completion_evaluation_flow": sub("completion").get("evaluation_flow", ""),
            "inputs": Pairs.text(sp.get("inputs")),
            "outputs": Pairs.text(sp.get("outputs")),
            "assignee_kind": kind,
            "assignee": assignee.get(kind, "") if kind else "",
            "claim_required": bool(sp.get("claim_required")),
            "due": sla.get("due", ""),
            "priority": sla.get("priority", ""),
            "email_enabled": email.get("enabled", True),
            "email_subject": email.get("subject", ""),
            "email_body": email.get("body", ""),
            "max_attempts": sp.get("max_attempts"),
        }

    def fields_of(self, old: dict[str, Any]) -> dict[str, Any]:
        """The step's document fields (ops.step_save: empty ones are dropped), keeping what this
        form does not show: the start gate's evaluation flow, the SLA's other settings and
        rules, the email's other keys."""
        d = self.cleaned_data
        kind = d["kind"]
        start = dict(old.get("start") or {}) if isinstance(old.get("start"), dict) else {}
        start.update({"after": d["after"], "condition": d["start_condition"]})
        start = {k: v for k, v in start.items() if v}
        completion = {
            "condition": d["completion_condition"],
            "evaluation_flow": d["completion_evaluation_flow"],
        }
        completion = {k: v for k, v in completion.items() if v}
        sla = dict(old.get("sla") or {}) if isinstance(old.get("sla"), dict) else {}
        sla.update({"due": d["due"], "priority": d["priority"]})
        sla = {k: v for k, v in sla.items() if v not in ("", None, [])}
        email = dict(old.get("email") or {}) if isinstance(old.get("email"), dict) else {}
        email.update({"subject": d["email_subject"], "body": d["email_body"]})
        email = {k: v for k, v in email.items() if v}
        if not d["email_enabled"]:
            email["enabled"] = False
        wait = {
            "for": d["wait_for"],
            "until": d["wait_until"],
            "condition": d["wait_condition"],
            "timeout": d["wait_timeout"],
        }
        a_kind, who = d["assignee_kind"], d["assignee"].strip()
        return {
            "label": d["label"],
            "kind": kind,
            "flow": d["flow"] if kind != "wait" else "",
            "wait": {k: v for k, v in wait.items() if v} if kind == "wait" else None,
            "start": start,
            "completion": completion if kind == "interactive" else None,
            "inputs": d["inputs"],
            "outputs": d["outputs"],
            "assignee": {a_kind: who} if kind == "interactive" and a_kind and who else None,
            "claim_required": (d["claim_required"] or None) if kind == "interactive" else None,
            "sla": sla if kind == "interactive" else None,
            "email": email if kind == "interactive" else None,
            "max_attempts": d["max_attempts"] if kind == "background" else None,
        }


# The step form's fields only some kinds use (the others are every kind's): the page hides them
# while another kind is chosen (builder.js), so an interactive step's form shows no wait and no
# retries.
STEP_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "flow": ("interactive", "background"),
    "inputs": ("interactive", "background"),
    "outputs": ("interactive", "background"),
    **{name: ("wait",) for name in ("wait_for", "wait_until", "wait_condition", "wait_timeout")},
    **{
        name: ("interactive",)
        for name in (
            "completion_condition",
            "completion_evaluation_flow",
            "assignee_kind",
            "assignee",
            "claim_required",
            "due",
            "priority",
            "email_enabled",
            "email_subject",
            "email_body",
        )
    },
    "max_attempts": ("background",),
}


class NewStepForm(BuilderForm):
    key = forms.CharField(max_length=80, required=False, help_text="Empty: step_1, step_2, ...")
    kind = forms.ChoiceField(choices=KINDS)


class FlowForm(BuilderForm):
    label = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class NewFlowForm(BuilderForm):
    kind = forms.ChoiceField(
        choices=[
            ("screen_flow", "Screen flow (a form for a person)"),
            ("autolaunched_flow", "Autolaunched flow (actions, no person)"),
        ]
    )
    api_name = forms.CharField(max_length=80)
    label = forms.CharField(max_length=200, required=False)


class OutputsForm(BuilderForm):
    outputs = Pairs(label="Outputs (name: type, one a line)")


class ScreenForm(BuilderForm):
    new_key = forms.CharField(max_length=80, label="Key")
    label = forms.CharField(max_length=200, required=False)
    help = forms.CharField(max_length=2000, required=False)


class FieldForm(BuilderForm):
    old_name = forms.CharField(required=False, widget=forms.HiddenInput)
    name = forms.CharField(max_length=80)
    type = forms.ChoiceField(choices=TYPES, initial="text")
    label = forms.CharField(max_length=200, required=False)
    help = forms.CharField(max_length=2000, required=False)
    required = forms.BooleanField(required=False)
    default = forms.CharField(max_length=2000, required=False, help_text="An expression")
    choices = forms.CharField(
        max_length=5000,
        required=False,
        # A textarea: the choices are shown one a line, which a one-line input would run together.
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="choice fields: one a line, or comma separated",
    )
    min_length = forms.IntegerField(required=False, min_value=0)
    max_length = forms.IntegerField(required=False, min_value=0)
    min_value = forms.FloatField(required=False)
    max_value = forms.FloatField(required=False)

    @staticmethod
    def initial_of(f: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: f.get(k, "")
            for k in (
                "name",
                "type",
                "label",
                "help",
                "default",
                "min_length",
                "max_length",
                "min_value",
                "max_value",
            )
        }
        out.update(
            old_name=f.get("name", ""),
            required=bool(f.get("required")),
            choices="\n".join(f.get("choices") or []),
        )
        return out

    def values(self) -> dict[str, Any]:
        d = dict(self.cleaned_data)
        d.pop("old_name")
        d["choices"] = _lines(d["choices"])
        d["required"] = d["required"] or None
        return d


ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "update_record": ("values",),
    "create_record": ("record_type", "name", "values", "owner", "output"),
    "send_email": ("to", "subject", "body"),
    "http": ("method", "url", "json", "output"),
    "set_outputs": ("values",),
    "call": ("name",),
}


class ActionForm(BuilderForm):
    """Every action's fields; the page shows those of the action's type (ACTION_FIELDS)."""

    type = forms.ChoiceField(choices=[(t, t.replace("_", " ")) for t in ops.ACTION_TYPES])
    values = Pairs(label="Values (name: expression, one a line)")
    record_type = forms.CharField(max_length=80, required=False)
    name = forms.CharField(
        max_length=2000,
        required=False,
        help_text="create record: an expression for its name; call: the Python flow's name",
    )
    owner = forms.CharField(max_length=2000, required=False)
    output = forms.CharField(max_length=80, required=False, help_text="The output that receives the result")
    to = forms.CharField(
        max_length=2000, required=False, help_text="An expression giving an address or a list"
    )
    subject = forms.CharField(max_length=300, required=False)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    method = forms.ChoiceField(
        choices=[(m, m) for m in ("POST", "GET", "PUT", "PATCH", "DELETE")], required=False
    )
    url = forms.CharField(max_length=2000, required=False)
    json = Pairs(label="JSON body (key: expression, one a line)")

    @staticmethod
    def initial_of(a: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: a.get(k, "")
            for k in (
                "type",
                "record_type",
                "name",
                "owner",
                "output",
                "to",
                "subject",
                "body",
                "method",
                "url",
            )
        }
        out.update(values=Pairs.text(a.get("values")), json=Pairs.text(a.get("json")))
        return out

    def action(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {"type": d["type"], **{k: d[k] for k in ACTION_FIELDS.get(d["type"], ())}}
