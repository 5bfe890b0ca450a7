"""Whole-document validation: structure (pydantic), then references, dependency cycles and
expressions. Every problem is reported with its file and its path inside the document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import expressions
from .definitions import (
    END,
    FLOW_KINDS,
    INLINE_ACTIONS,
    AutolaunchedFlow,
    BusinessCalendar,
    CreateRecordAction,
    Gate,
    HttpAction,
    Orchestration,
    RecordStart,
    ScreenFlow,
    SendEmailAction,
    SetOutputsAction,
    Stage,
    UpdateRecordAction,
)
from .loading import (  # noqa: F401  (validation is where callers import them from)
    KIND_MODELS,
    MAX_BRACKET_DEPTH,
    MAX_NODES,
    DefinitionError,
    load_paths,
    load_text,
    parse_document,
)

STEP_FLOW_KIND = {"interactive": "screen_flow", "background": "autolaunched_flow"}

# Filled by other apps: extra checks on names the engine does not own.
RECORD_TYPE_CHECKS: list[Callable[[str], str | None]] = []
ASSIGNEE_CHECKS: list[Callable[[str, str], str | None]] = []  # (kind, value) -> error


@dataclass
class Parsed:
    source: str
    raw: dict[str, Any]
    doc: Any  # one of the definition models


@dataclass
class Result:
    documents: list[Parsed] = field(default_factory=list)
    errors: list[DefinitionError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Checker:
    def __init__(
        self, source: str, errors: list[DefinitionError], memo: dict[tuple[str, ...], list[str]] | None = None
    ):
        self.source = source
        self.errors = errors
        # The other apps' answers (a user, a group, a record type exists): asked once per name in
        # a batch, not per step that names it (a query each).
        self.memo = {} if memo is None else memo

    def assignee_errors(self, kind: str, value: str) -> list[str]:
        key = ("assignee", kind, value)
        if key not in self.memo:
            self.memo[key] = [m for check in ASSIGNEE_CHECKS if (m := check(kind, value))]
        return self.memo[key]

    def record_type_errors(self, name: str) -> list[str]:
        key = ("record_type", name)
        if key not in self.memo:
            self.memo[key] = [m for check in RECORD_TYPE_CHECKS if (m := check(name))]
        return self.memo[key]

    def err(self, path: str, message: str) -> None:
        self.errors.append(DefinitionError(self.source, path, message))

    def expr(self, path: str, source: str | None, *, names: frozenset[str] | None = None) -> None:
        if source is None:
            return
        reason = expressions.check(source, names=names or expressions.NAMES)
        if reason:
            self.err(path, reason)

    def template(self, path: str, source: str | None, *, names: frozenset[str] | None = None) -> None:
        if source is None:
            return
        reason = expressions.check(source, template=True, names=names or expressions.NAMES)
        if reason:
            self.err(path, reason)

    def duplicates(self, path: str, names: list[str], what: str) -> None:
        seen: set[str] = set()
        for i, n in enumerate(names):
            if n in seen:
                self.err(f"{path}[{i}]", f"duplicate {what} '{n}'")
            seen.add(n)


def _check_actions(c: _Checker, actions: list[Any], output_names: set[str] | None) -> None:
    for i, action in enumerate(actions):
        p = f"actions[{i}]"
        if isinstance(action, UpdateRecordAction | SetOutputsAction):
            for k, v in action.values.items():
                c.expr(f"{p}.values.{k}", v)
            if isinstance(action, SetOutputsAction) and output_names is not None:
                for k in action.values:
                    if k not in output_names:
                        c.err(f"{p}.values.{k}", f"'{k}' is not a declared output of this flow")
        elif isinstance(action, CreateRecordAction):
            c.expr(f"{p}.name", action.name)
            c.expr(f"{p}.owner", action.owner)
            for k, v in action.values.items():
                c.expr(f"{p}.values.{k}", v)
            for msg in c.record_type_errors(action.record_type):
                c.err(f"{p}.record_type", msg)
        elif isinstance(action, SendEmailAction):
            c.expr(f"{p}.to", action.to)
            c.template(f"{p}.subject", action.subject)
            c.template(f"{p}.body", action.body)
        elif isinstance(action, HttpAction):
            c.expr(f"{p}.url", action.url)
            for k, v in (action.json_body or {}).items():
                c.expr(f"{p}.json.{k}", v)
        else:
            from .registry import PYTHON_FLOWS

            if action.name not in PYTHON_FLOWS:
                known = ", ".join(sorted(PYTHON_FLOWS)) or "none registered"
                c.err(f"{p}.name", f"no Python flow registered as '{action.name}' ({known})")


def _find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in deps.get(n, []):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in deps:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _check_gate(c: _Checker, path: str, gate: Gate, flows: dict[str, str], stage: Stage | None) -> None:
    c.expr(f"{path}.condition", gate.condition)
    if gate.evaluation_flow:
        kind = flows.get(gate.evaluation_flow)
        if kind is None:
            c.err(f"{path}.evaluation_flow", f"unknown flow '{gate.evaluation_flow}'")
        elif kind != "evaluation_flow":
            c.err(
                f"{path}.evaluation_flow",
                f"'{gate.evaluation_flow}' is of kind {kind}; an evaluation_flow is needed here",
            )
    if stage is not None:
        keys = [s.key for s in stage.steps]
        for i, dep in enumerate(gate.after):
            if dep not in keys:
                c.err(f"{path}.after[{i}]", f"unknown step '{dep}' (steps in this stage: {', '.join(keys)})")


def _check_orchestration(
    c: _Checker, o: Orchestration, flows: dict[str, str], flow_docs: dict[str, Any]
) -> None:
    stage_keys = [s.key for s in o.stages]
    c.duplicates("stages", stage_keys, "stage key")
    _check_calendar_ref(c, "calendar", o.calendar, flows)
    c.duplicates("variables", [v.name for v in o.variables], "variable")
    all_steps = [(si, ti, t) for si, s in enumerate(o.stages) for ti, t in enumerate(s.steps)]
    seen_steps: set[str] = set()
    for si, ti, t in all_steps:
        if t.key in seen_steps:
            c.err(
                f"stages[{si}].steps[{ti}].key",
                f"duplicate step key '{t.key}' (step keys are unique in an orchestration)",
            )
        seen_steps.add(t.key)
    var_names = {v.name for v in o.variables}
    for i, v in enumerate(o.variables):
        c.expr(f"variables[{i}].default", v.default)
    if isinstance(o.start, RecordStart):
        c.expr("start.condition", o.start.condition)
        if o.start.run == "changed_to_meet" and not o.start.condition:
            c.err("start.run", "changed_to_meet needs a start condition")
    if o.start.record_type:
        for msg in c.record_type_errors(o.start.record_type):
            c.err("start.record_type", msg)
    if not isinstance(o.start, RecordStart):
        c.duplicates("start.inputs", [v.name for v in o.start.inputs], "input")
        for i, v in enumerate(o.start.inputs):
            c.expr(f"start.inputs[{i}].default", v.default)
    targets = {*stage_keys, END}
    for si, s in enumerate(o.stages):
        sp = f"stages[{si}]"
        _check_gate(c, f"{sp}.exit", s.exit, flows, None)
        if isinstance(s.next, str):
            if s.next not in targets:
                c.err(f"{sp}.next", f"unknown stage '{s.next}' (use a stage key or 'end')")
        elif s.next is not None:
            for oi, out in enumerate(s.next.outcomes):
                c.expr(f"{sp}.next.outcomes[{oi}].when", out.when)
                if out.goto not in targets:
                    c.err(
                        f"{sp}.next.outcomes[{oi}].goto",
                        f"unknown stage '{out.goto}' (use a stage key or 'end')",
                    )
            if s.next.default not in targets:
                c.err(f"{sp}.next.default", f"unknown stage '{s.next.default}' (use a stage key or 'end')")
        if s.fault_path is not None:
            if s.fault_path not in stage_keys:
                c.err(f"{sp}.fault_path", f"unknown stage '{s.fault_path}'")
            elif s.fault_path == s.key:
                c.err(f"{sp}.fault_path", "a stage cannot be its own fault path")
        # Duplicate step keys are reported once, by the orchestration-wide check above.
        deps = {t.key: list(t.start.after) for t in s.steps}
        cycle = _find_cycle(deps)
        if cycle:
            c.err(f"{sp}.steps", "cycle in 'after' dependencies: " + " -> ".join(cycle))
        for ti, t in enumerate(s.steps):
            tp = f"{sp}.steps[{ti}]"
            _check_gate(c, f"{tp}.start", t.start, flows, s)
            _check_gate(c, f"{tp}.completion", t.completion, flows, None)
            if t.wait is not None:
                _check_calendar_ref(c, f"{tp}.wait.calendar", t.wait.calendar, flows)
                c.expr(f"{tp}.wait.until", t.wait.until)
                c.expr(f"{tp}.wait.condition", t.wait.condition)
            if t.flow is None:  # a wait step (the model refuses other steps without one)
                continue
            want = STEP_FLOW_KIND[t.kind]
            kind = flows.get(t.flow)
            if kind is None:
                c.err(f"{tp}.flow", f"unknown flow '{t.flow}' (import it in the same batch or first)")
            elif kind != want:
                c.err(
                    f"{tp}.flow", f"{t.kind} steps need a flow of kind {want}; '{t.flow}' is of kind {kind}"
                )
            doc = flow_docs.get(t.flow) if kind == want else None
            if t.run == "inline" and isinstance(doc, AutolaunchedFlow):
                for ai, action in enumerate(doc.actions):
                    if action.type not in INLINE_ACTIONS:
                        c.err(
                            f"{tp}.run",
                            f"an inline step runs only {', '.join(sorted(INLINE_ACTIONS))} actions: "
                            f"flow '{t.flow}' actions[{ai}] is {action.type} (use run: worker)",
                        )
            for k, source in t.inputs.items():
                c.expr(f"{tp}.inputs.{k}", source)
                if doc is not None and k not in {i.name for i in doc.inputs}:
                    c.err(f"{tp}.inputs.{k}", f"'{k}' is not an input of flow '{t.flow}'")
            if doc is not None:
                for i in doc.inputs:
                    if i.required and i.name not in t.inputs and i.default is None:
                        c.err(f"{tp}.inputs", f"flow '{t.flow}' needs input '{i.name}'")
            for var, output in t.outputs.items():
                if var not in var_names:
                    c.err(f"{tp}.outputs.{var}", f"'{var}' is not a declared orchestration variable")
                if doc is not None and output not in doc.output_names():
                    c.err(f"{tp}.outputs.{var}", f"flow '{t.flow}' has no output '{output}'")
            if t.assignee is not None:
                c.expr(f"{tp}.assignee.expression", t.assignee.expression)
                for kind_name in ("user", "group", "queue"):
                    value = getattr(t.assignee, kind_name)
                    if value:
                        for msg in c.assignee_errors(kind_name, value):
                            c.err(f"{tp}.assignee.{kind_name}", msg)
            c.template(f"{tp}.email.subject", t.email.subject)
            c.template(f"{tp}.email.body", t.email.body)
            if t.sla is not None:
                _check_sla(c, f"{tp}.sla", t.sla, flows)


def _check_calendar_ref(c: _Checker, path: str, name: str | None, flows: dict[str, str]) -> None:
    if name is None:
        return
    kind = flows.get(name)
    if kind is None:
        c.err(path, f"unknown business calendar '{name}' (import it in the same batch or first)")
    elif kind != "business_calendar":
        c.err(path, f"'{name}' is a {kind}, not a business_calendar")


# What a rule's email templates see (workitems/sla.py renders them).
RULE_TEMPLATE_NAMES = frozenset({"record", "vars", "step", "item", "rule", "run"})
# A rule's `email.to` is one of these words or prefixes, or else an expression.
RULE_RECIPIENTS = ("assignee", "managers")
RULE_RECIPIENT_PREFIXES = ("user:", "group:")


def _check_sla(c: _Checker, path: str, sla: Any, flows: dict[str, str]) -> None:
    _check_calendar_ref(c, f"{path}.calendar", sla.calendar, flows)
    c.expr(f"{path}.due_at", sla.due_at)
    c.expr(f"{path}.priority_expression", sla.priority_expression)
    for ri, rule in enumerate(sla.rules):
        rp = f"{path}.rules[{ri}]"
        if rule.email is not None:
            to = rule.email.to.strip()
            if to not in RULE_RECIPIENTS and not to.startswith(RULE_RECIPIENT_PREFIXES):
                c.expr(f"{rp}.email.to", to, names=RULE_TEMPLATE_NAMES)
            for prefix, kind_name in (("user:", "user"), ("group:", "group")):
                if to.startswith(prefix):
                    for msg in c.assignee_errors(kind_name, to[len(prefix) :].strip()):
                        c.err(f"{rp}.email.to", msg)
            c.template(f"{rp}.email.subject", rule.email.subject, names=RULE_TEMPLATE_NAMES)
            if rule.email.body:
                c.template(f"{rp}.email.body", rule.email.body, names=RULE_TEMPLATE_NAMES)
        if rule.reassign is not None:
            for kind_name in ("user", "group", "queue"):
                value = getattr(rule.reassign, kind_name)
                if value:
                    for msg in c.assignee_errors(kind_name, value):
                        c.err(f"{rp}.reassign.{kind_name}", msg)


def _check_flow(c: _Checker, f: Any) -> None:
    if isinstance(f, BusinessCalendar):
        if len(set(f.holidays)) != len(f.holidays):
            c.err("holidays", "a holiday is listed twice")
        return
    c.duplicates("inputs", [i.name for i in f.inputs], "input")
    for i, v in enumerate(f.inputs):
        c.expr(f"inputs[{i}].default", v.default)
    if isinstance(f, ScreenFlow):
        c.duplicates("screens", [s.key for s in f.screens], "screen key")
        # Field names are the flow's outputs, so they are unique across all its screens.
        seen_fields: set[str] = set()
        for si, s in enumerate(f.screens):
            for fi, fld in enumerate(s.fields):
                if fld.name in seen_fields:
                    c.err(f"screens[{si}].fields[{fi}].name", f"duplicate field name '{fld.name}'")
                seen_fields.add(fld.name)
        for si, s in enumerate(f.screens):
            for fi, fld in enumerate(s.fields):
                c.expr(f"screens[{si}].fields[{fi}].default", fld.default)
    elif isinstance(f, AutolaunchedFlow):
        c.duplicates("outputs", [o.name for o in f.outputs], "output")
        _check_actions(c, f.actions, {o.name for o in f.outputs})
    else:
        _check_actions(c, f.actions, {"is_condition_met"})
        sets = any(
            isinstance(a, SetOutputsAction) and "is_condition_met" in a.values for a in f.actions
        ) or any(a.type == "call" for a in f.actions)
        if not sets:
            c.err("actions", "an evaluation flow must set the output 'is_condition_met'")


def validate_documents(
    items: list[tuple[str, dict[str, Any]]],
    *,
    known_flows: dict[str, tuple[str, Any]] | None = None,
) -> Result:
    """Validate a batch of raw documents together.

    `known_flows` maps api names of flows already stored (active versions) to (kind, model),
    so an orchestration can reference flows imported earlier."""
    result = Result()
    for source, raw in items:
        doc, errs = parse_document(source, raw)
        result.errors.extend(errs)
        if doc is not None:
            result.documents.append(Parsed(source, raw, doc))
    seen: dict[tuple[str, str], str] = {}
    for p in result.documents:
        group = "flow" if p.doc.kind in FLOW_KINDS else "orchestration"
        key = (group, p.doc.api_name)
        if key in seen:
            result.errors.append(
                DefinitionError(
                    p.source, "api_name", f"duplicate {group} '{p.doc.api_name}' (also in {seen[key]})"
                )
            )
        seen[key] = p.source
    flows: dict[str, str] = {k: v[0] for k, v in (known_flows or {}).items()}
    flow_docs: dict[str, Any] = {k: v[1] for k, v in (known_flows or {}).items()}
    for p in result.documents:
        if p.doc.kind in FLOW_KINDS:
            flows[p.doc.api_name] = p.doc.kind
            flow_docs[p.doc.api_name] = p.doc
    memo: dict[tuple[str, ...], list[str]] = {}
    for p in result.documents:
        c = _Checker(p.source, result.errors, memo)
        if isinstance(p.doc, Orchestration):
            _check_orchestration(c, p.doc, flows, flow_docs)
        else:
            _check_flow(c, p.doc)
    return result
