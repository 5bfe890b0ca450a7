"""What changed between two versions of an orchestration: a structural diff of the documents and
a line diff of their YAML.

`orchestration_diff(old, new)` takes two documents (as stored, or any mapping the schema parses)
and says, in the order a reader wants it:
- settings (label, description, calendar), the start and the variables (by name): each
  property that differs, as (path, old, new);
- stages added, removed and renamed, then each kept stage's properties (exit, next or its
  decision, fault_path, label);
- steps added, removed, renamed and moved from one stage to another, then every property of each
  kept step that differs.

Elements are matched by key (a variable by name). A key that is gone and a key that is new are
a **rename** when they look like the same element with a new key:
- stages: a removed and an added stage are one renamed stage when at least half of the step
  keys of the two together are shared (keys in both / keys in either >= 0.5);
  the best-matching pairs first, ties by position. A stage whose key and steps both changed reads
  as removed and added: there is nothing left to recognise it by.
- steps: step keys are unique in an orchestration, so a key in both documents is the same step
  (in another stage: moved). A removed and an added step are one renamed step when they are in
  the same stage (after stage renames), of the same kind and run the same flow (wait steps: the
  same wait); among several such, the one with the same label first, then by position.

Paths name elements by key, not position, so that reordering does not change every path:
`stages[intake].steps[check].assignee.user`, `variables[total].default`. Lists of keyed items (an
SLA's rules, a start's inputs) are compared item by item; other lists (`after`, a decision's
outcomes) as a whole, and so is a mapping of another type and shape (a start of the other
type). Documents are compared with their defaults filled in, so leaving out a default and
writing it are the same.

`yaml_diff(old_text, new_text)` is a unified diff of two YAML texts, as lines with their kind,
for a page to mark; `summary()` is the compact form an audit event keeps."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .definitions import Orchestration

# Top-level fields that are neither the document's identity nor one of the parts below.
_IDENTITY = ("kind", "api_name")
_PARTS = ("start", "variables", "stages")
RENAME_SHARE = 0.5  # the share of step keys two stages must have in common to be one renamed stage
SUMMARY_PATHS = 200  # an audit event keeps at most this many changed paths (and says so)


@dataclass(frozen=True)
class Change:
    """One entry of the change list. `element` groups entries ("settings", "start",
    "variables", "stage intake", "step intake/check"); `kind` is added, removed, renamed,
    moved or changed; `old`/`new` are the values (for a rename or move: the old and new key or
    stage)."""

    element: str
    kind: str
    path: str
    old: Any = None
    new: Any = None

    @property
    def old_text(self) -> str:
        return _text(self.old)

    @property
    def new_text(self) -> str:
        return _text(self.new)


@dataclass(frozen=True)
class ChangeGroup:
    element: str
    title: str
    changes: list[Change]


@dataclass
class OrchestrationDiff:
    stages_added: list[str] = field(default_factory=list)
    stages_removed: list[str] = field(default_factory=list)
    stages_renamed: list[tuple[str, str]] = field(default_factory=list)  # (old key, new key)
    steps_added: list[tuple[str, str]] = field(default_factory=list)  # (stage key, step key)
    steps_removed: list[tuple[str, str]] = field(default_factory=list)
    steps_renamed: list[tuple[str, str, str]] = field(default_factory=list)  # (stage, old, new)
    steps_moved: list[tuple[str, str, str]] = field(default_factory=list)  # (step, from, to)
    changes: list[Change] = field(default_factory=list)  # everything, in reading order

    @property
    def is_empty(self) -> bool:
        return not self.changes

    @property
    def changed_paths(self) -> list[str]:
        return [c.path for c in self.changes if c.kind == "changed"]

    def groups(self) -> list[ChangeGroup]:
        """The change list grouped by element, in the order the elements first appear."""
        out: dict[str, list[Change]] = {}
        for c in self.changes:
            out.setdefault(c.element, []).append(c)
        return [ChangeGroup(element, _title(element), changes) for element, changes in out.items()]

    def stage_mapping(self) -> dict[str, str]:
        return dict(self.stages_renamed)

    def step_mapping(self) -> dict[str, str]:
        return {old: new for _, old, new in self.steps_renamed}

    def summary(self) -> dict[str, Any]:
        """The compact form kept in an audit event: keys, not values."""
        paths = self.changed_paths
        out: dict[str, Any] = {
            "stages": {
                "added": self.stages_added,
                "removed": self.stages_removed,
                "renamed": [list(p) for p in self.stages_renamed],
            },
            "steps": {
                "added": [f"{s}/{k}" for s, k in self.steps_added],
                "removed": [f"{s}/{k}" for s, k in self.steps_removed],
                "renamed": [[f"{s}/{o}", f"{s}/{n}"] for s, o, n in self.steps_renamed],
                "moved": [list(m) for m in self.steps_moved],
            },
            "changed": paths[:SUMMARY_PATHS],
        }
        if len(paths) > SUMMARY_PATHS:
            out["changed_more"] = len(paths) - SUMMARY_PATHS
        return out


def summary_text(summary: Mapping[str, Any]) -> str:
    """An audit event's `changes` in a few words ("stages added review; 3 properties changed")."""
    if not summary:
        return ""
    parts = []
    for what in ("stages", "steps"):
        part = summary.get(what) or {}
        for verb, items in (
            ("added", part.get("added", [])),
            ("removed", part.get("removed", [])),
            ("renamed", [f"{a}→{b}" for a, b in part.get("renamed", [])]),
            ("moved", [f"{k} {a}→{b}" for k, a, b in part.get("moved", [])]),
        ):
            if items:
                parts.append(f"{what} {verb} {', '.join(items)}")
    changed = len(summary.get("changed", [])) + int(summary.get("changed_more", 0))
    if changed:
        parts.append(f"{changed} propert{'y' if changed == 1 else 'ies'} changed")
    return "; ".join(parts) or "no changes"


# --- the structural diff --------------------------------------------------------------------------


def _normal(document: Mapping[str, Any]) -> dict[str, Any]:
    return Orchestration.model_validate(dict(document)).model_dump(mode="json", by_alias=True)


def orchestration_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> OrchestrationDiff:
    """The structural diff of two orchestration documents (see the module's docstring)."""
    a, b = _normal(old), _normal(new)
    d = OrchestrationDiff()
    settings = [n for n in b if n not in _IDENTITY and n not in _PARTS]
    for name in settings:
        _compare(d, "settings", name, a.get(name), b.get(name))
    _compare(d, "start", "start", a["start"], b["start"])
    _keyed(d, "variables", "variables", a["variables"], b["variables"], "name")
    _stages(d, a["stages"], b["stages"])
    return d


def _stages(d: OrchestrationDiff, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    old_by = {s["key"]: s for s in old}
    new_by = {s["key"]: s for s in new}
    gone = [s for s in old if s["key"] not in new_by]
    came = [s for s in new if s["key"] not in old_by]
    renamed = _stage_renames(gone, came, old, new)
    d.stages_renamed = [(o, n) for o, n in renamed.items()]
    d.stages_removed = [s["key"] for s in gone if s["key"] not in renamed]
    d.stages_added = [s["key"] for s in came if s["key"] not in renamed.values()]
    # The stage each old stage is now: itself, or what it was renamed to.
    now = {k: k for k in old_by if k in new_by} | renamed

    for key in d.stages_removed:
        d.changes.append(Change(f"stage {key}", "removed", f"stages[{key}]", old=old_by[key]["label"] or key))
    for key in d.stages_added:
        d.changes.append(Change(f"stage {key}", "added", f"stages[{key}]", new=new_by[key]["label"] or key))
    for o, n in d.stages_renamed:
        d.changes.append(Change(f"stage {n}", "renamed", f"stages[{n}].key", old=o, new=n))
    for s in new:
        if s["key"] in d.stages_added:
            continue
        before = old_by[next(o for o, n in now.items() if n == s["key"])]
        for name in s:
            if name not in ("key", "steps"):
                _compare(d, f"stage {s['key']}", f"stages[{s['key']}].{name}", before[name], s[name])

    # Steps: keys are unique in an orchestration, so a key found in both is the same step.
    old_steps = {st["key"]: (s["key"], st) for s in old for st in s["steps"]}
    new_steps = {st["key"]: (s["key"], st) for s in new for st in s["steps"]}
    gone_steps = [(now.get(sk, sk), st) for k, (sk, st) in old_steps.items() if k not in new_steps]
    came_steps = [(sk, st) for k, (sk, st) in new_steps.items() if k not in old_steps]
    step_renames = _step_renames(gone_steps, came_steps, old, new)
    for stage_key, st in gone_steps:
        if st["key"] not in step_renames:
            # Under the stage it is in now, or its old stage's key when that is gone as well.
            d.steps_removed.append((stage_key, st["key"]))
    renamed_to = set(step_renames.values())
    for stage_key, st in came_steps:
        if st["key"] not in renamed_to:
            d.steps_added.append((stage_key, st["key"]))
    for old_key, new_key in step_renames.items():
        d.steps_renamed.append((new_steps[new_key][0], old_key, new_key))
    for key, (stage_key, _) in new_steps.items():
        if key in old_steps and now.get(old_steps[key][0]) != stage_key:
            d.steps_moved.append((key, old_steps[key][0], stage_key))

    for stage_key, key in d.steps_removed:
        d.changes.append(
            Change(f"step {stage_key}/{key}", "removed", f"stages[{stage_key}].steps[{key}]", old=key)
        )
    for stage_key, key in d.steps_added:
        d.changes.append(
            Change(f"step {stage_key}/{key}", "added", f"stages[{stage_key}].steps[{key}]", new=key)
        )
    for stage_key, o, n in d.steps_renamed:
        d.changes.append(
            Change(f"step {stage_key}/{n}", "renamed", f"stages[{stage_key}].steps[{n}].key", old=o, new=n)
        )
    for key, a, b in d.steps_moved:
        d.changes.append(Change(f"step {b}/{key}", "moved", f"stages[{b}].steps[{key}]", old=a, new=b))
    back = {n: o for o, n in step_renames.items()}
    for key, (stage_key, st) in new_steps.items():
        was = old_steps.get(back.get(key, key))
        if was is None:
            continue
        for name in st:
            if name != "key":
                _compare(
                    d,
                    f"step {stage_key}/{key}",
                    f"stages[{stage_key}].steps[{key}].{name}",
                    was[1][name],
                    st[name],
                )


def _stage_renames(
    gone: list[dict[str, Any]], came: list[dict[str, Any]], old: list[Any], new: list[Any]
) -> dict[str, str]:
    """{old key: new key} for the removed and added stages that share most of their steps."""
    position = {s["key"]: i for i, s in enumerate(old)} | {s["key"]: i for i, s in enumerate(new)}
    pairs = []
    for g in gone:
        gk = {st["key"] for st in g["steps"]}
        for c in came:
            ck = {st["key"] for st in c["steps"]}
            share = len(gk & ck) / len(gk | ck)
            if share >= RENAME_SHARE:
                pairs.append((-share, abs(position[g["key"]] - position[c["key"]]), g["key"], c["key"]))
    out: dict[str, str] = {}
    for _, _, g_key, c_key in sorted(pairs):
        if g_key not in out and c_key not in out.values():
            out[g_key] = c_key
    return out


def _step_renames(
    gone: list[tuple[str, dict[str, Any]]],
    came: list[tuple[str, dict[str, Any]]],
    old: list[Any],
    new: list[Any],
) -> dict[str, str]:
    """{old key: new key} for removed and added steps of one stage that do the same thing."""
    position = {st["key"]: i for s in old for i, st in enumerate(s["steps"])}
    position |= {st["key"]: i for s in new for i, st in enumerate(s["steps"])}

    def what(st: dict[str, Any]) -> tuple[Any, ...]:
        return (st["kind"], st["flow"], repr(st["wait"]))

    pairs = []
    for gs, g in gone:
        for cs, c in came:
            if gs == cs and what(g) == what(c):
                same_label = bool(g["label"]) and g["label"] == c["label"]
                pairs.append(
                    (not same_label, abs(position[g["key"]] - position[c["key"]]), g["key"], c["key"])
                )
    out: dict[str, str] = {}
    for _, _, g_key, c_key in sorted(pairs):
        if g_key not in out and c_key not in out.values():
            out[g_key] = c_key
    return out


def _keyed(d: OrchestrationDiff, element: str, path: str, old: list[Any], new: list[Any], key: str) -> None:
    """Lists of mappings with a key field: added, removed, then each kept item's changes."""
    old_by = {item[key]: item for item in old}
    new_by = {item[key]: item for item in new}
    for k, item in old_by.items():
        if k not in new_by:
            d.changes.append(Change(element, "removed", f"{path}[{k}]", old=item))
    for k, item in new_by.items():
        if k not in old_by:
            d.changes.append(Change(element, "added", f"{path}[{k}]", new=item))
        else:
            _compare(d, element, f"{path}[{k}]", old_by[k], item)


def _key_of(*lists: list[Any]) -> str | None:
    """The field that keys lists of mappings (a rule's key, an input's name): every item has it,
    unique in its list."""
    for name in ("key", "name"):
        if any(lists) and all(
            all(isinstance(i, dict) and isinstance(i.get(name), str) for i in items)
            and len({i[name] for i in items}) == len(items)
            for items in lists
        ):
            return name
    return None


def _compare(d: OrchestrationDiff, element: str, path: str, old: Any, new: Any) -> None:
    if old == new:
        return
    # A mapping of another type and shape (a start of the other type) compares whole.
    if (
        isinstance(old, dict)
        and isinstance(new, dict)
        and (old.get("type") == new.get("type") or old.keys() == new.keys())
    ):
        for name in [*old, *(n for n in new if n not in old)]:
            _compare(d, element, f"{path}.{name}", old.get(name), new.get(name))
        return
    if isinstance(old, list) and isinstance(new, list):
        key = _key_of(old, new)
        if key is not None:
            _keyed(d, element, path, old, new, key)
            return
    d.changes.append(Change(element, "changed", path, old=old, new=new))


# --- presentation ----------------------------------------------------------------------------------


def _title(element: str) -> str:
    kind, _, key = element.partition(" ")
    return {"settings": "Settings", "start": "Start", "variables": "Variables"}.get(
        kind, f"{kind.capitalize()} {key}"
    )


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class DiffLine:
    """A line of a unified diff: `kind` is "add", "del", "hunk" (the @@ line), "file" (the
    ---/+++ header) or "same"."""

    kind: str
    text: str

    @property
    def sign(self) -> str:
        return {"add": "+", "del": "-"}.get(self.kind, "")


def yaml_diff(
    old_text: str, new_text: str, *, old_name: str, new_name: str, context: int = 3
) -> list[DiffLine]:
    """The unified diff of two YAML texts, line by line; empty when they are the same."""
    lines = difflib.unified_diff(
        old_text.splitlines(), new_text.splitlines(), old_name, new_name, n=context, lineterm=""
    )
    out = []
    for n, line in enumerate(lines):
        if n < 2:  # "--- old" and "+++ new" come first, whenever there is a difference
            out.append(DiffLine("file", line))
        elif line.startswith("@@"):
            out.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            out.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            out.append(DiffLine("del", line[1:]))
        else:
            out.append(DiffLine("same", line[1:]))
    return out
