"""Whole-document validation: structure (pydantic), then references, dependency cycles and
expressions. Every problem is reported with its file and its path inside the document."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import expressions
from .definitions import (
    END,
    FLOW_KINDS,
    INLINE_ACTIONS,
    AutolaunchedFlow,
    CreateRecordAction,
    Document,
    EvaluationFlow,
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

KIND_MODELS: dict[str, type[BaseModel]] = {
    "orchestration": Orchestration,
    "screen_flow": ScreenFlow,
    "autolaunched_flow": AutolaunchedFlow,
    "evaluation_flow": EvaluationFlow,
}
STEP_FLOW_KIND = {"interactive": "screen_flow", "background": "autolaunched_flow"}

# Filled by other apps: extra checks on names the engine does not own.
RECORD_TYPE_CHECKS: list[Callable[[str], str | None]] = []
ASSIGNEE_CHECKS: list[Callable[[str, str], str | None]] = []  # (kind, value) -> error


@dataclass(frozen=True)
class DefinitionError:
    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        at = self.path or "(document)"
        return f"{where}{at}: {self.message}"


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)

# YAML 1.1 reads on/off/yes/no as booleans, so `start: {on: create}` arrived with the key True.
# Definitions follow YAML 1.2 (and JSON): only true/false are booleans.
_BOOL_TAG = "tag:yaml.org,2002:bool"
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_text(text: str, source: str) -> tuple[list[dict[str, Any]], list[DefinitionError]]:
    """Parse YAML or JSON text holding one or more documents (YAML `---` separated)."""
    errors: list[DefinitionError] = []
    docs: list[dict[str, Any]] = []
    deep = _deep_line(text, MAX_BRACKET_DEPTH)
    if deep:
        # Refused before parsing: the parsers recurse per level and take seconds to reach
        # Python's recursion limit on a few thousand brackets.
        return [], [DefinitionError(source, "", f"cannot parse: nested too deeply (near line {deep})")]
    try:
        if source.endswith(".json"):
            loaded = json.loads(text)
            items = loaded if isinstance(loaded, list) else [loaded]
        else:
            items = [d for d in yaml.load_all(text, Loader=_UniqueKeyLoader) if d is not None]
    except RecursionError:
        # The parsers recurse per level: say where the nesting got too deep, not just that
        # Python's stack ran out.
        line = _deep_line(text, 0) or 1
        return [], [DefinitionError(source, "", f"cannot parse: nested too deeply (near line {line})")]
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        return [], [DefinitionError(source, "", f"cannot parse: {exc}")]
    except (ValueError, TypeError) as exc:
        # PyYAML's constructors raise these for a tagged value they cannot build
        # (`!!int x`, an impossible timestamp): still a parse error of the file.
        return [], [DefinitionError(source, "", f"cannot parse: {type(exc).__name__}: {exc}")]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(DefinitionError(source, f"document {i + 1}", "must be a mapping"))
            continue
        docs.append(item)
    return docs, errors


MAX_BRACKET_DEPTH = 100  # no definition needs more than a handful
MAX_NODES = 50_000  # values in one document, YAML aliases expanded


def _deep_line(text: str, limit: int) -> int:
    """The first line where brackets nest more than `limit` deep, or 0 (quotes are not
    tracked: a string full of brackets may be refused, which no definition needs either)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            depth += (char in "[{") - (char in "]}")
            if depth > limit:
                return number
    return 0


def load_paths(paths: Iterable[str | Path]) -> tuple[list[tuple[str, dict[str, Any]]], list[DefinitionError]]:
    found: list[tuple[str, dict[str, Any]]] = []
    errors: list[DefinitionError] = []
    for p in paths:
        path = Path(p)
        files = (
            sorted(f for f in path.rglob("*") if f.suffix in {".yaml", ".yml", ".json"})
            if path.is_dir()
            else [path]
        )
        for f in files:
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(DefinitionError(str(f), "", f"cannot read: {exc}"))
                continue
            docs, errs = load_text(text, str(f))
            found.extend((str(f), d) for d in docs)
            errors.extend(errs)
    return found, errors


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or str(part).startswith(
            ("function-", "union[", "tagged-union[")
        ):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_errors(source: str, exc: ValidationError) -> list[DefinitionError]:
    out = []
    for err in exc.errors(include_url=False):
        raw_loc = err["loc"]
        if len(raw_loc) >= 4 and raw_loc[0] == "stages" and raw_loc[2] == "next":
            # `next` is a stage key or a decision: pydantic reports a failure for each branch
            # of the union. Keep the one that matches what was written.
            branch, is_mapping = raw_loc[3], isinstance(err["input"], dict)
            if branch == "str" and is_mapping:
                continue  # a decision was written: its own errors say what is wrong
            if branch == "Decision" and not is_mapping and len(raw_loc) == 4:
                continue
            if branch == "str":
                err = {**err, "msg": "must be a stage key, 'end', or a decision (outcomes and default)"}
        loc = [p for p in raw_loc if p not in KIND_MODELS]
        # Discriminated unions add the tag to the path: drop it (it is not in the document).
        loc = [
            p
            for p in loc
            if not (isinstance(p, str) and p in {"record", "autolaunched"} and loc and p != loc[-1])
        ]
        loc = [
            p
            for p in loc
            if p
            not in {
                "update_record",
                "create_record",
                "send_email",
                "http",
                "set_outputs",
                "call",
                "str",
                "Decision",
            }
        ]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "string_pattern_mismatch":
            msg = "must be lower_snake_case: a letter, then letters, digits or _ (max 80)"
        out.append(DefinitionError(source, _loc(loc), msg))
    return out


_ADAPTER: TypeAdapter[Any] = TypeAdapter(Document)


def _unstorable(raw: Any) -> tuple[str, str] | None:
    """Where the first value PostgreSQL's jsonb cannot store is, and why; None if there is none.

    A parsed document is stored as JSON: a NUL character, a lone surrogate (`"\\ud800"` in YAML
    or JSON), a float that is not finite (YAML `.nan`, `.inf`) or a YAML-only type (`!!binary`,
    a date, a set) would make the INSERT fail: a 500 instead of a message."""
    # Paths are linked (parent, key) pairs, written out only for the error: copying a path per
    # value would be quadratic in the depth.
    stack: list[tuple[Any, Any]] = [(None, raw)]
    visited = 0
    while stack:
        path, value = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            # A YAML alias that contains itself (`a: &x [*x]`) never ends, and nested aliases
            # ("billion laughs") multiply: both stop here instead of holding the request.
            return "(document)", f"more than {MAX_NODES} values once YAML aliases are expanded"
        if isinstance(value, str):
            if "\x00" in value:
                return _path_text(path), "text cannot contain NUL (\\x00) characters"
            if not _is_utf8(value):
                return _path_text(path), "text cannot contain lone surrogates (\\ud800-\\udfff)"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return _path_text(path), f"a number must be finite (got {value!r})"
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and ("\x00" in k or not _is_utf8(k)):
                    return _path_text(path), "a key cannot contain NUL characters or lone surrogates"
                stack.append(((path, k), v))
        elif isinstance(value, list):
            stack.extend(((path, i), v) for i, v in enumerate(value))
        elif value is not None and not isinstance(value, bool | int):
            return _path_text(
                path
            ), f"a {type(value).__name__} value is not allowed here (quote it to make it text)"
    return None


def _path_text(path: Any) -> str:
    parts: list[Any] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return _loc(reversed(parts)) or "(document)"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_document(source: str, raw: dict[str, Any]) -> tuple[Any | None, list[DefinitionError]]:
    bad = _unstorable(raw)
    if bad is not None:
        return None, [DefinitionError(source, *bad)]
    kind = raw.get("kind")
    # `kind` may be any YAML value (a list is unhashable): compare only strings.
    if not isinstance(kind, str) or kind not in KIND_MODELS:
        allowed = ", ".join(KIND_MODELS)
        return None, [DefinitionError(source, "kind", f"must be one of {allowed} (got {kind!r})")]
    try:
        return KIND_MODELS[kind].model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_errors(source, exc)
    except RecursionError:
        return None, [DefinitionError(source, "", "document nested too deeply")]


class _Checker:
    def __init__(self, source: str, errors: list[DefinitionError]):
        self.source = source
        self.errors = errors

    def err(self, path: str, message: str) -> None:
        self.errors.append(DefinitionError(self.source, path, message))

    def expr(self, path: str, source: str | None, *, names: frozenset[str] | None = None) -> None:
        if source is None:
            return
        reason = expressions.check(source, names=names or expressions.NAMES)
        if reason:
            self.err(path, reason)

    def template(self, path: str, source: str | None) -> None:
        if source is None:
            return
        reason = expressions.check(source, template=True)
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
            for check in RECORD_TYPE_CHECKS:
                msg = check(action.record_type)
                if msg:
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
        for check in RECORD_TYPE_CHECKS:
            msg = check(o.start.record_type)
            if msg:
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
            want = STEP_FLOW_KIND[t.kind]
            kind = flows.get(t.flow)
            if kind is None:
                c.err(f"{tp}.flow", f"unknown flow '{t.flow}' (import it in the same batch or first)")
            elif kind != want:
                c.err(
                    f"{tp}.flow", f"{t.kind} steps need a flow of kind {want}; '{t.flow}' is of kind {kind}"
                )
            doc = flow_docs.get(t.flow)
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
                        for assignee_check in ASSIGNEE_CHECKS:
                            msg = assignee_check(kind_name, value)
                            if msg:
                                c.err(f"{tp}.assignee.{kind_name}", msg)
            c.template(f"{tp}.email.subject", t.email.subject)
            c.template(f"{tp}.email.body", t.email.body)


def _check_flow(c: _Checker, f: Any) -> None:
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
    for p in result.documents:
        c = _Checker(p.source, result.errors)
        if isinstance(p.doc, Orchestration):
            _check_orchestration(c, p.doc, flows, flow_docs)
        else:
            _check_flow(c, p.doc)
    return result
