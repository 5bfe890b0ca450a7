"""All writes of the orchestration app: definitions, launching, step completion, background
execution, admin operations and the sweep. Keyword-only, typed; `actor=None` means the system.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connections, models, transaction
from django.utils import timezone

from . import engine, expressions, hot, outbox
from .definitions import FLOW_KINDS, AutolaunchedStart, RecordStart
from .definitions import Orchestration as OrchestrationDoc
from .flows import FlowError, run_actions, typed_inputs
from .models import (
    ApiToken,
    ExecState,
    Flow,
    FlowVersion,
    Orchestration,
    OrchestrationVersion,
    Run,
    RunEvent,
    RunStatus,
    StageStatus,
    StepRun,
    VersionBase,
)
from .registry import RECORD_ACCESSORS, FlowContext, register_step_kind
from .validation import DefinitionError, load_paths, validate_documents
from .values import TypeCoercionError, to_json

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

log = logging.getLogger(__name__)

# (orchestration id, record id) of the run whose background flow is executing in this context.
CURRENT_RUN: ContextVar[tuple[int, int | None] | None] = ContextVar("orchestration_current_run", default=None)

# Each admin action has its own permission (Meta.permissions of Run).
PERM_CANCEL = "orchestration.cancel_run"
PERM_SUSPEND = "orchestration.suspend_run"  # suspend and resume
PERM_RETRY = "orchestration.retry_step"  # retry a failed step, re-check conditions
PERM_SKIP = "orchestration.skip_step"
PERM_LAUNCH = "orchestration.launch_orchestration"
PERM_IMPORT = "orchestration.import_definitions"


def _require(actor: Actor, perm: str) -> int | None:
    """Check `perm` for a human actor; the system (None) may do anything. Returns the actor id."""
    if actor is None:
        return None
    if not actor.is_authenticated or not actor.has_perm(perm):
        raise PermissionDenied(f"you need the permission {perm!r}")
    return int(actor.pk)


# --- definitions ------------------------------------------------------------------------------


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
    from .validation import KIND_MODELS

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


# --- launching --------------------------------------------------------------------------------


class LaunchError(ValidationError):
    pass


def _record_ref(record: models.Model | None) -> tuple[int | None, int | None, str]:
    if record is None:
        return None, None, ""
    ct = ContentType.objects.get_for_model(record)
    return ct.pk, int(record.pk), str(record)[:200]


def record_visible_to(*, user: Actor, record: models.Model) -> bool:
    """Whether `user` may see `record`, by the rule its app registered with the record accessor
    (records: records.view_record, or work on that record). The system (None) sees everything."""
    if user is None:
        return True
    ct = ContentType.objects.get_for_model(record)
    accessor = RECORD_ACCESSORS.get(f"{ct.app_label}.{ct.model}")
    if accessor is None or accessor.may_view is None:
        return True
    return accessor.may_view(user, int(record.pk))


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
        raise LaunchError(f"'{doc.api_name}' runs on a {doc.start.record_type} record: give one")
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
        status=RunStatus.IN_PROGRESS,
        inputs=_clean_inputs(doc, inputs or {}),
        started_at=timezone.now(),
        started_by_id=actor_id,
    )


def _start(run: Run, actor_id: int | None, *, flow_versions: dict[str, Any] | None = None) -> None:
    """The first pass of a stored new run: its variables, its first stage, as far as it goes."""
    p = engine.Pass(run, actor_id)
    if flow_versions is not None:
        p.flow_versions = flow_versions
    p.loaded = True  # a new run has no stage yet: nothing to load
    variables, failed = _initial_variables(p.doc, p.context())
    run.variables = {**variables, **run.inputs}
    p.run_dirty.add("variables")
    p.event("run.started", inputs=run.inputs)
    if failed:
        # A default that cannot be computed for this record is a run-time failure, not bad
        # input: record it on the run for admins (raising would, for a record-triggered
        # launch, fail the record save that has already committed).
        p.set_run(status=RunStatus.ERROR, error=failed[:5000])
        p.event("run.error", error=failed)
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


# --- step completion --------------------------------------------------------------------------


class StepNotOpen(Exception):
    """The step is no longer waiting for this completion (done, discontinued, canceled)."""


def step_complete_locked(
    *,
    run: Run,
    step_run: StepRun,
    outputs: dict[str, Any],
    actor_id: int | None,
    pass_: engine.Pass | None = None,
) -> None:
    """Complete an in-progress step and advance. The caller holds the run lock (and may give
    the pass it already started on it)."""
    engine.require_atomic()
    p = pass_ or engine.Pass(run, actor_id)
    p.load_stage()
    # A step in progress is in the stage in progress, which the pass has just read under the
    # lock: found there, it is the fresh row; not found, it ended with its stage.
    sr = next((s for s in p.steps.values() if s.pk == step_run.pk), None)
    if sr is None or sr.status != StageStatus.IN_PROGRESS:
        # (The caller's row was read under the lock too: it says how the step ended.)
        shown = sr or step_run
        raise StepNotOpen(f"step '{shown.key}' is {shown.get_status_display().lower()}")
    step = next(s for s in p.doc.stage(p.stage_key).steps if s.key == sr.key)
    try:
        p.complete_step(step, sr, outputs)
    except FlowError as exc:
        p.fail_step(step.key, sr, str(exc))
    engine.advance_locked(run, actor_id=actor_id, pass_=p)


# --- background steps -------------------------------------------------------------------------


class BackgroundKind:
    """Background steps run an autolaunched flow on a Celery worker."""

    def start(self, *, run: Run, step_run: StepRun, step: Any, context: dict[str, Any]) -> None:
        step_run.attempts += 1
        step_run.exec_state = ExecState.QUEUED
        step_run.next_attempt_at = timezone.now()
        dispatch_step(step_run.pk, step_run.attempts)

    def stop(self, *, run: Run, step_runs: list[StepRun], reason: str) -> None:
        # A task already running finishes its flow; its result is then ignored because the
        # step is no longer in progress (see background_step_execute).
        return None


register_step_kind("background", BackgroundKind())


def dispatch_step(step_run_id: int, attempt: int, *, countdown: float = 0) -> None:
    """Enqueue the step's task once the current transaction commits (never before: the worker
    must see the committed step, the bug Viewflow #153 describes)."""
    from .tasks import run_background_step

    def send() -> None:
        try:
            if countdown:
                run_background_step.apply_async((step_run_id, attempt), countdown=countdown)
            else:
                run_background_step.apply_async((step_run_id, attempt))
        except Exception as exc:  # kombu's OperationalError, or the transport's own errors
            # The broker is away. The state change has committed and the step row is queued: the
            # database is the outbox and the sweep its relay, so the caller (a web request, a
            # record save) must not fail. Publishing fails fast (CELERY_TASK_PUBLISH_RETRY_POLICY);
            # the mark lets the next sweep re-send it without waiting for the grace.
            log.warning(
                "step %s attempt %s: broker unreachable, left to the sweep: %s", step_run_id, attempt, exc
            )
            _mark_dispatch_failed(step_run_id, attempt)

    transaction.on_commit(send)


def _mark_dispatch_failed(step_run_id: int, attempt: int) -> None:
    try:
        StepRun.objects.filter(pk=step_run_id, attempts=attempt, exec_state=ExecState.QUEUED).update(
            dispatch_failed=True
        )
    except DatabaseError as exc:
        # The database went away too: the sweep still re-sends the attempt, after the grace.
        log.warning("step %s attempt %s: could not mark the failed publish: %s", step_run_id, attempt, exc)


def _claim(step_run_id: int, attempt: int) -> StepRun | None:
    """Claim this attempt of a queued step (a compare-and-swap on attempts and exec_state,
    committed at once) and read the step with its run; None when it was not queued for this
    attempt (a duplicate or stale delivery).

    On PostgreSQL the claim and the read are one statement, `UPDATE … RETURNING` joined to the
    run; the versions come with their checksums only, their parsed definitions being cached
    per process (engine._parsed). Elsewhere: an UPDATE, then a SELECT."""
    now = timezone.now()
    connection = connections[StepRun.objects.db]
    if connection.vendor == "postgresql":
        return hot.claim_step(step_run_id, attempt, now=now)
    claimed = StepRun.objects.filter(
        pk=step_run_id, attempts=attempt, status=StageStatus.IN_PROGRESS, exec_state=ExecState.QUEUED
    ).update(exec_state=ExecState.RUNNING, claimed_at=now)
    if claimed != 1:
        return None
    return StepRun.objects.select_related("run", "flow_version", "run__version").get(pk=step_run_id)


def _backoff(attempt: int) -> float:
    base = settings.ORCHESTRATION_RETRY_BASE_SECONDS
    return float(min(base * (2 ** max(attempt - 1, 0)), settings.ORCHESTRATION_RETRY_MAX_SECONDS))


def background_step_execute(*, step_run_id: int, attempt: int) -> str:
    """Run one attempt of a background step. Returns what happened (for logs and tests).

    The claim is a compare-and-swap on (attempts, exec_state): a redelivered or duplicated task
    for the same attempt finds the row already claimed and runs nothing."""
    sr = _claim(step_run_id, attempt)
    if sr is None:
        return "duplicate"
    run = sr.run
    doc = engine.orchestration_doc(run.version)
    fdoc = engine.flow_doc(sr.flow_version) if sr.flow_version else None
    ct_label = None
    if run.record_type_id:
        ct = ContentType.objects.get_for_id(run.record_type_id)
        ct_label = f"{ct.app_label}.{ct.model}"
    ctx = FlowContext(
        run_id=run.pk,
        step_key=sr.key,
        record_model=ct_label,
        record_id=run.record_id,
        # Loading the record is a query: only when the flow may look at it.
        record=engine.record_context(run)
        if sr.flow_version and engine.definition_uses_record(sr.flow_version)
        else {},
        inputs=typed_inputs(fdoc.inputs, sr.inputs) if fdoc else {},
        vars=engine.typed_vars(doc, run.variables),
        steps=run.step_outputs,
        outputs={},
        actor_id=None,
        # The same for every attempt of this step run (and after an admin's retry of it): an
        # effect a retry repeats after a crash carries the key of the first try, so a
        # de-duplicating receiver applies it once (docs/effects.md).
        idempotency_key=f"step:{sr.pk}",
        emails=[],
    )
    error = ""
    outputs: dict[str, Any] = {}
    try:
        if fdoc is None:
            raise FlowError("step has no flow version")
        # The flow runs outside the run lock: it may call out to slow systems.
        token = CURRENT_RUN.set((run.orchestration_id, run.record_id))
        try:
            outputs = run_actions(fdoc, ctx)
        finally:
            CURRENT_RUN.reset(token)
    except (FlowError, expressions.ExpressionError) as exc:
        error = str(exc)
    except Exception as exc:  # a registered Python flow may raise anything
        log.exception(
            "background step %s attempt %s failed",
            step_run_id,
            attempt,
            extra={"run_id": run.pk, "step": sr.key},
        )
        error = f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        run = engine.lock_run(run.pk)
        # The step is re-read with the rest of its stage, which the pass needs anyway. A step
        # in progress is always in the stage in progress, so not finding it there means it
        # was discontinued meanwhile.
        p = engine.Pass(run, None)
        p.load_stage()
        found = next((s for s in p.steps.values() if s.pk == step_run_id), None)
        if (
            found is None
            or found.status != StageStatus.IN_PROGRESS
            or found.attempts != attempt
            or found.exec_state != ExecState.RUNNING
        ):
            return "stale"  # skipped, retried or discontinued meanwhile: keep the newer state
        sr = found
        if not error:
            sr.exec_state = ExecState.DONE
            sr.error = ""
            step_complete_locked(run=run, step_run=sr, outputs=outputs, actor_id=None, pass_=p)
            if sr.status == StageStatus.COMPLETED:
                # The flow's emails are written with its result, in this transaction: a worker
                # that dies before the commit sends nothing, and the retry writes them once.
                outbox.outbox_write_many(
                    emails=[
                        outbox.outbox_email(kind="flow", run_id=run.pk, step_run_id=sr.pk, **email)
                        for email in ctx.emails or []
                    ]
                )
            return "completed"
        return _attempt_failed(run=run, sr=sr, error=error, pass_=p)


def _attempt_failed(*, run: Run, sr: StepRun, error: str, pass_: engine.Pass | None = None) -> str:
    p = pass_ or engine.Pass(run, None)
    p.load_stage()
    step = next(s for s in p.doc.stage(sr.stage_run.key).steps if s.key == sr.key)
    sr = p.steps.get(sr.key, sr)
    if sr.attempts < step.max_attempts:
        delay = _backoff(sr.attempts)
        sr.attempts += 1
        sr.exec_state = ExecState.QUEUED
        sr.error = error[:5000]
        sr.next_attempt_at = timezone.now() + dt.timedelta(seconds=delay)
        sr.save(update_fields=["attempts", "exec_state", "error", "next_attempt_at"])
        p.event(
            "step.retry_scheduled",
            stage=sr.stage_run.key,
            step=sr.key,
            error=error,
            attempt=sr.attempts,
            delay_seconds=delay,
        )
        dispatch_step(sr.pk, sr.attempts, countdown=delay)
        engine.advance_locked(run, pass_=p)
        return "retry"
    p.fail_step(sr.key, sr, error)
    engine.advance_locked(run, pass_=p)
    return "error"


# --- admin operations -------------------------------------------------------------------------


class ActionNotAllowed(Exception):
    """The action is not valid for the current state; the message says why."""


def run_actions_available(run: Run) -> list[str]:
    """What an admin may do with a run now (the UI asks this, it does not decide itself)."""
    if run.status == RunStatus.IN_PROGRESS:
        return ["cancel", "suspend", "recheck"]
    if run.status == RunStatus.SUSPENDED:
        return ["cancel", "resume"]
    if run.status == RunStatus.ERROR:
        return ["cancel", "recheck"]
    return []


def _check_action(run: Run, action: str) -> None:
    if action not in run_actions_available(run):
        raise ActionNotAllowed(f"cannot {action} a run that is {run.get_status_display().lower()}")


def _step_for_admin(step_run_id: int) -> tuple[Run, StepRun]:
    run_id = StepRun.objects.values_list("run_id", flat=True).get(pk=step_run_id)
    run = engine.lock_run(run_id)
    sr = StepRun.objects.select_related("stage_run").get(pk=step_run_id)
    return run, sr


def _run_back_in_progress(p: engine.Pass) -> None:
    others = [s for s in p.steps.values() if s.status == StageStatus.ERROR]
    if p.run.status == RunStatus.ERROR and not others:
        p.set_run(status=RunStatus.IN_PROGRESS, error="")
        # Every status change has its event, this one included.
        p.event("run.recovered", stage=p.stage_key)


def step_retry(*, step_run_id: int, actor: Actor = None, reason: str = "") -> StepRun:
    """Retry a failed step: start its work again (a new attempt for background steps)."""
    actor_id = _require(actor, PERM_RETRY)
    with transaction.atomic():
        run, sr = _step_for_admin(step_run_id)
        if sr.status != StageStatus.ERROR or sr.stage_run.status != StageStatus.IN_PROGRESS:
            raise ActionNotAllowed(
                f"only a failed step of the current stage can be retried (it is {sr.status})"
            )
        if run.status not in (RunStatus.ERROR, RunStatus.IN_PROGRESS):
            raise ActionNotAllowed(f"the run is {run.status}")
        p = engine.Pass(run, actor_id)
        p.load_stage()
        sr = p.steps[sr.key]
        p.event("step.retried", stage=sr.stage_run.key, step=sr.key, reason=reason)
        sr.status = StageStatus.NOT_STARTED
        sr.error = ""
        sr.ended_at = None
        sr.exec_state = ExecState.IDLE
        sr.save(update_fields=["status", "error", "ended_at", "exec_state"])
        _run_back_in_progress(p)
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return sr


def step_skip(
    *, step_run_id: int, outputs: dict[str, Any] | None = None, actor: Actor = None, reason: str = ""
) -> StepRun:
    """Mark a failed step completed with the given outputs, and move on."""
    actor_id = _require(actor, PERM_SKIP)
    with transaction.atomic():
        run, sr = _step_for_admin(step_run_id)
        if sr.status != StageStatus.ERROR or sr.stage_run.status != StageStatus.IN_PROGRESS:
            raise ActionNotAllowed(
                f"only a failed step of the current stage can be skipped (it is {sr.status})"
            )
        p = engine.Pass(run, actor_id)
        p.load_stage()
        sr = p.steps[sr.key]
        step = next(s for s in p.doc.stage(sr.stage_run.key).steps if s.key == sr.key)
        clean = _clean_outputs(sr, outputs or {})
        p.event("step.skip_requested", stage=sr.stage_run.key, step=sr.key, reason=reason)
        sr.error = ""
        try:
            p.complete_step(step, sr, clean, skipped=True)
        except FlowError as exc:  # an output that does not fit the variable it is mapped to
            raise ValidationError(str(exc)) from exc
        _run_back_in_progress(p)
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return sr


def _clean_outputs(sr: StepRun, outputs: dict[str, Any]) -> dict[str, Any]:
    if sr.flow_version is None:
        return dict(outputs)
    fdoc = engine.flow_doc(sr.flow_version)
    if hasattr(fdoc, "outputs"):
        types = {o.name: o.type for o in fdoc.outputs}
    elif hasattr(fdoc, "fields"):
        types = {f.name: f.type for f in fdoc.fields()}
    else:
        types = {"is_condition_met": "boolean"}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for k, v in outputs.items():
        if k not in types:
            errors.setdefault(k, []).append(f"'{k}' is not an output of this step's flow")
            continue
        try:
            clean[k] = to_json(types[k], v)
        except TypeCoercionError as exc:
            errors.setdefault(k, []).append(str(exc))
    if errors:
        raise ValidationError(errors)
    return clean


def run_cancel(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    """Cancel a run: open steps are discontinued and their work items canceled."""
    actor_id = _require(actor, PERM_CANCEL)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "cancel")
        p = engine.Pass(run, actor_id)
        p.load_stage()
        if p.stage_run is not None:
            p.end_stage(StageStatus.CANCELED)
        p.end_run(RunStatus.CANCELED)
        p.event("run.cancel_reason", reason=reason) if reason else None
        p.set_run(recheck=False)
        p.flush()
        return run


def run_suspend(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    """Pause a run: nothing starts or routes until it is resumed (open work items stay open)."""
    actor_id = _require(actor, PERM_SUSPEND)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "suspend")
        p = engine.Pass(run, actor_id)
        p.set_run(status=RunStatus.SUSPENDED)
        p.event("run.suspended", reason=reason)
        p.flush()
        return run


def run_resume(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    actor_id = _require(actor, PERM_SUSPEND)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "resume")
        p = engine.Pass(run, actor_id)
        p.set_run(status=RunStatus.IN_PROGRESS)
        p.event("run.resumed", reason=reason)
        # A step that failed while the run was suspended is routed now (fault path or error).
        p.load_stage()
        failed = [s for s in p.steps.values() if s.status == StageStatus.ERROR]
        if failed:
            p.route_failure(failed[0].key, failed[0])
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return run


def run_recheck(*, run_id: int, actor: Actor = None, reason: str = "") -> Run:
    """Re-evaluate conditions now. A run in error (a failed condition) is given another go."""
    actor_id = _require(actor, PERM_RETRY)
    with transaction.atomic():
        run = engine.lock_run(run_id)
        _check_action(run, "recheck")
        p = engine.Pass(run, actor_id)
        p.event("run.rechecked", reason=reason)
        if run.status == RunStatus.ERROR:
            p.load_stage()
            if not any(s.status == StageStatus.ERROR for s in p.steps.values()):
                p.set_run(status=RunStatus.IN_PROGRESS, error="")
        engine.advance_locked(run, actor_id=actor_id, pass_=p)
        return run


# --- the sweep --------------------------------------------------------------------------------


@dataclass
class SweepReport:
    redispatched: int = 0
    timed_out: int = 0
    rechecked: int = 0
    emails_relayed: int = 0
    # Another sweep held the lock: this one did nothing.
    skipped: bool = False
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


SWEEP_LOCK = "orchestration-sweep"


def sweep(*, now: dt.datetime | None = None, batch: int = 500) -> SweepReport:
    """Periodic repair: re-send background steps whose task was never delivered, fail attempts
    whose worker died, and re-check runs that wait on a condition.

    Single-flight: a second beat, or a sweep slower than the beat period on a worker with
    several processes, would otherwise run two sweeps at once and time out or re-send the same
    steps twice. A sweep that finds the lock taken returns at once with `skipped`."""
    report = SweepReport()
    with single_flight(SWEEP_LOCK) as acquired:
        if not acquired:
            report.skipped = True
            log.info("sweep skipped: another sweep holds the lock")
            return report
        # Both times are taken while the lock is held: [started_at, ended_at] of two sweeps
        # never overlap (tests/faults/test_beat_twice.py checks it).
        report.started_at = timezone.now()
        now = now or report.started_at
        report.redispatched = _sweep_redispatch(now=now, batch=batch)
        report.timed_out = _sweep_timed_out(now=now, batch=batch)
        report.rechecked = _sweep_recheck(batch=batch)
        report.emails_relayed = outbox.outbox_relay(now=now, batch=batch)  # their task was lost
        if settings.ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS:
            time.sleep(settings.ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS)  # test-only: a slow sweep
        report.ended_at = timezone.now()
    return report


@contextmanager
def single_flight(name: str) -> Iterator[bool]:
    """Hold a lock named `name` across processes and machines for the block, without waiting:
    yields False when someone else holds it.

    PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on this thread's
    connection. It outlives the block's transactions (the sweep commits many), is released in
    `finally`, and the server releases it by itself when the session ends, so a worker killed
    mid-sweep leaves no lock behind and nothing needs to expire. (Not behind a pooler in
    transaction mode, which hands the session to someone else between transactions.) Other
    databases (SQLite, whose processes all share one machine): an exclusive `flock` on a file
    in VAR_DIR named after the database, released by the kernel when the process dies."""
    connection = connections[StepRun.objects.db]
    if connection.vendor == "postgresql":
        key = zlib.crc32(name.encode())  # a stable 32-bit key for the 64-bit lock space
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
                except DatabaseError:
                    # The session is broken or gone, and the server released its locks with it.
                    # A transaction left aborted by the block is rolled back by its atomic();
                    # closing the connection ends the session in every case.
                    log.warning("could not release the %s lock: closing the connection", name)
                    connection.close()
        return
    # One lock per database file: processes working on another database (a test worker's
    # own) are not in each other's way.
    db = zlib.crc32(str(connection.settings_dict["NAME"]).encode())
    path = Path(settings.VAR_DIR) / f"{name}.{db:08x}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sweep_redispatch(*, now: dt.datetime, batch: int) -> int:
    """Re-send queued attempts whose message never reached a worker: those whose publish failed
    (as soon as they are due), and those nobody claimed for the grace past their due time (a
    message lost after publishing: a broker restarted without persistence). Re-sending is safe:
    the claim lets only one delivery run."""
    from .tasks import run_background_step

    grace = dt.timedelta(seconds=settings.ORCHESTRATION_REDISPATCH_GRACE_SECONDS)
    lost = StepRun.objects.filter(
        models.Q(next_attempt_at__lt=now - grace) | models.Q(dispatch_failed=True, next_attempt_at__lte=now),
        exec_state=ExecState.QUEUED,
        status=StageStatus.IN_PROGRESS,
    ).values_list("pk", "attempts")[:batch]
    sent = 0
    for pk, attempt in lost:
        try:
            run_background_step.apply_async((pk, attempt))
        except Exception as exc:  # the broker is still away: the next sweep tries again
            log.warning("sweep: broker unreachable, %s step(s) re-sent before it failed: %s", sent, exc)
            break
        StepRun.objects.filter(pk=pk, attempts=attempt, dispatch_failed=True).update(dispatch_failed=False)
        sent += 1
    return sent


def _sweep_timed_out(*, now: dt.datetime, batch: int) -> int:
    """Fail attempts claimed longer than the step timeout ago (the worker died, or the result
    could not be stored), so that they are retried."""
    timeout = dt.timedelta(seconds=settings.ORCHESTRATION_STEP_TIMEOUT_SECONDS)
    stuck = list(
        StepRun.objects.filter(
            exec_state=ExecState.RUNNING, status=StageStatus.IN_PROGRESS, claimed_at__lt=now - timeout
        ).values_list("pk", "run_id", "attempts")[:batch]
    )
    failed = 0
    for pk, run_id, attempt in stuck:
        with transaction.atomic():
            run = engine.lock_run(run_id)
            sr = StepRun.objects.select_related("stage_run").get(pk=pk)
            if (
                sr.exec_state == ExecState.RUNNING
                and sr.attempts == attempt
                and sr.status == StageStatus.IN_PROGRESS
            ):
                _attempt_failed(run=run, sr=sr, error="worker lost: no result within the step timeout")
                failed += 1
    return failed


def _sweep_recheck(*, batch: int) -> int:
    rechecked = 0
    for run_id in Run.objects.filter(recheck=True, status=RunStatus.IN_PROGRESS).values_list("pk", flat=True)[
        :batch
    ]:
        with transaction.atomic():
            engine.advance(run_id)
        rechecked += 1
    return rechecked


def run_event_add(
    *,
    run: Run | None = None,
    run_id: int | None = None,
    name: str,
    actor_id: int | None,
    payload: dict[str, Any] | None = None,
    stage: str = "",
    step: str = "",
) -> RunEvent:
    """Append an event from another app (e.g. a work item reassigned)."""
    run_id = run.pk if run is not None else run_id
    assert run_id is not None, "give the run or its id"
    event = RunEvent(
        run_id=run_id,
        name=name,
        actor_id=actor_id,
        payload=payload or {},
        stage=stage,
        step=step,
    )
    hot.insert([event])
    return event


def record_accessor_for(run: Run) -> Any:
    if not run.record_type_id:
        return None
    ct = ContentType.objects.get_for_id(run.record_type_id)
    return RECORD_ACCESSORS.get(f"{ct.app_label}.{ct.model}")


# --- API tokens -------------------------------------------------------------------------------


class TokenRefused(Exception):
    """A bearer token that does not authenticate; the message says why (shown to the caller)."""


def api_token_create(
    *, user: Any, name: str, days: int | None = None, never_expires: bool = False
) -> tuple[ApiToken, str]:
    """Create a bearer token for `user`, valid for `days` (default: settings.API_TOKEN_DAYS), or
    without end with `never_expires`. Returns the token and its raw value, which is shown once
    and never stored (only its SHA-256 is, with a short prefix to recognise it by)."""
    if days is not None and days < 1:
        raise ValueError("a token lives at least one day (or pass never_expires)")
    raw = ApiToken.new_raw()
    now = timezone.now()
    lifetime = None if never_expires else dt.timedelta(days=days or settings.API_TOKEN_DAYS)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        digest=ApiToken.digest_of(raw),
        prefix=raw[: ApiToken.PREFIX_LENGTH],
        expires_at=now + lifetime if lifetime else None,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke `token` from now on. False when it was revoked already (the first revocation's
    time is kept: a conditional UPDATE, so two revocations at once record one)."""
    now = timezone.now()
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if changed:
        token.revoked_at = now
    return bool(changed)


# An API client calls many times a minute: recording every use would write on every read.
TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=1)


def api_token_authenticate(*, raw: str) -> Any:
    """The active user a raw bearer token belongs to. Raises TokenRefused saying why not
    (unknown, revoked, expired, inactive user). Records when the token was last used, at most
    once a minute."""
    token = ApiToken.objects.select_related("user").filter(digest=ApiToken.digest_of(raw)).first()
    if token is None:
        raise TokenRefused("the token is not valid (unknown: check that it was copied whole)")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(f"the token '{token.name}' was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC")
    if token.is_expired(now):
        raise TokenRefused(
            f"the token '{token.name}' expired on {token.expires_at:%Y-%m-%d %H:%M} UTC: create a new one"
        )
    if not token.user.is_active:
        raise TokenRefused("the token's user is inactive")
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
