"""The builder's edits: pure functions over a draft's documents (the raw dicts the YAML holds:
{"orchestration": {...}, "flows": {api_name: {...}}}), each returning a short summary for the
draft's history. They check what they need to act (the element exists, a key is free) and raise
BuilderError with a message for the person otherwise; everything else (a reference to nothing,
an expression that does not parse) is the validator's to report, on the element, so a draft may
be invalid while it is being built.

Elements are named by key, never by position: a stage by its key, a step by its stage's key and
its own, a screen by its flow and key, a field by flow, screen and name, an action by flow and
index. Renaming a stage or a step rewrites the references to it (next, decision outcomes, fault
paths, `after` lists)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..definitions import END

Docs = dict[str, Any]


class BuilderError(ValueError):
    """An edit that cannot be made, with the message to show."""


STEP_KINDS = ("interactive", "background", "wait")
FLOW_KINDS = ("screen_flow", "autolaunched_flow")
ACTION_TYPES = ("update_record", "create_record", "send_email", "http", "set_outputs", "call")


# --- a new draft -------------------------------------------------------------------------------


def new_documents(api_name: str, *, label: str = "", record_type: str = "") -> Docs:
    """A new orchestration: one stage holding a one-hour wait step (a stage needs a step, and a
    wait step needs no flow, so the new draft is valid from the start), which the person
    replaces."""
    start: dict[str, Any] = (
        {"type": "record", "record_type": record_type, "on": "create"}
        if record_type
        else {"type": "autolaunched"}
    )
    return {
        "orchestration": {
            "kind": "orchestration",
            "api_name": api_name,
            "label": label or api_name.replace("_", " ").capitalize(),
            "start": start,
            "variables": [],
            "stages": [
                {
                    "key": "stage_1",
                    "label": "Stage 1",
                    "steps": [{"key": "step_1", "kind": "wait", "wait": {"for": "1h"}}],
                }
            ],
        },
        "flows": {},
    }


# --- helpers -----------------------------------------------------------------------------------


def orch(docs: Docs) -> dict[str, Any]:
    o = docs.get("orchestration")
    if not isinstance(o, dict):
        raise BuilderError("the draft has no orchestration document")
    return o


def stages(docs: Docs) -> list[dict[str, Any]]:
    s = orch(docs).setdefault("stages", [])
    if not isinstance(s, list):
        raise BuilderError("'stages' is not a list: fix it in the YAML view")
    return s


def stage_index(docs: Docs, key: str) -> int:
    for i, s in enumerate(stages(docs)):
        if isinstance(s, dict) and s.get("key") == key:
            return i
    raise BuilderError(f"there is no stage '{key}'")


def stage(docs: Docs, key: str) -> dict[str, Any]:
    return stages(docs)[stage_index(docs, key)]


def steps(st: dict[str, Any]) -> list[dict[str, Any]]:
    s = st.setdefault("steps", [])
    if not isinstance(s, list):
        raise BuilderError(f"the steps of stage '{st.get('key')}' are not a list: fix it in the YAML view")
    return s


def step_index(st: dict[str, Any], key: str) -> int:
    for i, s in enumerate(steps(st)):
        if isinstance(s, dict) and s.get("key") == key:
            return i
    raise BuilderError(f"stage '{st.get('key')}' has no step '{key}'")


def step(docs: Docs, stage_key: str, key: str) -> dict[str, Any]:
    st = stage(docs, stage_key)
    return steps(st)[step_index(st, key)]


def flows(docs: Docs) -> dict[str, dict[str, Any]]:
    f = docs.setdefault("flows", {})
    if not isinstance(f, dict):
        raise BuilderError("the draft's flows are not a mapping")
    return f


def flow(docs: Docs, name: str) -> dict[str, Any]:
    f = flows(docs).get(name)
    if not isinstance(f, dict):
        raise BuilderError(f"the draft has no flow '{name}'")
    return f


def screen(docs: Docs, flow_name: str, key: str) -> dict[str, Any]:
    for s in flow(docs, flow_name).setdefault("screens", []):
        if isinstance(s, dict) and s.get("key") == key:
            return s
    raise BuilderError(f"flow '{flow_name}' has no screen '{key}'")


def _free(names: list[Any], name: str, what: str) -> None:
    if not name:
        raise BuilderError(f"give the {what} a name")
    if name in names:
        raise BuilderError(f"there is already a {what} '{name}'")


def _move(items: list[Any], i: int, to: int) -> None:
    to = max(0, min(to, len(items) - 1))
    items.insert(to, items.pop(i))


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    """Set a field, leaving it out when empty (the YAML stays as short as a hand-written one)."""
    if value in (None, "", [], {}):
        d.pop(key, None)
    else:
        d[key] = value


def _unique(base: str, taken: set[str]) -> str:
    n = 1
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


# --- settings, start, variables ------------------------------------------------------------------


def set_settings(docs: Docs, *, api_name: str, label: str, description: str, calendar: str) -> str:
    o = orch(docs)
    o["api_name"] = api_name
    _set(o, "label", label)
    _set(o, "description", description)
    _set(o, "calendar", calendar)
    return "Changed the settings"


def set_start(docs: Docs, *, type: str, record_type: str, on: str, condition: str, run: str) -> str:
    o = orch(docs)
    old: dict[str, Any] = o["start"] if isinstance(o.get("start"), dict) else {}
    if type == "record":
        start: dict[str, Any] = {"type": "record", "record_type": record_type, "on": on or "create_or_update"}
        _set(start, "condition", condition)
        if run and run != "every_time":
            start["run"] = run
    else:
        start = {"type": "autolaunched"}
        _set(start, "record_type", record_type)
        _set(start, "inputs", old.get("inputs") if old.get("type") == "autolaunched" else [])
    o["start"] = start
    return "Changed how it starts"


def _variables(docs: Docs, where: str) -> list[dict[str, Any]]:
    """The orchestration's variables ("variables") or its autolaunched start's inputs ("inputs")."""
    o = orch(docs)
    if where == "inputs":
        start = o.setdefault("start", {"type": "autolaunched"})
        if start.get("type") != "autolaunched":
            raise BuilderError("only an autolaunched orchestration has inputs")
        return start.setdefault("inputs", [])
    return o.setdefault("variables", [])


def variable_save(
    docs: Docs,
    *,
    where: str = "variables",
    old_name: str = "",
    name: str,
    type: str,
    default: str = "",
    required: bool = False,
    description: str = "",
) -> str:
    items = _variables(docs, where)
    names = [v.get("name") for v in items if isinstance(v, dict)]
    var: dict[str, Any] = {"name": name, "type": type or "text"}
    _set(var, "default", default)
    if required:
        var["required"] = True
    _set(var, "description", description)
    what = "input" if where == "inputs" else "variable"
    if old_name:
        if old_name not in names:
            raise BuilderError(f"there is no {what} '{old_name}'")
        if name != old_name:
            _free(names, name, what)
        items[names.index(old_name)] = var
        return f"Changed {what} '{name}'"
    _free(names, name, what)
    items.append(var)
    return f"Added {what} '{name}'"


def variable_remove(docs: Docs, *, where: str = "variables", name: str) -> str:
    items = _variables(docs, where)
    kept = [v for v in items if not (isinstance(v, dict) and v.get("name") == name)]
    if len(kept) == len(items):
        raise BuilderError(f"there is no variable '{name}'")
    items[:] = kept
    return f"Removed '{name}'"


# --- stages ------------------------------------------------------------------------------------


def stage_add(docs: Docs, *, key: str = "", label: str = "", after: str = "") -> str:
    """A new stage (with a placeholder wait step, a stage needs one) at the end, or after
    stage `after`."""
    items = stages(docs)
    taken = {s.get("key") for s in items if isinstance(s, dict)}
    key = key or _unique("stage", taken)  # type: ignore[arg-type]
    _free(list(taken), key, "stage")
    new = {
        "key": key,
        "label": label or key.replace("_", " ").capitalize(),
        "steps": [_placeholder(_unique(f"{key}_step", all_step_keys(docs)))],
    }
    at = stage_index(docs, after) + 1 if after else len(items)
    items.insert(at, new)
    return f"Added stage '{key}'"


def _placeholder(key: str) -> dict[str, Any]:
    return {"key": key, "kind": "wait", "wait": {"for": "1h"}}


def all_step_keys(docs: Docs) -> set[str]:
    """Step keys are unique in an orchestration (outputs are `steps.<key>.<name>`)."""
    return {
        str(sp.get("key"))
        for st in stages(docs)
        if isinstance(st, dict)
        for sp in steps(st)
        if isinstance(sp, dict)
    }


def _rename_stage_refs(docs: Docs, old: str, new: str) -> None:
    for s in stages(docs):
        if not isinstance(s, dict):
            continue
        nxt = s.get("next")
        if nxt == old:
            s["next"] = new
        elif isinstance(nxt, dict):
            if nxt.get("default") == old:
                nxt["default"] = new
            for o in nxt.get("outcomes") or []:
                if isinstance(o, dict) and o.get("goto") == old:
                    o["goto"] = new
        if s.get("fault_path") == old:
            s["fault_path"] = new


def stage_save(
    docs: Docs,
    *,
    key: str,
    new_key: str,
    label: str = "",
    exit_after: list[str] | None = None,
    exit_condition: str = "",
    exit_evaluation_flow: str = "",
    fault_path: str = "",
) -> str:
    st = stage(docs, key)
    if new_key != key:
        _free([s.get("key") for s in stages(docs)], new_key, "stage")
        st["key"] = new_key
        _rename_stage_refs(docs, key, new_key)
    _set(st, "label", label)
    gate: dict[str, Any] = {}
    _set(gate, "after", exit_after or [])
    _set(gate, "condition", exit_condition)
    _set(gate, "evaluation_flow", exit_evaluation_flow)
    _set(st, "exit", gate)
    _set(st, "fault_path", fault_path)
    return f"Changed stage '{new_key}'"


def stage_route(
    docs: Docs, *, key: str, next: str = "", outcomes: list[dict[str, str]] | None = None, default: str = ""
) -> str:
    """Where the stage goes when it ends: the next stage in order (""), a stage, the end, or a
    decision (outcomes: [{label, when, goto}], and the default)."""
    st = stage(docs, key)
    if outcomes:
        decision: dict[str, Any] = {"outcomes": [_outcome(o) for o in outcomes], "default": default or END}
        st["next"] = decision
        return f"Set the decision after stage '{key}'"
    _set(st, "next", next)
    return f"Set where stage '{key}' goes next"


def _outcome(o: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _set(out, "label", o.get("label", ""))
    out["when"] = o.get("when", "")
    out["goto"] = o.get("goto", "")
    return out


def stage_remove(docs: Docs, *, key: str) -> str:
    items = stages(docs)
    if len(items) == 1:
        raise BuilderError("an orchestration needs at least one stage")
    items.pop(stage_index(docs, key))
    return f"Removed stage '{key}'"


def stage_move(docs: Docs, *, key: str, to: int) -> str:
    items = stages(docs)
    i = stage_index(docs, key)
    _move(items, i, to)
    return f"Moved stage '{key}' to position {min(max(to, 0), len(items) - 1) + 1}"


# --- steps -------------------------------------------------------------------------------------


def step_add(docs: Docs, *, stage_key: str, key: str = "", kind: str = "background", flow: str = "") -> str:
    st = stage(docs, stage_key)
    items = steps(st)
    taken = all_step_keys(docs)
    key = key or _unique("step", taken)  # type: ignore[arg-type]
    _free(list(taken), key, "step")
    if kind not in STEP_KINDS:
        raise BuilderError(f"a step is {', '.join(STEP_KINDS)}")
    new: dict[str, Any] = {"key": key, "kind": kind}
    if kind == "wait":
        new["wait"] = {"for": "1h"}
    else:
        _set(new, "flow", flow)
    items.append(new)
    return f"Added step '{key}' to stage '{stage_key}'"


def step_save(docs: Docs, *, stage_key: str, key: str, new_key: str, fields: dict[str, Any]) -> str:
    """Replace a step's fields with `fields` (the step form's, as the document holds them: empty
    ones left out), keeping what the form does not show (an SLA's rules, say)."""
    st = stage(docs, stage_key)
    sp = steps(st)[step_index(st, key)]
    if new_key != key:
        _free(list(all_step_keys(docs)), new_key, "step")
        for other in steps(st):  # `after` lists of its siblings
            for gate in ("start", "completion"):
                g = other.get(gate)
                if isinstance(g, dict) and key in (g.get("after") or []):
                    g["after"] = [new_key if a == key else a for a in g["after"]]
        if isinstance(st.get("exit"), dict) and key in (st["exit"].get("after") or []):
            st["exit"]["after"] = [new_key if a == key else a for a in st["exit"]["after"]]
    sp["key"] = new_key
    for name, value in fields.items():
        _set(sp, name, value)
    if sp.get("kind") != "wait":
        sp.pop("wait", None)
    return f"Changed step '{new_key}'"


def step_remove(docs: Docs, *, stage_key: str, key: str) -> str:
    st = stage(docs, stage_key)
    items = steps(st)
    if len(items) == 1:
        raise BuilderError("a stage needs at least one step: remove the stage instead")
    items.pop(step_index(st, key))
    return f"Removed step '{key}' from stage '{stage_key}'"


def step_move(docs: Docs, *, stage_key: str, key: str, to: int, to_stage: str = "") -> str:
    st = stage(docs, stage_key)
    items = steps(st)
    i = step_index(st, key)
    if to_stage and to_stage != stage_key:
        target = stage(docs, to_stage)
        if len(items) == 1:
            raise BuilderError("a stage needs at least one step: add another before moving this one")
        _free([s.get("key") for s in steps(target)], key, "step")
        moved = items.pop(i)
        steps(target).insert(max(0, min(to, len(steps(target)))), moved)
        return f"Moved step '{key}' to stage '{to_stage}'"
    _move(items, i, to)
    return f"Moved step '{key}' to position {min(max(to, 0), len(items) - 1) + 1}"


# --- flows -------------------------------------------------------------------------------------


def flow_add(docs: Docs, *, kind: str, api_name: str, label: str = "") -> str:
    if kind not in FLOW_KINDS:
        raise BuilderError("a flow here is a screen flow or an autolaunched flow")
    _free(list(flows(docs)), api_name, "flow")
    f: dict[str, Any] = {"kind": kind, "api_name": api_name}
    _set(f, "label", label)
    if kind == "screen_flow":
        f["screens"] = [{"key": "screen_1", "fields": [{"name": "done", "type": "boolean", "label": "Done"}]}]
    else:
        f["actions"] = [{"type": "set_outputs", "values": {"done": "true"}}]
        f["outputs"] = [{"name": "done", "type": "boolean"}]
    flows(docs)[api_name] = f
    return f"Added {kind.replace('_', ' ')} '{api_name}'"


def flow_save(docs: Docs, *, name: str, label: str = "", description: str = "") -> str:
    f = flow(docs, name)
    _set(f, "label", label)
    _set(f, "description", description)
    return f"Changed flow '{name}'"


def flow_remove(docs: Docs, *, name: str) -> str:
    flow(docs, name)
    del flows(docs)[name]
    return f"Removed flow '{name}'"


def flow_outputs(docs: Docs, *, name: str, outputs: list[dict[str, str]]) -> str:
    f = flow(docs, name)
    _set(f, "outputs", [{"name": o["name"], "type": o.get("type") or "text"} for o in outputs])
    return f"Changed the outputs of '{name}'"


def screen_add(docs: Docs, *, flow_name: str, key: str = "", label: str = "") -> str:
    f = flow(docs, flow_name)
    items = f.setdefault("screens", [])
    taken = {s.get("key") for s in items if isinstance(s, dict)}
    key = key or _unique("screen", taken)  # type: ignore[arg-type]
    _free(list(taken), key, "screen")
    new: dict[str, Any] = {"key": key, "fields": [{"name": _unique("field", set()), "type": "text"}]}
    _set(new, "label", label)
    items.append(new)
    return f"Added screen '{key}' to '{flow_name}'"


def screen_save(
    docs: Docs, *, flow_name: str, key: str, new_key: str, label: str = "", help: str = ""
) -> str:
    sc = screen(docs, flow_name, key)
    if new_key != key:
        _free([s.get("key") for s in flow(docs, flow_name)["screens"]], new_key, "screen")
        sc["key"] = new_key
    _set(sc, "label", label)
    _set(sc, "help", help)
    return f"Changed screen '{new_key}'"


def screen_remove(docs: Docs, *, flow_name: str, key: str) -> str:
    items = flow(docs, flow_name).setdefault("screens", [])
    if len(items) == 1:
        raise BuilderError("a screen flow needs at least one screen")
    items.remove(screen(docs, flow_name, key))
    return f"Removed screen '{key}'"


def screen_move(docs: Docs, *, flow_name: str, key: str, to: int) -> str:
    items = flow(docs, flow_name)["screens"]
    _move(items, items.index(screen(docs, flow_name, key)), to)
    return f"Moved screen '{key}'"


def field_save(
    docs: Docs, *, flow_name: str, screen_key: str, old_name: str = "", values: dict[str, Any]
) -> str:
    """Add a field (no `old_name`) or replace one; `values` as the document holds them."""
    sc = screen(docs, flow_name, screen_key)
    items = sc.setdefault("fields", [])
    names = [f.get("name") for f in items if isinstance(f, dict)]
    field: dict[str, Any] = {}
    for k, v in values.items():
        _set(field, k, v)
    name = field.get("name", "")
    if old_name:
        if old_name not in names:
            raise BuilderError(f"screen '{screen_key}' has no field '{old_name}'")
        if name != old_name:
            _free(names, name, "field")
        items[names.index(old_name)] = field
        return f"Changed field '{name}'"
    _free(names, name, "field")
    items.append(field)
    return f"Added field '{name}' to screen '{screen_key}'"


def field_remove(docs: Docs, *, flow_name: str, screen_key: str, name: str) -> str:
    sc = screen(docs, flow_name, screen_key)
    items = sc.setdefault("fields", [])
    if len(items) == 1:
        raise BuilderError("a screen needs at least one field")
    kept = [f for f in items if not (isinstance(f, dict) and f.get("name") == name)]
    if len(kept) == len(items):
        raise BuilderError(f"screen '{screen_key}' has no field '{name}'")
    sc["fields"] = kept
    return f"Removed field '{name}'"


def field_move(docs: Docs, *, flow_name: str, screen_key: str, name: str, to: int) -> str:
    items = screen(docs, flow_name, screen_key).setdefault("fields", [])
    names = [f.get("name") for f in items if isinstance(f, dict)]
    if name not in names:
        raise BuilderError(f"screen '{screen_key}' has no field '{name}'")
    _move(items, names.index(name), to)
    return f"Moved field '{name}'"


def action_save(docs: Docs, *, flow_name: str, index: int | None, action: dict[str, Any]) -> str:
    """Add an action (index None) or replace the one at `index`."""
    f = flow(docs, flow_name)
    items = f.setdefault("actions", [])
    if action.get("type") not in ACTION_TYPES:
        raise BuilderError(f"an action is one of {', '.join(ACTION_TYPES)}")
    clean: dict[str, Any] = {}
    for k, v in action.items():
        _set(clean, k, v)
    if index is None:
        items.append(clean)
        return f"Added a {action['type']} action to '{flow_name}'"
    if not 0 <= index < len(items):
        raise BuilderError(f"flow '{flow_name}' has no action {index + 1}")
    items[index] = clean
    return f"Changed action {index + 1} of '{flow_name}'"


def action_remove(docs: Docs, *, flow_name: str, index: int) -> str:
    items = flow(docs, flow_name).setdefault("actions", [])
    if not 0 <= index < len(items):
        raise BuilderError(f"flow '{flow_name}' has no action {index + 1}")
    if len(items) == 1:
        raise BuilderError("an autolaunched flow needs at least one action")
    items.pop(index)
    return f"Removed action {index + 1} of '{flow_name}'"


def action_move(docs: Docs, *, flow_name: str, index: int, to: int) -> str:
    items = flow(docs, flow_name).setdefault("actions", [])
    if not 0 <= index < len(items):
        raise BuilderError(f"flow '{flow_name}' has no action {index + 1}")
    _move(items, index, to)
    return f"Moved action {index + 1} of '{flow_name}'"


# --- applying ------------------------------------------------------------------------------------

OPS: dict[str, Callable[..., str]] = {
    fn.__name__: fn
    for fn in (
        set_settings,
        set_start,
        variable_save,
        variable_remove,
        stage_add,
        stage_save,
        stage_route,
        stage_remove,
        stage_move,
        step_add,
        step_save,
        step_remove,
        step_move,
        flow_add,
        flow_save,
        flow_remove,
        flow_outputs,
        screen_add,
        screen_save,
        screen_remove,
        screen_move,
        field_save,
        field_remove,
        field_move,
        action_save,
        action_remove,
        action_move,
    )
}


def apply(docs: Docs, op: str, **params: Any) -> tuple[Docs, str]:
    """The documents after the edit (a copy: `docs` is left as it was) and its summary."""
    fn = OPS.get(op)
    if fn is None:
        raise BuilderError(f"unknown edit '{op}'")
    out = copy.deepcopy(docs)
    summary = fn(out, **params)
    return out, summary
