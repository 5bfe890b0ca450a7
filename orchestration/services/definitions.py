"""Definitions: validate and store versions, activate them (with an audit event saying what the
activation changes), export versions as YAML."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from django.db import transaction

from .. import engine
from ..definitions import FLOW_KINDS
from ..diff import orchestration_diff
from ..models import (
    DefinitionEvent,
    Flow,
    FlowVersion,
    Orchestration,
    OrchestrationVersion,
    VersionBase,
)
from ..validation import DefinitionError, load_paths, validate_documents
from .common import PERM_IMPORT, _require

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None


class DefinitionsInvalid(Exception):
    def __init__(self, errors: list[DefinitionError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)  # "orchestration loan_approval v3"
    unchanged: list[str] = field(default_factory=list)


def known_flows() -> dict[str, tuple[str, Any]]:
    """Active flow versions, for validating references of orchestrations imported later."""
    out: dict[str, tuple[str, Any]] = {}
    for v in FlowVersion.objects.filter(is_active=True).select_related("flow"):
        out[v.flow.api_name] = (v.flow.kind, engine.flow_doc(v))
    return out


def definitions_import(
    *, items: list[tuple[str, dict[str, Any]]], actor: Actor = None, activate: bool = True
) -> ImportReport:
    """Validate a batch of documents and store each as a new version (all or nothing).

    A document identical to the latest version of its definition creates nothing. With
    `activate`, the new versions become the active ones; runs already started stay pinned to the
    version they started on."""
    actor_id = _require(actor, PERM_IMPORT)
    result = validate_documents(items, known_flows=known_flows())
    if not result.ok:
        raise DefinitionsInvalid(result.errors)
    report = ImportReport()
    with transaction.atomic():
        # Flows first: orchestrations may reference them.
        ordered = sorted(result.documents, key=lambda p: p.doc.kind not in FLOW_KINDS)
        for parsed in ordered:
            doc = parsed.doc
            document = doc.model_dump(mode="json", by_alias=True, exclude_defaults=False)
            checksum = OrchestrationVersion.checksum_of(document)
            if doc.kind in FLOW_KINDS:
                owner, _ = Flow.objects.get_or_create(api_name=doc.api_name, defaults={"kind": doc.kind})
                if owner.kind != doc.kind:
                    raise DefinitionsInvalid(
                        [
                            DefinitionError(
                                parsed.source,
                                "kind",
                                f"flow '{doc.api_name}' already exists as a {owner.kind}; use a new api_name",
                            )
                        ]
                    )
                versions: Any = owner.versions
                extra: dict[str, Any] = {}
            else:
                orch, _ = Orchestration.objects.get_or_create(api_name=doc.api_name)
                owner = orch  # type: ignore[assignment]  # both are Definition subclasses
                versions = orch.versions
                extra = {
                    "start_type": doc.start.type,
                    "record_type": doc.start.record_type or "",
                }
            owner.label = doc.label or doc.api_name
            owner.description = doc.description
            owner.save(update_fields=["label", "description"])
            latest = versions.select_for_update().order_by("-number").first()
            what = f"{doc.kind} {doc.api_name}"
            if latest is not None and latest.checksum == checksum:
                if activate and not latest.is_active:
                    _activate(latest, actor_id=actor_id)
                report.unchanged.append(f"{what} v{latest.number}")
                continue
            version = versions.create(
                number=(latest.number + 1) if latest else 1,
                document=document,
                checksum=checksum,
                created_by_id=actor_id,
                source=parsed.source[:300],
                **extra,
            )
            if activate:
                _activate(version, actor_id=actor_id)
            report.created.append(f"{what} v{version.number}")
    return report


def definitions_import_paths(
    *, paths: Iterable[str], actor: Actor = None, activate: bool = True
) -> ImportReport:
    items, errors = load_paths(paths)
    if errors:
        raise DefinitionsInvalid(errors)
    if not items:
        raise DefinitionsInvalid([DefinitionError("", "", "no definition documents found")])
    return definitions_import(items=items, actor=actor, activate=activate)


ACTIVATED = "definitions.version.activated"
FLOW_ACTIVATED = "definitions.flow.activated"


def _activate(version: OrchestrationVersion | FlowVersion, *, actor_id: int | None) -> None:
    """Make `version` the active one and log it, with what changed against the one active before.
    Nothing happens (and nothing is logged) when it is active already."""
    is_orchestration = isinstance(version, OrchestrationVersion)
    owner_field = "orchestration" if is_orchestration else "flow"
    owner_id = getattr(version, f"{owner_field}_id")
    owner_model = Orchestration if is_orchestration else Flow
    # Lock the definition's row: two activations of one definition at once are serialised, so
    # each event's "from" is the version that really was active before it. Always the definition
    # first, then its versions (an import has updated the row already): no lock-order deadlock.
    owner_model.objects.select_for_update().filter(pk=owner_id).first()
    previous = type(version).objects.filter(**{owner_field: owner_id}, is_active=True).first()
    if previous is not None and previous.pk == version.pk:
        version.is_active = True
        return
    type(version).objects.filter(**{owner_field: owner_id}, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    type(version).objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    payload: dict[str, Any] = {"from": previous.number if previous else None, "to": version.number}
    if is_orchestration:
        if previous is not None:
            payload["changes"] = orchestration_diff(previous.document, version.document).summary()
        DefinitionEvent.objects.create(
            orchestration_id=owner_id,
            name=ACTIVATED,
            version_number=version.number,
            actor_id=actor_id,
            payload=payload,
        )
    else:
        DefinitionEvent.objects.create(
            flow_id=owner_id,
            name=FLOW_ACTIVATED,
            version_number=version.number,
            actor_id=actor_id,
            payload=payload,
        )


def version_activate(*, version: OrchestrationVersion | FlowVersion, actor: Actor = None) -> None:
    """Make `version` the active one of its definition, with a `definitions.version.activated`
    (or `definitions.flow.activated`) event; an active version stays as it is, unlogged."""
    actor_id = _require(actor, PERM_IMPORT)
    with transaction.atomic():
        _activate(version, actor_id=actor_id)


def version_export(*, version: OrchestrationVersion | FlowVersion) -> dict[str, Any]:
    """One version's document as an admin would write it: `kind` and `api_name` first, the
    definition's own field order, defaults left out where that provably changes nothing (the
    compact document parses back to the stored one, same checksum), so re-importing it creates
    no new version."""
    from ..validation import KIND_MODELS

    document = version.document
    model: Any = KIND_MODELS[document["kind"]]
    compact = model.model_validate(document).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    reparsed = model.model_validate(compact).model_dump(mode="json", by_alias=True)
    if VersionBase.checksum_of(reparsed) != version.checksum:
        compact = document  # something a default hides matters: keep the document whole
    head = {"kind": compact["kind"], "api_name": compact["api_name"]}
    return {**head, **compact}


def definitions_yaml(documents: list[dict[str, Any]]) -> str:
    """Documents as one YAML text, as `export_definitions` writes them and the version page's
    download gives them (one document: no `---`)."""
    # sort_keys=False keeps the definition's own order (kind, api_name, label, ... stages).
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=100)


def definitions_export(*, names: Iterable[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The active version of every flow and orchestration (or of those named), as
    (api_name, document) pairs, flows first, ready to be written out as YAML.

    Each in `version_export`'s compact form: re-importing an export creates no new version.
    Raises LookupError naming the definitions that do not exist or have no active version."""
    wanted = set(names) if names is not None else None
    flows = FlowVersion.objects.filter(is_active=True).select_related("flow").order_by("flow__api_name")
    orchs = (
        OrchestrationVersion.objects.filter(is_active=True)
        .select_related("orchestration")
        .order_by("orchestration__api_name")
    )
    if wanted is not None:
        flows = flows.filter(flow__api_name__in=wanted)
        orchs = orchs.filter(orchestration__api_name__in=wanted)
    out: list[tuple[str, dict[str, Any]]] = []
    versions: list[OrchestrationVersion | FlowVersion] = [*flows, *orchs]
    for version in versions:
        document = version_export(version=version)
        out.append((document["api_name"], document))
    if wanted is not None:
        missing = wanted - {name for name, _ in out}
        if missing:
            raise LookupError(
                "no active version of: " + ", ".join(sorted(missing)) + " (unknown names or never activated)"
            )
    return out
