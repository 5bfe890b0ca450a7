"""The definition format: pydantic models for orchestrations and flows.

A definition document is a mapping with a `kind`. Documents are validated whole: structure by
pydantic, then references and expressions by `validate_documents`, which returns every error
with the path inside the document (`stages[1].steps[0].assignee`) so that an admin can fix all
of them in one go. The published JSON Schema (`manage.py orchestration_schema`) is generated
from these models.
"""

from __future__ import annotations

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


class Step(Strict):
    key: ApiName
    label: str = ""
    kind: Literal["interactive", "background"]
    flow: ApiName
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
    claim_required: bool = Field(
        False,
        description=(
            "Interactive steps: an item assigned to a group or queue is completed only by the "
            "member who claimed it (an item for one user is theirs already)."
        ),
    )

    @model_validator(mode="after")
    def _kind_rules(self) -> Step:
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
        if self.kind == "background" and self.claim_required:
            raise ValueError(f"background step '{self.key}' has no work item to claim: no claim_required")
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
    stages: list[Stage] = Field(min_length=1)

    def stage(self, key: str) -> Stage:
        for s in self.stages:
            if s.key == key:
                return s
        raise KeyError(key)

    def stage_index(self, key: str) -> int:
        return next(i for i, s in enumerate(self.stages) if s.key == key)


Flow = ScreenFlow | AutolaunchedFlow | EvaluationFlow
Document = Annotated[
    Orchestration | ScreenFlow | AutolaunchedFlow | EvaluationFlow, Field(discriminator="kind")
]


class DocumentRoot(BaseModel):
    root: Document


FLOW_KINDS = {"screen_flow", "autolaunched_flow", "evaluation_flow"}


def json_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    schema = TypeAdapter(Document).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Flow orchestration definition document"
    return schema


_LOC_PART = re.compile(r"^[a-z_]+$")
