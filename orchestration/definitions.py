"""The definition format: pydantic models for orchestrations and flows.

A definition document is a mapping with a `kind`. Documents are validated whole: structure by
pydantic, then references and expressions by `validate_documents`, which returns every error
with the path inside the document (`stages[1].steps[0].assignee`) so that an admin can fix all
of them in one go. The published JSON Schema (`manage.py orchestration_schema`) is generated
from these models.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_NAME = r"^[a-z][a-z0-9_]{0,79}$"
END = "end"


class Strict(BaseModel):
    # Not-finite floats ("1e400" is infinity once a string is coerced) cannot be stored in
    # PostgreSQL's jsonb, and no bound or timeout means anything with them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataType(StrEnum):
    text = "text"
    long_text = "long_text"
    number = "number"
    decimal = "decimal"
    date = "date"
    datetime = "datetime"
    boolean = "boolean"
    choice = "choice"
    multi_choice = "multi_choice"
    email = "email"
    user = "user"
    json = "json"


ApiName = Annotated[str, Field(pattern=API_NAME, description="lower_snake_case identifier")]
Expression = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        description="A Jinja2 expression over record, vars, steps, inputs and run.",
    ),
]


class Variable(Strict):
    name: ApiName
    type: DataType = DataType.text
    default: Expression | None = Field(None, description="Expression giving the initial value.")
    required: bool = False
    description: str = ""


# --- Flows ------------------------------------------------------------------------------------


class ScreenField(Strict):
    name: ApiName
    type: DataType = DataType.text
    label: str = ""
    help: str = ""
    required: bool = False
    default: Expression | None = None
    choices: list[str] = Field(default_factory=list)
    min_length: int | None = None
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None

    @model_validator(mode="after")
    def _choices(self) -> ScreenField:
        if self.type in (DataType.choice, DataType.multi_choice) and not self.choices:
            raise ValueError(f"field '{self.name}' of type {self.type} needs a list of choices")
        if self.type == DataType.json:
            raise ValueError("screen fields cannot be of type json")
        return self


class Screen(Strict):
    key: ApiName
    label: str = ""
    help: str = ""
    fields: list[ScreenField] = Field(min_length=1)


class UpdateRecordAction(Strict):
    type: Literal["update_record"]
    values: dict[str, Expression] = Field(min_length=1)


class CreateRecordAction(Strict):
    type: Literal["create_record"]
    record_type: ApiName
    name: Expression
    values: dict[str, Expression] = Field(default_factory=dict)
    owner: Expression | None = None
    output: ApiName | None = Field(None, description="Output that receives the new record's id.")


class SendEmailAction(Strict):
    type: Literal["send_email"]
    to: Expression = Field(description="Expression giving an address or a list of addresses.")
    subject: str = Field(description="Jinja2 template.")
    body: str = Field(description="Jinja2 template.")


class HttpAction(Strict):
    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Expression
    json_body: dict[str, Expression] | None = Field(None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(10, gt=0, le=120)
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])
    output: ApiName | None = Field(None, description="Output that receives the JSON response.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class SetOutputsAction(Strict):
    type: Literal["set_outputs"]
    values: dict[str, Expression] = Field(min_length=1)


class CallAction(Strict):
    type: Literal["call"]
    name: str = Field(description="A Python flow registered with @register_flow(name).")


Action = Annotated[
    UpdateRecordAction | CreateRecordAction | SendEmailAction | HttpAction | SetOutputsAction | CallAction,
    Field(discriminator="type"),
]


class FlowOutput(Strict):
    name: ApiName
    type: DataType = DataType.text


class FlowBase(Strict):
    api_name: ApiName
    label: str = Field("", max_length=200)  # stored in a 200-character column
    description: str = ""
    inputs: list[Variable] = Field(default_factory=list)


class WorkingHours(Strict):
    start: str = Field("09:00", description="HH:MM, when work starts each working day.")
    end: str = Field("17:00", description="HH:MM (24:00 for midnight), when it stops.")

    @model_validator(mode="after")
    def _times(self) -> WorkingHours:
        from .calendars import parse_clock

        start = parse_clock(self.start)
        if self.end != "24:00" and parse_clock(self.end) <= start:
            raise ValueError(f"working hours end ({self.end}) must be after they start ({self.start})")
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")  # the default working days


class BusinessCalendar(Strict):
    """When people work: "2 business days" is counted on it (steps' SLAs and their rules)."""

    kind: Literal["business_calendar"]
    api_name: ApiName
    label: str = Field("", max_length=200)
    description: str = ""
    time_zone: str = Field("UTC", description="IANA name, e.g. Europe/Berlin.")
    working_days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    hours: WorkingHours = Field(default_factory=lambda: WorkingHours())
    holidays: list[dt.date] = Field(default_factory=list, description="Days off, YYYY-MM-DD.")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from .calendars import check_time_zone

        return check_time_zone(v)

    @field_validator("working_days")
    @classmethod
    def _unique_days(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a working day is listed twice")
        return v


class ScreenFlow(FlowBase):
    kind: Literal["screen_flow"]
    screens: list[Screen] = Field(min_length=1)

    def fields(self) -> list[ScreenField]:
        return [f for s in self.screens for f in s.fields]

    def output_names(self) -> list[str]:
        return [f.name for f in self.fields()]


class AutolaunchedFlow(FlowBase):
    kind: Literal["autolaunched_flow"]
    outputs: list[FlowOutput] = Field(default_factory=list)
    actions: list[Action] = Field(min_length=1)

    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]


class EvaluationFlow(FlowBase):
    """An autolaunched flow whose boolean output `is_condition_met` decides."""

    kind: Literal["evaluation_flow"]
    actions: list[Action] = Field(min_length=1)

    def output_names(self) -> list[str]:
        return ["is_condition_met"]


# --- Orchestrations ---------------------------------------------------------------------------


class RecordStart(Strict):
    type: Literal["record"]
    record_type: ApiName
    on: Literal["create", "update", "create_or_update"] = "create_or_update"
    condition: Expression | None = None
    run: Literal["every_time", "changed_to_meet"] = "every_time"


class AutolaunchedStart(Strict):
    type: Literal["autolaunched"]
    record_type: ApiName | None = Field(
        None, description="When set, the orchestration is launched for a record of this type."
    )
    inputs: list[Variable] = Field(default_factory=list)


Start = Annotated[RecordStart | AutolaunchedStart, Field(discriminator="type")]


class Assignee(Strict):
    """Exactly one of user (username), group (name), queue (api name) or expression."""

    user: str | None = None
    group: str | None = None
    queue: str | None = None
    expression: Expression | None = Field(
        None, description="Evaluates to a username, user id, 'group:NAME' or 'queue:NAME'."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Assignee:
        given = [k for k in ("user", "group", "queue", "expression") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of user, group, queue or expression")
        return self


class Gate(Strict):
    """When a step starts, a step completes or a stage exits."""

    after: list[ApiName] = Field(default_factory=list)
    condition: Expression | None = None
    evaluation_flow: ApiName | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> Gate:
        given = [k for k in ("after", "condition", "evaluation_flow") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError("give at most one of after, condition or evaluation_flow")
        return self


class Email(Strict):
    enabled: bool = True
    subject: str | None = Field(None, description="Jinja2 template over record, step, assignee.")
    body: str | None = None


# What the flow of an inline background step (`run: inline`) may do: compute, nothing else. It
# runs under the run lock inside the transition; an effect (a record save, an email, a call out)
# belongs on a worker. Validation refuses other actions; the engine runs such a flow on a worker.
INLINE_ACTIONS = frozenset({"set_outputs"})


DurationText = Annotated[str, Field(min_length=1, max_length=40, description="e.g. 4h, 2d, 3 business days")]


class RuleEmail(Strict):
    """Who to email and what: `to` is `assignee` (the user, or every member of the group or
    queue), `managers` (the assignee's manager; a group's managers; the managers of a queue's
    groups), `user:NAME`, `group:NAME`, or an expression giving a username or email address."""

    to: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=300, description="Jinja2 over item, record, step, rule.")
    body: str = Field("", max_length=10_000)


class RuleReassign(Strict):
    """Move the item: to a user, group or queue, or to the assignee's `manager`."""

    user: str | None = None
    group: str | None = None
    queue: str | None = None
    manager: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> RuleReassign:
        given = [k for k in ("user", "group", "queue") if getattr(self, k)] + (
            ["manager"] if self.manager else []
        )
        if len(given) != 1:
            raise ValueError("reassign to exactly one of user, group, queue or manager: true")
        return self


class Rule(Strict):
    """A reminder or escalation: at `at` (relative to the item's due time: `-4h` before, `due`,
    `+1 business day` after), do `email`, `reassign`, `priority` — each optional, at least one —
    and record an event. `repeat_every` fires it again while the item stays open, `times` in all.
    An item completed, or reassigned by someone, before a rule's time cancels it."""

    key: ApiName
    at: str = Field(min_length=1, max_length=40)
    repeat_every: DurationText | None = None
    times: int = Field(1, ge=1, le=100)
    email: RuleEmail | None = None
    reassign: RuleReassign | None = None
    priority: Literal["low", "normal", "high", "urgent", "raise"] | None = Field(
        None, description="Set the item's priority, or raise it one level."
    )
    note: str = Field("", max_length=500, description="Said in the event and the item's history.")

    @model_validator(mode="after")
    def _rule(self) -> Rule:
        from .calendars import DurationError, parse_duration

        try:
            parse_duration(self.at, signed=True)
            if self.repeat_every:
                parse_duration(self.repeat_every)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        if self.times > 1 and not self.repeat_every:
            raise ValueError("times > 1 needs repeat_every")
        if not (self.email or self.reassign or self.priority or self.note):
            raise ValueError(f"rule '{self.key}' does nothing: give email, reassign, priority or a note")
        return self


class Sla(Strict):
    """When an interactive step's item is due, how urgent it is, and what happens around then."""

    due: DurationText | None = Field(None, description="From the item's creation: 4h, 2d, 3 business days.")
    due_at: Expression | None = Field(None, description="An expression giving a date or datetime.")
    calendar: ApiName | None = Field(None, description="Default: the orchestration's calendar, else 24/7.")
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    priority_expression: Expression | None = Field(None, description="Gives low, normal, high or urgent.")
    at_risk: DurationText | None = Field(
        None, description="How long before due an open item is at risk (default: the last quarter)."
    )
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sla(self) -> Sla:
        from .calendars import DurationError, parse_duration

        if self.due and self.due_at:
            raise ValueError("give due or due_at, not both")
        if self.priority and self.priority_expression:
            raise ValueError("give priority or priority_expression, not both")
        try:
            for text in (self.due, self.at_risk):
                if text:
                    parse_duration(text)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        keys = [r.key for r in self.rules]
        if len(set(keys)) != len(keys):
            raise ValueError("two rules have the same key")
        if self.rules and not (self.due or self.due_at):
            raise ValueError("rules are timed from the due time: give due or due_at")
        return self


class Wait(Strict):
    """What a wait step waits for: exactly one of `for` (a duration: `2h`, `1 business hour`),
    `until` (an expression giving a date, which is 00:00 of that day in the calendar's zone, or
    a datetime) or `condition` (an expression over the record and the run, re-checked when the
    record is saved). A condition wait may give up after `timeout`: the step then fails."""

    for_: DurationText | None = Field(None, alias="for", description="e.g. 2h, 3d, 1 business hour")
    until: Expression | None = Field(None, description="An expression giving a date or datetime.")
    condition: Expression | None = Field(None, description="Resume when this holds.")
    calendar: ApiName | None = Field(
        None, description="Business durations and dates: default the orchestration's calendar, else 24/7."
    )
    timeout: DurationText | None = Field(None, description="Condition waits: fail the step after this.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _wait(self) -> Wait:
        from .calendars import DurationError, parse_duration

        given = [
            k for k, v in (("for", self.for_), ("until", self.until), ("condition", self.condition)) if v
        ]
        if len(given) != 1:
            raise ValueError("a wait gives exactly one of for, until or condition")
        if self.timeout and not self.condition:
            raise ValueError("timeout is for condition waits (a duration or a date ends by itself)")
        try:
            for text in (self.for_, self.timeout):
                if text:
                    parse_duration(text)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        return self


class Step(Strict):
    key: ApiName
    label: str = ""
    kind: Literal["interactive", "background", "wait"]
    flow: ApiName | None = Field(None, description="Interactive and background steps: the flow they run.")
    wait: Wait | None = Field(None, description="Wait steps: what they wait for.")
    start: Gate = Field(default_factory=lambda: Gate())
    completion: Gate = Field(
        default_factory=lambda: Gate(),
        description="Interactive steps only: default is when the assignee finishes the flow.",
    )
    inputs: dict[str, Expression] = Field(default_factory=dict)
    outputs: dict[str, ApiName] = Field(
        default_factory=dict, description="orchestration variable <- flow output"
    )
    assignee: Assignee | None = None
    email: Email = Field(default_factory=lambda: Email())
    max_attempts: int = Field(3, ge=1, le=20, description="Background steps: tries before error.")
    run: Literal["worker", "inline"] = Field(
        "worker",
        description=(
            "Background steps: 'worker' runs the flow as a Celery task; 'inline' runs it in the "
            "transition that starts the step, under the run lock (flows of set_outputs actions only)."
        ),
    )
    due_in_hours: float | None = Field(None, gt=0)
    sla: Sla | None = Field(
        None, description="Interactive steps: due time, priority, reminders and escalations."
    )
    claim_required: bool = Field(
        False,
        description=(
            "Interactive steps: an item assigned to a group or queue is completed only by the "
            "member who claimed it (an item for one user is theirs already)."
        ),
    )

    @model_validator(mode="after")
    def _kind_rules(self) -> Step:
        if self.kind == "wait":
            return self._wait_rules()
        if self.flow is None:
            raise ValueError(f"{self.kind} step '{self.key}' needs a flow")
        if self.wait is not None:
            raise ValueError(f"{self.kind} step '{self.key}' does not wait: 'wait' is for kind: wait")
        if self.kind == "interactive" and self.assignee is None:
            raise ValueError(f"interactive step '{self.key}' needs an assignee")
        if self.kind == "background" and self.assignee is not None:
            raise ValueError(f"background step '{self.key}' runs without a person: no assignee")
        if self.completion.after:
            raise ValueError("completion cannot use 'after'; use a condition or evaluation_flow")
        if self.kind == "background" and (self.completion.condition or self.completion.evaluation_flow):
            raise ValueError("background steps complete when their flow finishes")
        if self.kind == "interactive" and self.run != "worker":
            raise ValueError("'run: inline' is for background steps")
        if self.kind == "background" and self.sla is not None:
            raise ValueError(f"background step '{self.key}' has no work item: no sla")
        if self.sla is not None and self.due_in_hours:
            raise ValueError("give sla.due or due_in_hours, not both")
        if self.kind == "background" and self.claim_required:
            raise ValueError(f"background step '{self.key}' has no work item to claim: no claim_required")
        return self

    def _wait_rules(self) -> Step:
        if self.wait is None:
            raise ValueError(f"wait step '{self.key}' needs 'wait': for, until or condition")
        # A wait step runs no flow and makes no work item: whatever belongs to those is refused,
        # not ignored, so that a definition never says something the engine does not do.
        given = [
            name
            for name, present in (
                ("flow", self.flow is not None),
                ("inputs", bool(self.inputs)),
                ("outputs", bool(self.outputs)),
                ("assignee", self.assignee is not None),
                ("sla", self.sla is not None),
                ("due_in_hours", self.due_in_hours is not None),
                ("claim_required", self.claim_required),
                ("email", self.email != Email()),
                ("run", self.run != "worker"),
                ("completion", bool(self.completion.condition or self.completion.evaluation_flow)),
            )
            if present
        ]
        if given:
            raise ValueError(f"wait step '{self.key}' runs no flow: no {', '.join(given)}")
        return self


class Outcome(Strict):
    label: str = ""
    when: Expression
    goto: str = Field(description="A stage key, or 'end'.")


class Decision(Strict):
    outcomes: list[Outcome] = Field(min_length=1)
    default: str = Field(description="Stage key (or 'end') when no outcome holds.")


class Stage(Strict):
    key: ApiName
    label: str = ""
    steps: list[Step] = Field(min_length=1)
    exit: Gate = Field(default_factory=lambda: Gate(), description="Default: all steps completed.")
    next: str | Decision | None = Field(
        None, description="Following stage by default; a stage key, 'end', or a decision."
    )
    fault_path: ApiName | None = Field(None, description="Stage to go to when a step errors.")

    @field_validator("exit")
    @classmethod
    def _no_after(cls, v: Gate) -> Gate:
        if v.after:
            raise ValueError("a stage exit cannot use 'after'")
        return v


class Orchestration(Strict):
    kind: Literal["orchestration"]
    api_name: ApiName
    label: str = Field("", max_length=200)  # stored in a 200-character column
    description: str = ""
    start: Start
    variables: list[Variable] = Field(default_factory=list)
    calendar: ApiName | None = Field(None, description="The business calendar of its steps' SLAs.")
    stages: list[Stage] = Field(min_length=1)

    def stage(self, key: str) -> Stage:
        for s in self.stages:
            if s.key == key:
                return s
        raise KeyError(key)

    def stage_index(self, key: str) -> int:
        return next(i for i, s in enumerate(self.stages) if s.key == key)


Flow = ScreenFlow | AutolaunchedFlow | EvaluationFlow | BusinessCalendar
Document = Annotated[
    Orchestration | ScreenFlow | AutolaunchedFlow | EvaluationFlow | BusinessCalendar,
    Field(discriminator="kind"),
]


class DocumentRoot(BaseModel):
    root: Document


# Stored as flows (versioned, one active version each); a business calendar is one of them.
FLOW_KINDS = {"screen_flow", "autolaunched_flow", "evaluation_flow", "business_calendar"}


def json_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema = TypeAdapter(Document).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Flow orchestration definition document"
    return schema


_LOC_PART = re.compile(r"^[a-z_]+$")
