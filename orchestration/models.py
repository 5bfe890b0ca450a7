"""Definitions (orchestrations, flows, their versions) and runtime state (runs, stage and step
runs, events). Thin: fields, statuses, constraints and indexes. Writes go through services/ and
the engine; statuses change only as transitions.py allows."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone


class FlowKind(models.TextChoices):
    SCREEN = "screen_flow", "Screen flow"
    AUTOLAUNCHED = "autolaunched_flow", "Autolaunched flow"
    EVALUATION = "evaluation_flow", "Evaluation flow"
    CALENDAR = "business_calendar", "Business calendar"  # stored and versioned like a flow


class Definition(models.Model):
    """Common shape of a versioned definition (an orchestration or a flow)."""

    api_name = models.CharField(max_length=80, unique=True)
    label = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["api_name"]

    def __str__(self) -> str:
        return self.label or self.api_name


class Orchestration(Definition):
    class Meta(Definition.Meta):
        permissions = [
            ("import_definitions", "Can import and activate definitions"),
            ("launch_orchestration", "Can launch orchestrations"),
        ]


class Flow(Definition):
    kind = models.CharField(max_length=20, choices=FlowKind.choices)


class VersionBase(models.Model):
    number = models.PositiveIntegerField()
    document = models.JSONField()
    checksum = models.CharField(max_length=64)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=300, blank=True, help_text="File it was imported from.")

    class Meta:
        abstract = True
        ordering = ["-number"]

    @property
    def source_name(self) -> str:
        """The file's name without its folders: a page shows where the document came from, not
        the server's directory layout (the admin keeps the whole path)."""
        return self.source.replace("\\", "/").rsplit("/", 1)[-1]

    @staticmethod
    def checksum_of(document: dict[str, Any]) -> str:
        import json

        raw = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(raw.encode()).hexdigest()


class OrchestrationVersion(VersionBase):
    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE, related_name="versions")
    # Denormalised from the document so launching by record type needs no JSON scan.
    start_type = models.CharField(max_length=20)
    record_type = models.CharField(max_length=80, blank=True, db_index=True)

    class Meta(VersionBase.Meta):
        constraints = [
            models.UniqueConstraint(fields=["orchestration", "number"], name="orch_version_unique"),
            models.UniqueConstraint(
                fields=["orchestration"], condition=Q(is_active=True), name="orch_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.orchestration.api_name} v{self.number}"


class FlowVersion(VersionBase):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")

    class Meta(VersionBase.Meta):
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flow_version_unique"),
            models.UniqueConstraint(fields=["flow"], condition=Q(is_active=True), name="flow_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.flow.api_name} v{self.number}"


class RunStatus(models.TextChoices):
    NOT_STARTED = "not_started", "Not started"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    ERROR = "error", "Error"
    CANCELED = "canceled", "Canceled"
    SUSPENDED = "suspended", "Suspended"


class StageStatus(models.TextChoices):
    NOT_STARTED = "not_started", "Not started"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    ERROR = "error", "Error"
    CANCELED = "canceled", "Canceled"
    DISCONTINUED = "discontinued", "Discontinued"


StepStatus = StageStatus  # a step run has the statuses of a stage run


class Run(models.Model):
    orchestration = models.ForeignKey(Orchestration, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(OrchestrationVersion, on_delete=models.PROTECT, related_name="runs")
    record_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    record_id = models.PositiveBigIntegerField(null=True, blank=True)
    record = GenericForeignKey("record_type", "record_id")
    record_label = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.NOT_STARTED)
    variables = models.JSONField(default=dict)
    inputs = models.JSONField(default=dict)
    # steps.<key>.<output>, mirrored here so expressions need no query per step.
    step_outputs = models.JSONField(default=dict)
    current_stage = models.CharField(max_length=80, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    # Set by the engine when the run waits on a condition that only a re-check can see change.
    recheck = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("cancel_run", "Can cancel runs"),
            ("suspend_run", "Can suspend and resume runs"),
            ("retry_step", "Can retry failed steps and re-check runs"),
            ("skip_step", "Can skip failed steps"),
            # Fixing a run by hand (a wrong value that made a step fail) is a change of its
            # data, not of its course: its own permission, given on purpose.
            ("change_run_variables", "Can change the variables of a run"),
        ]
        indexes = [
            models.Index(fields=["record_type", "record_id"], name="run_record"),
            models.Index(fields=["status", "-id"], name="run_status_id"),
            models.Index(fields=["orchestration", "-id"], name="run_orch_id"),
            models.Index(fields=["id"], condition=Q(recheck=True), name="run_recheck"),
            # The runs page filters on these and orders by -id (keyset pages): see its selectors.
            models.Index(fields=["version", "-id"], name="run_version_id"),
            # The counts by status of one orchestration's runs.
            models.Index(fields=["orchestration", "status", "-id"], name="run_orch_status_id"),
            models.Index(fields=["current_stage", "-id"], name="run_stage_id"),
            models.Index(fields=["started_at"], name="run_started_at"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.orchestration_id}"

    @property
    def is_open(self) -> bool:
        return self.status in (RunStatus.IN_PROGRESS, RunStatus.SUSPENDED, RunStatus.ERROR)


class StageRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="stage_runs")
    key = models.CharField(max_length=80)
    index = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=StageStatus.choices, default=StageStatus.IN_PROGRESS)
    outcome = models.CharField(max_length=200, blank=True, help_text="The decision taken.")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Stages run one at a time: never two in progress in one run.
            models.UniqueConstraint(
                fields=["run"], condition=Q(status="in_progress"), name="one_stage_in_progress"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class ExecState(models.TextChoices):
    """Where a background step's task stands (independent of the step status)."""

    IDLE = "idle", "Idle"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class StepRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    stage_run = models.ForeignKey(StageRun, on_delete=models.CASCADE, related_name="step_runs")
    key = models.CharField(max_length=80)
    kind = models.CharField(max_length=20)
    status = models.CharField(max_length=20, choices=StageStatus.choices, default=StageStatus.NOT_STARTED)
    flow_version = models.ForeignKey(
        FlowVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    inputs = models.JSONField(default=dict)
    outputs = models.JSONField(default=dict)
    attempts = models.PositiveSmallIntegerField(default=0)
    exec_state = models.CharField(max_length=10, choices=ExecState.choices, default=ExecState.IDLE)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The queued attempt's message could not be published (the broker was away): the next
    # sweep sends it, without waiting for the grace that covers messages lost after publishing.
    dispatch_failed = models.BooleanField(default=False)
    # A wait step: when it resumes (`for`, `until`) or times out (a condition's `timeout`),
    # stored when it starts so that the sweep finds it after any restart (orchestration/waits.py).
    wake_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["stage_run", "key"], name="step_once_per_stage_run"),
        ]
        indexes = [
            models.Index(
                fields=["exec_state", "claimed_at"],
                condition=Q(exec_state__in=["queued", "running"]),
                name="step_exec_pending",
            ),
            # Steps in error are few and looked for often (the failed-steps metric, admins).
            models.Index(fields=["id"], condition=Q(status="error"), name="step_error"),
            # The waits the sweep wakes: few at any time, looked for at every sweep.
            models.Index(
                fields=["wake_at"], condition=Q(status="in_progress", kind="wait"), name="step_waiting"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class RunEvent(models.Model):
    """Append-only log of every transition, with its actor."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=80)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stage = models.CharField(max_length=80, blank=True)
    step = models.CharField(max_length=80, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A bearer token for the JSON API; only its SHA-256 is stored. `prefix` (the first
    characters of the raw token, not enough to guess the rest) names it in lists and in
    `manage.py api_token revoke`. A revoked or expired token stays as a row, so lists and the
    admin still say what it was and when it stopped working."""

    PREFIX_LENGTH = 11  # "fo_" and 8 random characters: 48 of its 256 random bits

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    def is_expired(self, now: Any = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def state(self) -> str:
        """active, expired or revoked: what a list shows."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired() else "active"

    @staticmethod
    def digest_of(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @staticmethod
    def new_raw() -> str:
        return "fo_" + secrets.token_urlsafe(32)


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    # Not sent because what it announced no longer holds (the work item was closed or
    # reassigned before delivery): a newer email, if any, has its own row.
    CANCELED = "canceled", "Canceled"


class OutboxEmail(models.Model):
    """One email owed to one recipient list: written in the transaction that decides it must
    be sent, delivered after commit (orchestration/outbox.py).

    `idempotency_key` is unique: the same logical email (a step run's action, one recipient of
    one assignment) is one row however often its writer is retried. `message_id` is derived from
    it, so the rare second delivery (a crash between the SMTP send and marking the row sent)
    carries the same Message-ID and a receiving system can drop it."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    message_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)  # "flow" (send_email action), "assignment"
    status = models.CharField(max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    # What caused it. Work items belong to the workitems app, which this app does not import:
    # an id, not a foreign key.
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step_run = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    work_item_id = models.PositiveBigIntegerField(null=True, blank=True)
    # For assignment emails: who the item was assigned to when the row was written ("user:3"),
    # and the recipient; the message is rendered at the first delivery and kept.
    assignee = models.CharField(max_length=40, blank=True)
    recipient_id = models.PositiveBigIntegerField(null=True, blank=True)
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Set by the delivery that holds the row (a compare-and-swap), cleared when it is done; a
    # claim older than ORCHESTRATION_EMAIL_CLAIM_SECONDS belongs to a worker that died.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's scan: pending rows by due time; sent rows are most rows and not in it.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="outbox_pending_due"
            ),
            models.Index(fields=["work_item_id"], name="outbox_work_item"),
            models.Index(fields=["run"], name="outbox_run"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} email {self.idempotency_key} ({self.status})"


# --- Analytics rollups (orchestration/rollup.py) ---------------------------------------------


class AnalyticsRollup(models.Model):
    """The Analytics page's figures of one partition (the runs of one orchestration started on one
    day, in the server's zone), per version: a `run` row (runs started, completed per day), a
    `stage` row per stage key and a `step` row per step key. Rebuilt whole by rollup.py when
    anything in the partition changed; the page reads these rows only.

    Durations are over the stage or step runs that ended completed (`count`, `histogram`, and
    `durations` while they are few); `ended_seconds` is the time every ended one spent; the open
    ones (started, not ended) are `open_count`, and `open_started` the sum of their start times in
    epoch seconds, so the time they have spent until any instant is count x now - open_started.

    A `whole_month` row sums the day rows of its month (`day` is the month's first): a page over
    a long range reads those for the months it covers whole."""

    RUN, STAGE, STEP = "run", "stage", "step"

    day = models.DateField()
    whole_month = models.BooleanField(default=False)
    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(OrchestrationVersion, on_delete=models.CASCADE, related_name="+")
    level = models.CharField(max_length=8)
    stage = models.CharField(max_length=80, blank=True)
    step = models.CharField(max_length=80, blank=True)
    kind = models.CharField(max_length=20, blank=True)
    started = models.PositiveIntegerField(default=0)
    completed_on = models.JSONField(default=dict, blank=True)  # run: {"2026-11-10": n}
    count = models.PositiveIntegerField(default=0)
    ended_seconds = models.FloatField(default=0.0)
    histogram = models.JSONField(default=dict, blank=True)  # {bucket: n}, rollup.bucket()
    durations = models.JSONField(null=True, blank=True)  # the completed durations, while few
    open_count = models.PositiveIntegerField(default=0)
    open_started = models.FloatField(default=0.0)

    class Meta:
        ordering = ["day", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "whole_month", "orchestration", "version", "level", "stage", "step", "kind"],
                name="rollup_once",
            ),
        ]
        indexes = [models.Index(fields=["orchestration", "day"], name="rollup_orch_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.level} {self.stage}/{self.step}"


class RollupDirty(models.Model):
    """A partition (day, orchestration) whose rollup rows are out of date: found from the events
    since the last refresh, or marked where no event is left (a deleted run). A `whole_month`
    one: the month's sums, marked when one of its days was rebuilt."""

    day = models.DateField()
    whole_month = models.BooleanField(default=False)
    orchestration = models.ForeignKey(Orchestration, on_delete=models.CASCADE, related_name="+")
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["day", "whole_month", "orchestration"], name="rollup_dirty_once")
        ]

    def __str__(self) -> str:
        return f"{self.day} orchestration {self.orchestration_id}"


class RollupState(models.Model):
    """One row: where the refresh's event scan stands. `checkpoints`: [[ISO time, highest event
    id then], ...], oldest first; a scan starts at the newest checkpoint older than the margin
    (ORCHESTRATION_ROLLUP_MARGIN_SECONDS), so an event committed late is still seen."""

    checkpoints = models.JSONField(default=list, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rollup state (refreshed {self.refreshed_at})"


# --- Building definitions in the browser (orchestration/builder/) ----------------------------


class Draft(models.Model):
    """An orchestration being built in the browser, with the flows it owns: mutable documents
    (`documents`: {"orchestration": {...}, "flows": {api_name: {...}}}, raw, as the YAML would
    hold them), every change a DraftRevision. `revision` is the number of the revision the
    documents are at (undo moves it back, redo forward). Activating stores them as versions."""

    api_name = models.CharField(max_length=80)  # the orchestration's, as last saved
    documents = models.JSONField(default=dict)
    revision = models.PositiveIntegerField(default=0)
    base_version = models.ForeignKey(
        OrchestrationVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_version = models.ForeignKey(
        OrchestrationVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"draft {self.pk} of {self.api_name}"


class DraftRevision(models.Model):
    """One state of a draft's documents, after one change (`summary` says which)."""

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    documents = models.JSONField()
    summary = models.CharField(max_length=200)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["draft", "number"]
        constraints = [models.UniqueConstraint(fields=["draft", "number"], name="draft_revision_once")]

    def __str__(self) -> str:
        return f"draft {self.draft_id} r{self.number}: {self.summary}"


class DefinitionEvent(models.Model):
    """The audit log of definitions (no run to hang it on): a version activated, with what it
    changes against the version active before (`payload`: from, to, diff), a draft activated."""

    orchestration = models.ForeignKey(
        Orchestration, null=True, blank=True, on_delete=models.CASCADE, related_name="definition_events"
    )
    flow = models.ForeignKey(Flow, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    version_number = models.PositiveIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["orchestration", "-id"], name="defevent_orch_id")]

    def __str__(self) -> str:
        return self.name
