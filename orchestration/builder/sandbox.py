"""Test runs of a draft ("Try it"): run the draft orchestration on a record, step by step, and
leave nothing behind. No HTTP here: sandbox_views.py is the page.

How: a test run is not kept anywhere but in the person's session, as what it started from
(`SandboxStart`: a record, or sample values for a record made for the test, or the inputs) and
the list of what they did since (`SandboxAction`: "complete review in stage check as alice with
{...}", "resume the wait"). Every request replays it all, inside one transaction that is always
rolled back (`sandbox_replay`):

1. the draft's documents are imported as new versions and activated, so that the engine runs
   the draft and the flows it holds (the other flows: their active versions);
2. the run is launched on the record (a sample record is created first);
3. the background steps queued are run here, one attempt after another, by calling the worker's
   own function (`background_step_execute`) instead of sending a Celery task, until none is
   queued (a failing step's retries are taken at once, without their backoff);
4. each recorded action is applied through the real services (`workitem_complete` as the
   assignee, after `workitem_claim` when the step needs a claim; `step_resume` for a wait), and
   3. again;
5. what the page shows is read as plain data after each of these (`Moment`: events, variables,
   decisions, emails that would be sent, calls that would be made), and the state at the end
   (stages and steps, the open work items with their screens, the record as the run left it);
6. the transaction is rolled back: no version, run, work item, record change, outbox email or
   audit event is kept, and `transaction.on_commit` callbacks (the Celery dispatches, the
   emails' delivery, what a record save launches) never run.

Effects outside the database cannot be rolled back, so they are not made: `http` actions only
note what they would call (`flows.DRY_RUN`); a Python flow (`call`) runs as it would on a
worker, and should look at `flows.dry_run()` if it talks to other systems.

Completing "as any assignee": the item's user, or any active member of its group or queue; for
a group or queue the viewer may also stand in, being made a member for the test run only.

Locks: a replay holds, until its rollback, the row locks the import and the run take. The
import locks the rows of the orchestration and of the flows the draft holds, and their latest
versions (`select_for_update`), and activation changes the active ones. On PostgreSQL a foreign
key check takes a share lock on the row it points to, so meanwhile these wait for the replay:
a real launch of that orchestration (the run points to it and to its version), a running run
starting a step on one of those flows (the step run points to the flow's version), a real
import or activation of those definitions, and a real save of the record if a flow of the test
run updates it. Everything else (reading, other orchestrations, runs going on with other flows)
is not held. A replay is short: about 0.3 s up to the first interactive step and 0.6 s through
the three stages of tests/builder/test_sandbox.py's draft, more with many actions; two test
runs of one draft take turns. On SQLite a replay holds the database's write lock throughout.

Ids are taken from the database's sequences and given back by no rollback: a test run leaves
gaps in the ids, nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q

from .. import engine, hot
from ..definitions import FLOW_KINDS, RecordStart, Screen, ScreenFlow, Variable
from ..definitions import Orchestration as OrchestrationDoc
from ..flows import DRY_RUN
from ..models import Draft, ExecState, OutboxEmail, Run, RunEvent, StageRun, StageStatus, StepRun
from ..people import person_label, person_name
from ..registry import EMAIL_RENDERERS
from ..services import (
    ActionNotAllowed,
    DefinitionsInvalid,
    background_step_execute,
    definitions_import,
    run_launch,
    step_resume,
)
from ..services.common import record_visible_to
from ..services.definitions import known_flows
from ..validation import validate_documents

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser

# Background attempts run by one replay phase: a step that fails and retries stops at its
# max_attempts anyway; this bounds a flow that keeps queueing steps (a loop of stages).
MAX_ATTEMPTS_PER_PHASE = 200
SESSION_KEY = "builder.sandbox.{draft_id}"


class SandboxError(Exception):
    """What the test run cannot do (shown to the person as it is)."""


# --- what the session keeps ----------------------------------------------------------------


@dataclass
class SandboxStart:
    """What the test run starts from: a record, or the values of a record made for the test
    (`sample_name`, `sample`), and the orchestration's inputs (autolaunched)."""

    record_id: int | None = None
    sample_name: str = ""
    sample: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SandboxAction:
    """One thing the person did: `complete` the open item of stage/step as `user` with `data`,
    or `resume` a waiting step."""

    kind: str
    stage: str
    step: str
    user: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SandboxState:
    draft_id: int
    revision: int
    start: SandboxStart
    actions: list[SandboxAction] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SandboxState:
        return cls(
            draft_id=int(raw["draft_id"]),
            revision=int(raw["revision"]),
            start=SandboxStart(**raw["start"]),
            actions=[SandboxAction(**a) for a in raw.get("actions", [])],
        )


# --- what the page shows (plain data, read before the rollback) ------------------------------


@dataclass
class EmailView:
    to: list[str]
    subject: str
    note: str = ""  # why it would not go out after all (the renderer's reason)


@dataclass
class EventView:
    name: str  # without the "orchestration." prefix
    stage: str
    step: str
    actor: str


@dataclass
class Moment:
    """The test run after one thing happened (the start, an action)."""

    title: str
    events: list[EventView]
    variables: dict[str, Any]
    decisions: list[str]
    emails: list[EmailView]
    calls: list[str]
    status: str


@dataclass
class StepView:
    key: str
    label: str
    kind: str
    status: str
    outputs: dict[str, Any]
    error: str

    @property
    def outputs_json(self) -> str:
        return json.dumps(self.outputs, default=str, ensure_ascii=False)


@dataclass
class StageView:
    key: str
    label: str
    status: str
    outcome: str
    steps: list[StepView]


@dataclass
class Candidate:
    username: str
    label: str
    stand_in: bool = False


@dataclass
class OpenStep:
    """An interactive step waiting for its assignee: its screens, to fill in on the page."""

    stage: str
    step: str
    label: str
    assignee: str
    candidates: list[Candidate]
    screens: list[Screen]
    values: dict[str, Any]  # the fields' defaults, evaluated for this run
    claim_required: bool


@dataclass
class WaitingStep:
    stage: str
    step: str
    label: str
    wake_at: str


@dataclass
class SandboxOutcome:
    problems: list[str] = field(default_factory=list)  # the draft does not validate
    start_error: str = ""
    # The recorded action that could not be applied (its index) and why, per field or "__all__".
    failed_action: int | None = None
    action_errors: dict[str, list[str]] = field(default_factory=dict)
    status: str = ""
    error: str = ""
    record_label: str = ""
    record_values: dict[str, Any] = field(default_factory=dict)
    moments: list[Moment] = field(default_factory=list)
    stages: list[StageView] = field(default_factory=list)
    not_reached: list[str] = field(default_factory=list)
    open_steps: list[OpenStep] = field(default_factory=list)
    waiting: list[WaitingStep] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.start_error


# --- the draft's documents ---------------------------------------------------------------------


def draft_items(draft: Draft) -> list[tuple[str, dict[str, Any]]]:
    """The draft's documents as (source, document) pairs, as an import takes them."""
    docs = draft.documents or {}
    flows = docs.get("flows") or {}
    return [("orchestration", docs.get("orchestration") or {}), *((f"flow:{n}", f) for n, f in flows.items())]


@dataclass
class DraftDocs:
    """The draft validated: its problems, or its orchestration and the flows it can use."""

    problems: list[str]
    orchestration: OrchestrationDoc | None = None
    flows: dict[str, Any] = field(default_factory=dict)

    def screen_flow(self, stage: str, step: str) -> ScreenFlow | None:
        """The screen flow an interactive step runs, as the draft says."""
        if self.orchestration is None:
            return None
        try:
            found = next(s for s in self.orchestration.stage(stage).steps if s.key == step)
        except (KeyError, StopIteration):
            return None
        flow = self.flows.get(found.flow or "")
        return flow if isinstance(flow, ScreenFlow) else None


def draft_docs(draft: Draft) -> DraftDocs:
    """Validate the draft's documents with the active flows it does not hold (it may use them)."""
    items = draft_items(draft)
    own = {doc.get("api_name") for source, doc in items if source.startswith("flow:")}
    known = {k: v for k, v in known_flows().items() if k not in own}
    result = validate_documents(items, known_flows=known)
    if not result.ok:
        return DraftDocs(problems=[str(e) for e in result.errors])
    flows = {name: model for name, (_, model) in known.items()}
    orchestration = None
    for parsed in result.documents:
        if parsed.doc.kind in FLOW_KINDS:
            flows[parsed.doc.api_name] = parsed.doc
        else:
            orchestration = parsed.doc
    if orchestration is None:
        return DraftDocs(problems=["the draft has no orchestration document"])
    return DraftDocs(problems=[], orchestration=orchestration, flows=flows)


def start_inputs(doc: OrchestrationDoc) -> list[Variable]:
    """The inputs an autolaunched orchestration declares (a record-triggered one has none)."""
    return [] if isinstance(doc.start, RecordStart) else list(doc.start.inputs)


# --- the replay ------------------------------------------------------------------------------


def sandbox_replay(*, draft: Draft, state: SandboxState, viewer: AbstractUser) -> SandboxOutcome:
    """Replay the test run `state` of `draft` as `viewer` and return what it shows. Nothing it
    does is kept: it runs in a transaction that is rolled back (see the module docstring, which
    also says which locks it holds meanwhile)."""
    docs = draft_docs(draft)
    if docs.problems:
        return SandboxOutcome(problems=docs.problems)
    notes: list[str] = []
    token = DRY_RUN.set(notes)
    try:
        with transaction.atomic():
            try:
                return _Replay(draft=draft, state=state, viewer=viewer, notes=notes).go()
            finally:
                # Always: whatever happened above (an answer, an exception) is undone here.
                transaction.set_rollback(True)
    finally:
        DRY_RUN.reset(token)


def _messages(exc: Exception) -> dict[str, list[str]]:
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return dict(exc.message_dict)
        return {"__all__": list(exc.messages)}
    return {"__all__": [str(exc)]}


class _Replay:
    def __init__(self, *, draft: Draft, state: SandboxState, viewer: AbstractUser, notes: list[str]):
        self.draft = draft
        self.state = state
        self.viewer = viewer
        self.notes = notes
        self.out = SandboxOutcome()
        self.last_event = 0
        self.notes_seen = 0
        self.emails_seen: set[int] = set()

    def go(self) -> SandboxOutcome:
        out = self.out
        try:
            # A savepoint of its own: a refused import leaves the transaction usable.
            with transaction.atomic():
                definitions_import(items=draft_items(self.draft), actor=None, activate=True)
        except DefinitionsInvalid as exc:
            out.problems = [str(e) for e in exc.errors]
            return out
        api_name = (self.draft.documents.get("orchestration") or {}).get("api_name", "")
        version = hot.active_version(api_name)
        assert version is not None  # just imported and activated
        self.doc = engine.orchestration_doc(version)
        try:
            with transaction.atomic():
                record = self.record()
                run = run_launch(
                    orchestration=api_name,
                    record=record,
                    inputs=self.state.start.inputs,
                    _version=version,
                    _triggered_by_id=self.viewer.pk,
                )
        except (SandboxError, ValidationError, PermissionDenied) as exc:  # LaunchError is one
            out.start_error = "; ".join(
                m if field == "__all__" else f"{field}: {m}"
                for field, ms in _messages(exc).items()
                for m in ms
            )
            return out
        self.run = run
        self.record_obj = record
        self.settle()
        self.moment("Started" + (f" on {record}" if record is not None else ""))
        for i, action in enumerate(self.state.actions):
            try:
                with transaction.atomic():
                    title = self.apply(action)
            except (SandboxError, ValidationError, PermissionDenied, ActionNotAllowed) as exc:
                # The run went another way this time, or the values do not do: this action and
                # those after it are not applied (the page drops them).
                out.failed_action = i
                out.action_errors = _messages(exc)
                break
            self.settle()
            self.moment(title)
        self.describe()
        return out

    # -- the start ----------------------------------------------------------------------------
    def record(self) -> Any:
        from records.models import Record, RecordType
        from records.services import record_create

        rtype = self.doc.start.record_type
        start = self.state.start
        if not rtype:
            return None
        if start.record_id is not None:
            record = Record.objects.filter(pk=start.record_id, record_type__api_name=rtype).first()
            if record is None:
                raise SandboxError(f"There is no {rtype} record {start.record_id} (any more).")
            if not record_visible_to(user=self.viewer, record=record):
                raise SandboxError("You may not see that record.")
            return record
        if start.sample is not None:
            record_type = RecordType.objects.filter(api_name=rtype).first()
            if record_type is None:
                raise SandboxError(f"There is no record type {rtype!r}.")
            # Made for the test run and rolled back with it; what its creation would launch is
            # on commit, so never.
            return record_create(
                record_type=record_type,
                name=start.sample_name or "Test record",
                values=start.sample,
                owner=self.viewer,
                actor=None,
            )
        raise SandboxError(f"Pick a {rtype} record, or fill in a sample one.")

    # -- running what a worker would run --------------------------------------------------------
    def settle(self) -> None:
        """Run the queued background steps, as the workers would, until none is queued."""
        for _ in range(MAX_ATTEMPTS_PER_PHASE):
            queued = (
                StepRun.objects.filter(
                    run_id=self.run.pk, status=StageStatus.IN_PROGRESS, exec_state=ExecState.QUEUED
                )
                .order_by("id")
                .values_list("pk", "attempts")
                .first()
            )
            if queued is None:
                # What a record change re-checks after its commit: the run's conditions again.
                with transaction.atomic():
                    engine.advance(self.run.pk)
                if not StepRun.objects.filter(run_id=self.run.pk, exec_state=ExecState.QUEUED).exists():
                    return
                continue
            background_step_execute(step_run_id=queued[0], attempt=queued[1])
        self.notes.append(f"stopped after {MAX_ATTEMPTS_PER_PHASE} background attempts in a row")

    def apply(self, action: SandboxAction) -> str:
        from workitems.models import WorkItem, WorkItemStatus
        from workitems.services import (
            WorkItemClosed,
            claim_needed,
            may_act,
            workitem_claim,
            workitem_complete,
        )

        what = f"{action.stage}/{action.step}"
        if action.kind == "resume":
            sr = StepRun.objects.filter(
                run_id=self.run.pk,
                stage_run__key=action.stage,
                key=action.step,
                kind="wait",
                status=StageStatus.IN_PROGRESS,
            ).first()
            if sr is None:
                raise SandboxError(f"The step {what} is not waiting now.")
            step_resume(step_run_id=sr.pk, actor=None, reason="test run")
            return f"Resumed {self.step_label(action.stage, action.step)}"
        if action.kind != "complete":
            raise SandboxError(f"Unknown action {action.kind!r}.")
        item = (
            WorkItem.objects.select_related("step_run", "run__version", "assignee_group", "assignee_queue")
            .filter(
                run_id=self.run.pk,
                step_run__stage_run__key=action.stage,
                step_run__key=action.step,
                status=WorkItemStatus.ASSIGNED,
            )
            .first()
        )
        if item is None:
            raise SandboxError(f"The step {what} has no open work item now.")
        user = get_user_model()._default_manager.filter(username=action.user, is_active=True).first()
        if user is None:
            raise SandboxError(f"There is no active user {action.user!r}.")
        if not may_act(item, user):
            if user.pk != self.viewer.pk:
                raise SandboxError(f"{person_name(user)} may not act on {what}.")
            if item.assignee_group is not None:
                # A stand-in: a member for this test run only (rolled back with the rest).
                user.groups.add(item.assignee_group)
            elif item.assignee_queue is not None:
                item.assignee_queue.users.add(user)
            else:
                raise SandboxError(f"{what} is assigned to {item.assignee_label}, not {person_name(user)}.")
        if claim_needed(item, user):
            item = workitem_claim(item=item, user=user)
        try:
            workitem_complete(item=item, user=user, data=action.data)
        except WorkItemClosed as exc:
            raise SandboxError(str(exc)) from exc
        return f"{person_name(user)} completed {self.step_label(action.stage, action.step)}"

    # -- reading what the page shows ------------------------------------------------------------
    def step_label(self, stage: str, step: str) -> str:
        try:
            found = next(s for s in self.doc.stage(stage).steps if s.key == step)
        except (KeyError, StopIteration):
            return step
        return found.label or found.key

    def moment(self, title: str) -> None:
        run = Run.objects.get(pk=self.run.pk)
        events = list(
            RunEvent.objects.filter(run_id=run.pk, pk__gt=self.last_event)
            .select_related("actor")
            .order_by("id")
        )
        if events:
            self.last_event = events[-1].pk
        decisions = [
            f"{e.stage}: {e.payload.get('outcome', '')} → {e.payload.get('goto', '')}"
            for e in events
            if e.name == "orchestration.stage.decision"
        ]
        calls = self.notes[self.notes_seen :]
        self.notes_seen = len(self.notes)
        self.out.moments.append(
            Moment(
                title=title,
                events=[
                    EventView(
                        name=e.name.removeprefix("orchestration."),
                        stage=e.stage,
                        step=e.step,
                        actor=person_name(e.actor, default="system"),
                    )
                    for e in events
                ],
                variables=dict(run.variables),
                decisions=decisions,
                emails=self.new_emails(),
                calls=calls,
                status=run.get_status_display(),
            )
        )

    def new_emails(self) -> list[EmailView]:
        """The outbox rows written since the last look, as they would go out now (after the
        commit, which is when a real delivery renders them)."""
        from workitems.models import WorkItem

        items = WorkItem.objects.filter(run_id=self.run.pk).values("pk")
        rows = list(
            OutboxEmail.objects.filter(Q(run_id=self.run.pk) | Q(work_item_id__in=items))
            .exclude(pk__in=self.emails_seen)
            .order_by("id")
        )
        out = []
        for row in rows:
            self.emails_seen.add(row.pk)
            renderer = EMAIL_RENDERERS.get(row.kind)
            note = renderer(row) if renderer is not None and not row.subject else ""
            out.append(EmailView(to=list(row.to), subject=row.subject, note=note))
        return out

    def describe(self) -> None:
        from workitems.models import WorkItem, WorkItemStatus
        from workitems.services import screen_flow_for, step_of, workitem_screen_defaults

        out, doc = self.out, self.doc
        run = Run.objects.get(pk=self.run.pk)
        out.status, out.error, out.variables = run.get_status_display(), run.error, dict(run.variables)
        if self.record_obj is not None:
            self.record_obj.refresh_from_db()
            out.record_label = str(self.record_obj)
            out.record_values = dict(getattr(self.record_obj, "data", {}) or {})
        steps_by_stage: dict[int, list[StepRun]] = {}
        for sr in StepRun.objects.filter(run_id=run.pk).order_by("id"):
            steps_by_stage.setdefault(sr.stage_run_id, []).append(sr)
        entered = set()
        for stage_run in StageRun.objects.filter(run_id=run.pk).order_by("id"):
            entered.add(stage_run.key)
            try:
                label = doc.stage(stage_run.key).label or stage_run.key
            except KeyError:
                label = stage_run.key
            out.stages.append(
                StageView(
                    key=stage_run.key,
                    label=label,
                    status=stage_run.get_status_display(),
                    outcome=stage_run.outcome,
                    steps=[
                        StepView(
                            key=sr.key,
                            label=self.step_label(stage_run.key, sr.key),
                            kind=sr.kind,
                            status=sr.get_status_display(),
                            outputs=dict(sr.outputs),
                            error=sr.error,
                        )
                        for sr in steps_by_stage.get(stage_run.pk, [])
                    ],
                )
            )
        out.not_reached = [s.label or s.key for s in doc.stages if s.key not in entered]
        items = (
            WorkItem.objects.filter(run_id=run.pk, status=WorkItemStatus.ASSIGNED)
            .select_related(
                "run__version",
                "step_run__stage_run",
                "step_run__flow_version",
                "assignee_user",
                "assignee_group",
                "assignee_queue",
            )
            .order_by("id")
        )
        for item in items:
            flow = screen_flow_for(item)
            values: dict[str, Any] = {}
            for i in range(len(flow.screens)):
                values.update(workitem_screen_defaults(item=item, screen=i))
            out.open_steps.append(
                OpenStep(
                    stage=item.step_run.stage_run.key,
                    step=item.step_run.key,
                    label=item.label,
                    assignee=item.assignee_label,
                    candidates=self.candidates(item),
                    screens=list(flow.screens),
                    values=values,
                    claim_required=step_of(item, run).claim_required,
                )
            )
        for sr in StepRun.objects.filter(
            run_id=run.pk, kind="wait", status=StageStatus.IN_PROGRESS
        ).select_related("stage_run"):
            out.waiting.append(
                WaitingStep(
                    stage=sr.stage_run.key,
                    step=sr.key,
                    label=self.step_label(sr.stage_run.key, sr.key),
                    wake_at=sr.wake_at.isoformat() if sr.wake_at else "",
                )
            )

    def candidates(self, item: Any) -> list[Candidate]:
        """Who the item may be completed as: its user, or the active members of its group or
        queue (the first 50), and the viewer as a stand-in for a group or queue."""
        User = get_user_model()
        if item.assignee_user_id is not None:
            return [Candidate(item.assignee_user.get_username(), person_label(item.assignee_user))]
        if item.assignee_group_id is not None:
            members = User._default_manager.filter(groups=item.assignee_group_id, is_active=True)
        else:
            members = User._default_manager.filter(
                Q(work_queues=item.assignee_queue_id) | Q(groups__work_queues=item.assignee_queue_id),
                is_active=True,
            )
        found = [
            Candidate(u.get_username(), person_label(u))
            for u in members.distinct().order_by(User.USERNAME_FIELD)[:50]
        ]
        if self.viewer.get_username() not in {c.username for c in found}:
            label = f"{person_label(self.viewer)}, standing in for {item.assignee_label}"
            found.append(Candidate(self.viewer.get_username(), label, stand_in=True))
        return found
