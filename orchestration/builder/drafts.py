"""Drafts: an orchestration and the flows it owns, built in the browser. Create one (from nothing,
from a version, as a clone), edit it (ops.py; each edit a revision, undo and redo move between
them), replace it from YAML, see its problems on the elements they concern, activate it (its
documents stored as versions through the importer, the same checks as the CLI).

Every function checks `orchestration.change_orchestration` (activating also needs
`orchestration.import_definitions`, as any import does). An edit names the revision it was made
on: a draft changed meanwhile (another tab, another person) refuses it instead of losing either."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from django.core.exceptions import PermissionDenied
from django.db import transaction

from ..definitions import API_NAME
from ..models import DefinitionEvent, Draft, DraftRevision, Orchestration, OrchestrationVersion
from ..services.common import PERM_IMPORT
from ..services.definitions import ImportReport, definitions_import, known_flows
from ..validation import DefinitionError, load_text, validate_documents
from . import ops
from .ops import BuilderError, Docs
from .yamlorder import ordered

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

PERM_BUILD = "orchestration.change_orchestration"
# What a draft holds besides its orchestration: the flows its steps run and its gates evaluate
# (business calendars are their own documents, named by the orchestration, not copied).
DRAFT_FLOW_KINDS = ("screen_flow", "autolaunched_flow", "evaluation_flow")
_API_NAME = re.compile(API_NAME)


class DraftConflict(BuilderError):
    """The draft changed since the page the edit came from was shown."""


def require_builder(actor: Actor) -> int:
    if actor is None or not actor.is_authenticated or not actor.has_perm(PERM_BUILD):
        raise PermissionDenied(f"you need the permission {PERM_BUILD!r}")
    return int(actor.pk)


# --- creating ------------------------------------------------------------------------------------


def _store(docs: Docs, *, actor_id: int, summary: str, base: OrchestrationVersion | None = None) -> Draft:
    draft = Draft.objects.create(
        api_name=str(docs["orchestration"].get("api_name", "")),
        documents=docs,
        revision=1,
        base_version=base,
        created_by_id=actor_id,
    )
    DraftRevision.objects.create(draft=draft, number=1, documents=docs, summary=summary, author_id=actor_id)
    return draft


def _check_name(api_name: str) -> None:
    if not _API_NAME.fullmatch(api_name or ""):
        raise BuilderError("an api name is lower_snake_case: letters, digits and _, starting with a letter")
    if Orchestration.objects.filter(api_name=api_name).exists():
        raise BuilderError(
            f"there is already an orchestration '{api_name}': open one of its versions as a draft"
        )


def draft_new(*, api_name: str, label: str = "", record_type: str = "", actor: Actor) -> Draft:
    """A draft of a new orchestration (record-triggered on `record_type`, else autolaunched)."""
    actor_id = require_builder(actor)
    _check_name(api_name)
    return _store(
        ops.new_documents(api_name, label=label, record_type=record_type),
        actor_id=actor_id,
        summary="Created",
    )


def compact(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document as a person would write it: defaults left out where that provably
    changes nothing (the export's rule), kind and api_name first."""
    from ..models import VersionBase
    from ..validation import KIND_MODELS

    model: Any = KIND_MODELS[document["kind"]]
    short = model.model_validate(document).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    again = model.model_validate(short).model_dump(mode="json", by_alias=True)
    if VersionBase.checksum_of(again) != VersionBase.checksum_of(document):
        short = document
    return {"kind": short["kind"], "api_name": short["api_name"], **short}


def _flow_names(orchestration: dict[str, Any]) -> set[str]:
    """The flows an orchestration document names: its steps' and its gates' evaluation flows."""
    names: set[str] = set()
    for st in orchestration.get("stages") or []:
        gates = [st.get("exit") or {}]
        for sp in st.get("steps") or []:
            if sp.get("flow"):
                names.add(sp["flow"])
            gates += [sp.get("start") or {}, sp.get("completion") or {}]
        names |= {g["evaluation_flow"] for g in gates if isinstance(g, dict) and g.get("evaluation_flow")}
    return names


def _version_docs(version: OrchestrationVersion, *, api_name: str | None = None) -> Docs:
    from ..models import FlowVersion

    o = compact(version.document)
    if api_name:
        o["api_name"] = api_name
    active = FlowVersion.objects.filter(is_active=True, flow__api_name__in=_flow_names(o)).select_related(
        "flow"
    )
    return {"orchestration": o, "flows": {v.flow.api_name: compact(v.document) for v in active}}


def draft_from_version(*, version: OrchestrationVersion, actor: Actor) -> Draft:
    """A draft holding a copy of `version` and the active versions of the flows it names."""
    actor_id = require_builder(actor)
    return _store(
        _version_docs(version),
        actor_id=actor_id,
        summary=f"Copied from version {version.number}",
        base=version,
    )


def draft_clone(*, orchestration: Orchestration, api_name: str, label: str = "", actor: Actor) -> Draft:
    """A draft of a new orchestration `api_name` copied from the active (else latest) version of
    `orchestration`; the flows are shared until the draft changes them."""
    actor_id = require_builder(actor)
    _check_name(api_name)
    version = (
        orchestration.versions.filter(is_active=True).first()
        or orchestration.versions.order_by("-number").first()
    )
    if version is None:
        raise BuilderError(f"'{orchestration.api_name}' has no version to copy")
    docs = _version_docs(version, api_name=api_name)
    docs["orchestration"]["label"] = label or f"{orchestration} (copy)"
    return _store(docs, actor_id=actor_id, summary=f"Cloned from {orchestration.api_name} v{version.number}")


# --- editing -------------------------------------------------------------------------------------


def _locked(draft: Draft, revision: int | None) -> Draft:
    fresh = Draft.objects.select_for_update().get(pk=draft.pk)
    if fresh.activated_version_id is not None:
        raise BuilderError("this draft was activated: start a new draft from its version to change it")
    if revision is not None and revision != fresh.revision:
        raise DraftConflict("the draft changed since this page was shown (another tab or person): reload it")
    return fresh


def _save(draft: Draft, docs: Docs, summary: str, actor_id: int) -> Draft:
    number = draft.revision + 1
    DraftRevision.objects.filter(draft=draft, number__gte=number).delete()  # redo is gone
    DraftRevision.objects.create(
        draft=draft, number=number, documents=docs, summary=summary[:200], author_id=actor_id
    )
    draft.documents = docs
    draft.revision = number
    draft.api_name = str((docs.get("orchestration") or {}).get("api_name", draft.api_name))[:80]
    draft.save(update_fields=["documents", "revision", "api_name", "updated_at"])
    return draft


def draft_edit(
    *, draft: Draft, op: str, params: dict[str, Any], actor: Actor, revision: int | None = None
) -> tuple[Draft, str]:
    """Apply one edit (ops.OPS) and keep it as a revision; returns the draft and the summary."""
    actor_id = require_builder(actor)
    with transaction.atomic():
        fresh = _locked(draft, revision)
        docs, summary = ops.apply(fresh.documents, op, **params)
        return _save(fresh, docs, summary, actor_id), summary


def _step_to(draft: Draft, number: int, actor: Actor, revision: int | None) -> Draft:
    require_builder(actor)
    with transaction.atomic():
        fresh = _locked(draft, revision)
        target = DraftRevision.objects.filter(draft=fresh, number=number).first()
        if target is None:
            raise BuilderError("nothing to undo" if number < fresh.revision else "nothing to redo")
        fresh.documents = target.documents
        fresh.revision = number
        fresh.api_name = str((target.documents.get("orchestration") or {}).get("api_name", fresh.api_name))[
            :80
        ]
        fresh.save(update_fields=["documents", "revision", "api_name", "updated_at"])
        return fresh


def draft_undo(*, draft: Draft, actor: Actor, revision: int | None = None) -> Draft:
    return _step_to(draft, draft.revision - 1, actor, revision)


def draft_redo(*, draft: Draft, actor: Actor, revision: int | None = None) -> Draft:
    return _step_to(draft, draft.revision + 1, actor, revision)


def can_redo(draft: Draft) -> bool:
    return DraftRevision.objects.filter(draft=draft, number=draft.revision + 1).exists()


# --- YAML ----------------------------------------------------------------------------------------


def draft_yaml(docs: Docs) -> str:
    """The draft as YAML: the orchestration, then its flows, `---` between them."""
    items = [docs.get("orchestration") or {}, *(docs.get("flows") or {}).values()]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: the same text, 10x faster
    return yaml.dump_all(
        [ordered(d) for d in items], Dumper=dumper, sort_keys=False, allow_unicode=True, width=100
    )


def parse_yaml(text: str) -> Docs:
    """The documents of a YAML text: one orchestration and any number of flows. Raises
    BuilderError saying what is wrong (the parser's message, with its line)."""
    items, errors = load_text(text, "the YAML")
    if errors:
        raise BuilderError("; ".join(e.message for e in errors))
    orchestrations = [d for d in items if isinstance(d, dict) and d.get("kind") == "orchestration"]
    if len(orchestrations) != 1:
        raise BuilderError(f"the YAML must hold one orchestration document (it holds {len(orchestrations)})")
    found: dict[str, Any] = {}
    for d in items:
        if d is orchestrations[0]:
            continue
        if not isinstance(d, dict) or d.get("kind") not in DRAFT_FLOW_KINDS:
            kinds = ", ".join(DRAFT_FLOW_KINDS)
            raise BuilderError(f"besides the orchestration, the YAML may hold flows only (kind: {kinds})")
        name = str(d.get("api_name") or "")
        if not name or name in found:
            raise BuilderError(f"every flow needs its own api_name ({name or 'one has none'})")
        found[name] = d
    return {"orchestration": orchestrations[0], "flows": found}


def draft_set_yaml(*, draft: Draft, text: str, actor: Actor, revision: int | None = None) -> Draft:
    """Replace the draft's documents by those of a YAML text (one revision)."""
    actor_id = require_builder(actor)
    docs = parse_yaml(text)
    with transaction.atomic():
        fresh = _locked(draft, revision)
        return _save(fresh, docs, "Edited the YAML", actor_id)


# --- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A validation error on the element it concerns: `element` names it ("settings", "start",
    "variables", "stage:<key>", "step:<stage>/<key>", "flow:<name>", "screen:<flow>/<key>",
    "field:<flow>/<screen>/<name>", "action:<flow>/<index>"), `field` is the rest of the path
    ("assignee", "exit.condition"); `text` is the CLI's message."""

    element: str
    field: str
    path: str
    message: str
    source: str

    @property
    def text(self) -> str:
        return str(DefinitionError(self.source, self.path, self.message))


_PART = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?\.?")


def _split(path: str) -> list[tuple[str, int | None]]:
    out = []
    rest = path
    while rest:
        m = _PART.match(rest)
        if not m:
            break
        out.append((m.group(1), int(m.group(2)) if m.group(2) is not None else None))
        rest = rest[m.end() :]
    return out


def _key(items: Any, i: int | None, field: str = "key") -> str:
    if isinstance(items, list) and i is not None and 0 <= i < len(items) and isinstance(items[i], dict):
        return str(items[i].get(field) or f"#{i + 1}")
    return f"#{(i or 0) + 1}"


def _rest(path: str, parts: int) -> str:
    return ".".join(f"{n}[{i}]" if i is not None else n for n, i in _split(path)[parts:])


def locate(docs: Docs, source: str, path: str) -> tuple[str, str]:
    """(element, field) of an error at `path` in the document `source` names."""
    parts = _split(path)
    if source.startswith("flow:"):
        name = source[5:]
        f = (docs.get("flows") or {}).get(name) or {}
        if parts and parts[0][0] == "screens" and parts[0][1] is not None:
            screens = f.get("screens")
            sk = _key(screens, parts[0][1])
            if len(parts) > 1 and parts[1][0] == "fields" and parts[1][1] is not None:
                fields = screens[parts[0][1]].get("fields") if isinstance(screens, list) else None
                return f"field:{name}/{sk}/{_key(fields, parts[1][1], 'name')}", _rest(path, 2)
            return f"screen:{name}/{sk}", _rest(path, 1)
        if parts and parts[0][0] == "actions" and parts[0][1] is not None:
            return f"action:{name}/{parts[0][1]}", _rest(path, 1)
        return f"flow:{name}", path
    o = docs.get("orchestration") or {}
    if not parts or parts[0][0] in ("api_name", "label", "description", "calendar", "kind"):
        return "settings", path
    head = parts[0][0]
    if head == "start":
        return "start", _rest(path, 1)
    if head == "variables":
        return "variables", path
    if head == "stages" and parts[0][1] is not None:
        stages = o.get("stages")
        sk = _key(stages, parts[0][1])
        if len(parts) > 1 and parts[1][0] == "steps" and parts[1][1] is not None:
            steps = stages[parts[0][1]].get("steps") if isinstance(stages, list) else None
            return f"step:{sk}/{_key(steps, parts[1][1])}", _rest(path, 2)
        return f"stage:{sk}", _rest(path, 1)
    return "settings", path


def _items(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    o = docs.get("orchestration") or {}
    return [("orchestration", o), *((f"flow:{n}", f) for n, f in (docs.get("flows") or {}).items())]


def draft_problems(docs: Docs) -> list[Problem]:
    """The validator's errors on the draft (the flows it holds checked with it, the other active
    flows known), each on its element."""
    own = set((docs.get("flows") or {}).keys())
    known = {k: v for k, v in known_flows().items() if k not in own}
    result = validate_documents(_items(docs), known_flows=known)
    out = []
    for e in result.errors:
        element, field = locate(docs, e.source, e.path)
        out.append(Problem(element=element, field=field, path=e.path, message=e.message, source=e.source))
    return out


# --- activating ----------------------------------------------------------------------------------


def draft_activate(*, draft: Draft, actor: Actor, revision: int | None = None) -> ImportReport:
    """Store the draft's documents as new versions and make them active (flows first), as an
    import does; a draft with problems is refused. The draft is then closed."""
    actor_id = require_builder(actor)
    if actor is None or not actor.has_perm(PERM_IMPORT):
        raise PermissionDenied(f"activating needs the permission {PERM_IMPORT!r}")
    with transaction.atomic():
        fresh = _locked(draft, revision)
        problems = draft_problems(fresh.documents)
        if problems:
            raise BuilderError(f"the draft has {len(problems)} problem(s): fix them first")
        report = definitions_import(items=_items(fresh.documents), actor=actor, activate=True)
        orch = Orchestration.objects.get(api_name=fresh.documents["orchestration"]["api_name"])
        active = orch.versions.get(is_active=True)
        fresh.activated_version = active
        fresh.save(update_fields=["activated_version", "updated_at"])
        DefinitionEvent.objects.create(
            orchestration=orch,
            name="definitions.draft.activated",
            version_number=active.number,
            actor_id=actor_id,
            payload={
                "draft": fresh.pk,
                "revision": fresh.revision,
                "created": report.created,
                "unchanged": report.unchanged,
            },
        )
    return report
