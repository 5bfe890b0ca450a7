"""Parsed definitions, cached per process, what a definition may need (the record), and the
context expressions see of a run (its record, typed variables and inputs)."""

from __future__ import annotations

import logging
import re
from typing import Any

from .calendars import Calendar
from .definitions import Orchestration
from .flows import typed_inputs
from .models import (
    FlowKind,
    FlowVersion,
    OrchestrationVersion,
    Run,
)
from .registry import RECORD_ACCESSORS
from .values import from_json

log = logging.getLogger(__name__)

# Parsed definitions, per process. A version's document never changes once stored, and its
# checksum is the document's hash, so (id, checksum) names one document: a pass finds the parsed
# definition without reading, hashing or even loading the JSON (the engine defers it).
_PARSED: dict[tuple[str, int, str], Any] = {}
_PARSED_MAX = 2048


def _parsed(version: OrchestrationVersion | FlowVersion, parse: Any) -> Any:
    import json

    checksum = version.checksum
    if not checksum:  # not stored through the services: the document itself is the key
        checksum = "doc:" + json.dumps(version.document, sort_keys=True, default=str)
    key = (type(version).__name__, version.pk, checksum)
    found = _PARSED.get(key)
    if found is None:
        found = parse(version.document)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = found
    return found


def orchestration_doc(version: OrchestrationVersion) -> Orchestration:
    """The parsed definition of a version; versions are immutable, so parse once per process."""
    return _parsed(version, Orchestration.model_validate)  # type: ignore[no-any-return]


def _parse_flow(document: dict[str, Any]) -> Any:
    from .validation import KIND_MODELS

    return KIND_MODELS[document["kind"]].model_validate(document)


def flow_doc(version: FlowVersion) -> Any:
    return _parsed(version, _parse_flow)


# Loading a run's record for `record` in expressions costs a query per pass (and per background
# step); most definitions never look at it. An expression can reach the record only through the
# name `record`, so a definition none of whose strings contains that word cannot need it.
_RECORD_WORD = re.compile(r"\brecord\b")
# Actions that see the record only through their expressions. Any other action (a Python flow,
# an action another app registered) receives the flow context itself and gets the record.
_EXPRESSION_ONLY_ACTIONS = frozenset({"set_outputs", "send_email", "http"})
_USES_RECORD: dict[tuple[str, int, str], bool] = {}


def _mentions_record(value: Any, key: str = "") -> bool:
    # Every string counts (a label that says "record" only costs a needless query), except
    # `type` values, which name kinds ("record" start, data types), never expressions.
    if isinstance(value, str):
        return key != "type" and _RECORD_WORD.search(value) is not None
    if isinstance(value, dict):
        return any(_mentions_record(v, k) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions_record(v, key) for v in value)
    return False


def definition_uses_record(version: OrchestrationVersion | FlowVersion) -> bool:
    """Whether running this definition may need the run's record (see _RECORD_WORD)."""
    key = (type(version).__name__, version.pk, version.checksum)
    found = _USES_RECORD.get(key)
    if found is None:
        document = version.document
        actions = (document.get("actions") or []) if isinstance(document, dict) else []
        found = any(
            not isinstance(a, dict) or a.get("type") not in _EXPRESSION_ONLY_ACTIONS for a in actions
        ) or _mentions_record(document)
        if len(_USES_RECORD) > 4096:
            _USES_RECORD.clear()
        _USES_RECORD[key] = found
    return found


def record_context(run: Run) -> dict[str, Any]:
    if run.record_type_id is None or run.record_id is None:
        return {}
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_for_id(run.record_type_id)
    accessor = RECORD_ACCESSORS.get(f"{ct.app_label}.{ct.model}")
    if accessor is None:
        return {"id": run.record_id}
    return accessor.load(run.record_id) or {"id": run.record_id}


def typed_vars(doc: Orchestration, values: dict[str, Any]) -> dict[str, Any]:
    types = {v.name: v.type for v in doc.variables}
    if hasattr(doc.start, "inputs"):
        types.update({v.name: v.type for v in doc.start.inputs})
    return {k: from_json(types.get(k, "text"), v) for k, v in values.items()}


def typed_run_inputs(doc: Orchestration, values: dict[str, Any]) -> dict[str, Any]:
    """The launch inputs as expressions see them (a decimal input compares as a number)."""
    declared = doc.start.inputs if hasattr(doc.start, "inputs") else []
    return typed_inputs(declared, values)


def calendar_named(name: str | None, cache: dict[str, Calendar] | None = None) -> Calendar:
    """The active version of the business calendar `name`, or 24/7 (no name, or none stored:
    logged, since validation checked it existed when the orchestration was imported)."""
    if not name:
        return Calendar.always()
    if cache is not None and name in cache:
        return cache[name]
    version = (
        FlowVersion.objects.filter(flow__api_name=name, flow__kind=FlowKind.CALENDAR, is_active=True)
        .select_related("flow")
        .first()
    )
    if version is None:
        log.error("business calendar %r is not stored: counting 24/7", name)
        calendar = Calendar.always()
    else:
        calendar = Calendar.from_definition(flow_doc(version))
    if cache is not None:
        cache[name] = calendar
    return calendar
