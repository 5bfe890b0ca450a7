"""Launching runs: one (`run_launch`), many (`launch_many`), and what a record save starts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .. import engine, expressions, hot
from ..definitions import AutolaunchedStart, RecordStart
from ..definitions import Orchestration as OrchestrationDoc
from ..models import (
    Orchestration,
    OrchestrationVersion,
    Run,
    RunStatus,
)
from ..values import TypeCoercionError, to_json
from .common import CURRENT_RUN, PERM_LAUNCH, _require, record_visible_to

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

log = logging.getLogger(__name__)


class LaunchError(ValidationError):
    pass


def _record_ref(record: models.Model | None) -> tuple[int | None, int | None, str]:
    if record is None:
        return None, None, ""
    ct = ContentType.objects.get_for_model(record)
    return ct.pk, int(record.pk), str(record)[:200]


def run_launch(
    *,
    orchestration: str | Orchestration,
    record: models.Model | None = None,
    inputs: dict[str, Any] | None = None,
    actor: Actor = None,
    _version: OrchestrationVersion | None = None,
    _triggered_by_id: int | None = None,
) -> Run:
    """Start a run of the active version and advance it. Raises LaunchError on bad input.

    (`_triggered_by_id`: the person whose record save launched a record-triggered run; they
    need no launch permission, the save itself was checked.)"""
    actor_id = _require(actor, PERM_LAUNCH) or _triggered_by_id
    version = _version or _active_version(orchestration)
    run = _new_run(version, record=record, inputs=inputs, actor=actor, actor_id=actor_id)
    with transaction.atomic():
        hot.insert([run])
        _start(run, actor_id)
    return run


def launch_many(
    *,
    orchestration: str | Orchestration,
    records: Iterable[models.Model | None],
    inputs: dict[str, Any] | Callable[[models.Model | None], dict[str, Any]] | None = None,
    actor: Actor = None,
    batch_size: int = 500,
) -> list[int]:
    """Launch one run per record (None: a run without one), in transactions of `batch_size`
    runs, and return their ids in order. `inputs` is the same for every run, or a function of
    the record.

    What run_launch checks is checked for every run before its batch is written (a bad one
    raises LaunchError, or PermissionDenied, and nothing of that batch is stored; earlier
    batches stay). Each run then starts exactly as run_launch starts it (its own pass, events
    and dispatches on commit), but a batch's runs are one INSERT and one commit, and the
    orchestration's version and its flows' versions are read once."""
    actor_id = _require(actor, PERM_LAUNCH)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    version = _active_version(orchestration)
    values = inputs if callable(inputs) else (lambda record: inputs or {})
    ids: list[int] = []
    batch: list[Run] = []
    flows: dict[str, Any] = {}

    def write() -> None:
        with transaction.atomic():
            hot.insert(batch)
            for run in batch:
                # Every run of the batch starts on the same flow versions, read by the first.
                _start(run, actor_id, flow_versions=flows)
        ids.extend(run.pk for run in batch)
        batch.clear()

    for record in records:
        batch.append(_new_run(version, record=record, inputs=values(record), actor=actor, actor_id=actor_id))
        if len(batch) >= batch_size:
            write()
    if batch:
        write()
    return ids


def _active_version(orchestration: str | Orchestration) -> OrchestrationVersion:
    name = orchestration if isinstance(orchestration, str) else orchestration.api_name
    version = hot.active_version(name)
    if version is None:
        raise LaunchError(f"orchestration '{name}' does not exist or has no active version")
    return version


def _new_run(
    version: OrchestrationVersion,
    *,
    record: models.Model | None,
    inputs: dict[str, Any] | None,
    actor: Actor,
    actor_id: int | None,
) -> Run:
    """A run checked and built, not yet stored. Raises LaunchError / PermissionDenied."""
    if record is not None and not record_visible_to(user=actor, record=record):
        # A run names its record (label, link): launching on one is seeing it.
        raise PermissionDenied("you may not view this record")
    doc = engine.orchestration_doc(version)
    ct_id, record_id, label = _record_ref(record)
    if doc.start.record_type and record is None:
        kind = doc.start.record_type
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise LaunchError(f"'{doc.api_name}' runs on {article} {kind} record: give one")
    if record is not None and doc.start.record_type:
        rtype = getattr(getattr(record, "record_type", None), "api_name", None)
        if rtype is not None and rtype != doc.start.record_type:
            raise LaunchError(f"'{doc.api_name}' runs on {doc.start.record_type} records, not {rtype}")
    return Run(
        orchestration_id=version.orchestration_id,
        version=version,
        record_type_id=ct_id,
        record_id=record_id,
        record_label=label,
        status=RunStatus.NOT_STARTED,  # its first pass starts it (_start)
        inputs=_clean_inputs(doc, inputs or {}),
        started_at=timezone.now(),
        started_by_id=actor_id,
    )


def _start(run: Run, actor_id: int | None, *, flow_versions: dict[str, Any] | None = None) -> None:
    """The first pass of a stored new run: its variables, its first stage, as far as it goes."""
    p = engine.Pass(run, actor_id, new=True, flow_versions=flow_versions)
    p.run_to(RunStatus.IN_PROGRESS, inputs=run.inputs)
    variables, failed = _initial_variables(p.doc, p.context())
    p.set_run(variables={**variables, **run.inputs})
    if failed:
        # A default that cannot be computed for this record is a run-time failure, not bad
        # input: record it on the run for admins (raising would, for a record-triggered
        # launch, fail the record save that has already committed).
        p.run_to(RunStatus.ERROR, error=failed)
    engine.advance_locked(run, actor_id=actor_id, pass_=p)


def _clean_inputs(doc: OrchestrationDoc, raw: dict[str, Any]) -> dict[str, Any]:
    declared = doc.start.inputs if isinstance(doc.start, AutolaunchedStart) else []
    known = {v.name: v for v in declared}
    errors: dict[str, list[str]] = {}
    for name in raw:
        if name not in known:
            errors.setdefault(name, []).append(f"'{name}' is not an input of '{doc.api_name}'")
    out: dict[str, Any] = {}
    for v in declared:
        value = raw.get(v.name)
        if value is None and v.default is not None:
            try:
                value = expressions.evaluate(v.default, {})
            except expressions.ExpressionError as exc:
                errors.setdefault(v.name, []).append(str(exc))
                continue
        try:
            out[v.name] = to_json(v.type, value)
        except TypeCoercionError as exc:
            errors.setdefault(v.name, []).append(str(exc))
            continue
        if v.required and out[v.name] is None:
            errors.setdefault(v.name, []).append("this input is required")
    if errors:
        raise LaunchError(errors)
    return out


def _initial_variables(doc: OrchestrationDoc, context: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The variables' default values, and the errors of those that failed (left empty)."""
    out: dict[str, Any] = {}
    errors: list[str] = []
    for v in doc.variables:
        try:
            value = expressions.evaluate(v.default, context) if v.default else None
            out[v.name] = to_json(v.type, value)
        except (expressions.ExpressionError, TypeCoercionError) as exc:
            out[v.name] = None
            errors.append(f"variable '{v.name}' default: {exc}")
    return out, "; ".join(errors)


def _meets(condition: str | None, values: dict[str, Any] | None) -> bool:
    if values is None:
        return False
    if not condition:
        return True
    return expressions.truthy(condition, {"record": values})


def launch_for_record_change(
    *,
    record: models.Model,
    record_type: str,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    actor_id: int | None = None,
) -> list[Run]:
    """Launch what a record save qualifies for, then re-check open runs on that record.

    Called on commit of the save (so a rolled-back save launches nothing), once per save.
    A save made by a flow of a run does not launch that run's own orchestration again on the
    same record: an update-triggered orchestration that updates its record would otherwise
    relaunch itself for ever."""
    created = old is None
    origin = CURRENT_RUN.get()
    runs: list[Run] = []
    versions = OrchestrationVersion.objects.filter(
        is_active=True, start_type="record", record_type=record_type
    ).select_related("orchestration")
    for version in versions:
        doc = engine.orchestration_doc(version)
        start = doc.start
        assert isinstance(start, RecordStart)
        if (start.on == "create" and not created) or (start.on == "update" and created):
            continue
        try:
            qualifies = _meets(start.condition, new)
        except expressions.ExpressionError as exc:
            log.warning("start condition of %s failed on %s: %s", doc.api_name, record, exc)
            continue
        if qualifies and start.run == "changed_to_meet" and not created:
            try:
                qualifies = not _meets(start.condition, old)
            except expressions.ExpressionError:
                # The old values could not be compared (`None > 1000` before a field was
                # filled in): they did not meet the condition, so the record changed to meet it.
                qualifies = True
        if qualifies and origin is not None and origin == (version.orchestration_id, record.pk):
            log.info("not relaunching %s on %s from its own run", doc.api_name, record)
            continue
        if qualifies:
            runs.append(
                run_launch(
                    orchestration=doc.api_name, record=record, _version=version, _triggered_by_id=actor_id
                )
            )
    ct = ContentType.objects.get_for_model(record)
    open_ids = list(
        Run.objects.filter(record_type=ct, record_id=record.pk, status=RunStatus.IN_PROGRESS)
        .exclude(pk__in=[r.pk for r in runs])
        .values_list("pk", flat=True)
    )
    for run_id in open_ids:
        with transaction.atomic():
            engine.advance(run_id)
    return runs
