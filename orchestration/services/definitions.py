"""Definitions: validate and store versions, activate them, export the active ones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction

from .. import engine
from ..definitions import FLOW_KINDS
from ..models import (
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
                    _activate(latest)
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
                _activate(version)
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


def _activate(version: OrchestrationVersion | FlowVersion) -> None:
    owner_field = "orchestration" if isinstance(version, OrchestrationVersion) else "flow"
    type(version).objects.filter(
        **{owner_field: getattr(version, f"{owner_field}_id")}, is_active=True
    ).exclude(pk=version.pk).update(is_active=False)
    type(version).objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True


def version_activate(*, version: OrchestrationVersion | FlowVersion, actor: Actor = None) -> None:
    """Make `version` the active one of its definition."""
    _require(actor, PERM_IMPORT)
    with transaction.atomic():
        _activate(version)


def definitions_export(*, names: Iterable[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The active version of every flow and orchestration (or of those named), as
    (api_name, document) pairs, flows first, ready to be written out as YAML.

    Defaults are left out where that provably changes nothing: the compact document must parse
    back to the stored one (same checksum), so re-importing an export creates no new version.
    Raises LookupError naming the definitions that do not exist or have no active version."""
    from ..validation import KIND_MODELS

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
    for version in [*flows, *orchs]:
        document = version.document
        model: Any = KIND_MODELS[document["kind"]]
        compact = model.model_validate(document).model_dump(mode="json", by_alias=True, exclude_defaults=True)
        reparsed = model.model_validate(compact).model_dump(mode="json", by_alias=True)
        if VersionBase.checksum_of(reparsed) != version.checksum:
            compact = document  # something a default hides matters: keep the document whole
        # kind and api_name first, whatever the model's field order: they say what this is.
        head = {"kind": compact["kind"], "api_name": compact["api_name"]}
        out.append((head["api_name"], {**head, **compact}))
    if wanted is not None:
        missing = wanted - {name for name, _ in out}
        if missing:
            raise LookupError(
                "no active version of: " + ", ".join(sorted(missing)) + " (unknown names or never activated)"
            )
    return out
