"""Seams that other apps fill in their AppConfig.ready(): step kinds, flow actions, Python
flows, email renderers, record accessors, who holds a step's work, monitoring tabs, and the
JSON API's endpoints of other apps (in the OpenAPI document). The
engine only knows these interfaces, so `orchestration` imports neither `records` nor
`workitems` (tests/engine_alone runs it with neither installed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .definitions import Step
    from .models import Run, StepRun


class StepKind(Protocol):
    def start(self, *, run: Run, step_run: StepRun, step: Step, context: dict[str, Any]) -> None:
        """Called inside the engine's transaction when the step starts."""

    def stop(self, *, run: Run, step_runs: list[StepRun], reason: str) -> None:
        """Called when open steps are discontinued or canceled (cancel their work)."""


STEP_KINDS: dict[str, StepKind] = {}


def register_step_kind(name: str, kind: StepKind) -> None:
    STEP_KINDS[name] = kind


# A flow action takes the action definition and the flow's context and returns outputs to merge.
FlowAction = Callable[[Any, "FlowContext"], dict[str, Any]]
FLOW_ACTIONS: dict[str, FlowAction] = {}


def register_flow_action(name: str) -> Callable[[FlowAction], FlowAction]:
    def deco(fn: FlowAction) -> FlowAction:
        FLOW_ACTIONS[name] = fn
        return fn

    return deco


PYTHON_FLOWS: dict[str, Callable[[FlowContext], dict[str, Any] | None]] = {}


def register_flow(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a Python callable as a flow action: `@register_flow("score_lead")`.

    It receives a FlowContext and returns a dict of outputs (or None)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        PYTHON_FLOWS[name] = fn
        return fn

    return deco


# An outbox email kind -> a function that fills in the row's message (to, subject, body, html)
# before it is sent and returns "" while it still applies, or why it no longer does (the row is
# then canceled). workitems registers "assignment".
EmailRenderer = Callable[[Any], str]
EMAIL_RENDERERS: dict[str, EmailRenderer] = {}


def register_email_renderer(kind: str, renderer: EmailRenderer) -> None:
    EMAIL_RENDERERS[kind] = renderer


@dataclass
class RecordAccessor:
    """How the engine reads (and names) records of one model."""

    load: Callable[[int], dict[str, Any] | None]  # record id -> expression context, or None
    label: Callable[[int], str]
    url: Callable[[int], str]
    # (user, record id) -> whether that person may see the record: launching a run on a record
    # needs it (the run names the record). None: the model has no rule, anyone may.
    may_view: Callable[[Any, int], bool] | None = None


RECORD_ACCESSORS: dict[str, RecordAccessor] = {}  # "app_label.model" -> accessor

# The labels of record types by api name ({"loan_application": "Loan application"}), for pages
# that list the record types definitions name (records registers one; the key stands in for a
# type it does not know).
RECORD_TYPE_LABELS: list[Callable[[list[str]], dict[str, str]]] = []


def register_record_type_labels(fn: Callable[[list[str]], dict[str, str]]) -> None:
    if fn not in RECORD_TYPE_LABELS:
        RECORD_TYPE_LABELS.append(fn)


def record_type_labels(api_names: list[str]) -> dict[str, str]:
    """{api name: label} for these record types, each its own name when nobody knows it."""
    out = {name: name for name in api_names}
    for fn in RECORD_TYPE_LABELS:
        out.update(fn(api_names))
    return out


def register_record_accessor(model_label: str, accessor: RecordAccessor) -> None:
    RECORD_ACCESSORS[model_label.lower()] = accessor


def record_model_label() -> str | None:
    """The business record model runs are anchored on ("app_label.model"), when exactly one is
    registered (records registers `records.record`); None otherwise."""
    return next(iter(RECORD_ACCESSORS)) if len(RECORD_ACCESSORS) == 1 else None


# Who holds each step run's work, told by the app whose step kind makes that work (workitems:
# the work item's assignee): run ids -> {step run id: label}, in one query for any number of
# runs. The run pages and the record page's stage path show it.
WorkHolders = Callable[[list[int]], dict[int, str]]
WORK_HOLDERS: list[WorkHolders] = []


def register_work_holders(fn: WorkHolders) -> None:
    if fn not in WORK_HOLDERS:
        WORK_HOLDERS.append(fn)


@dataclass(frozen=True)
class StepWork:
    """What the run page shows of a step run's work (its latest work item): where to open it,
    when it is due, how urgent, and its SLA state ("on_track", "at_risk", "breached" or "")."""

    url: str = ""
    due_at: Any = None
    priority: str = ""  # the label ("High"), "" for the default
    sla: str = ""


@dataclass(frozen=True)
class RunWork:
    steps: dict[int, StepWork]
    sla: str = ""  # the run's worst: breached over at risk over on track; "" without due times


# The work of one run's steps, told by the app whose step kind makes it (workitems), in one query.
RunWorkReader = Callable[[int], RunWork]
RUN_WORK: list[RunWorkReader] = []


def register_run_work(fn: RunWorkReader) -> None:
    if fn not in RUN_WORK:
        RUN_WORK.append(fn)


def run_work(run_id: int) -> RunWork:
    steps: dict[int, StepWork] = {}
    states = []
    for fn in RUN_WORK:
        got = fn(run_id)
        steps.update(got.steps)
        if got.sla:
            states.append(got.sla)
    rank = {"on_track": 0, "at_risk": 1, "breached": 2}
    return RunWork(steps=steps, sla=max(states, key=lambda x: rank.get(x, -1)) if states else "")


# The Analytics page's work-item figures, told by the app whose step kind makes work items
# (workitems/analytics.py). The page reads rollups (orchestration/rollup.py): such an app keeps
# its own rows per partition (the runs of one orchestration started on one day), rebuilt with the
# engine's by its RollupPart, and reads them back for a RollupScope with its WorkFiguresReader.
@dataclass(frozen=True)
class RollupScope:
    """The partitions a page reads: days from `day_from` to `day_to` (both inclusive), of one
    orchestration (None: all) and one version (None: all)."""

    day_from: Any  # datetime.date
    day_to: Any
    orchestration_id: int | None = None
    version_id: int | None = None


@dataclass(frozen=True)
class StepBreaches:
    stage: str
    step: str
    with_due: int  # items that had a due time (canceled ones left out)
    breached: int  # of those: completed after it, or still open past it


@dataclass(frozen=True)
class OpenWork:
    holder: str  # "Dana Whitfield", "group support", "queue Triage"
    kind: str  # "user", "group" or "queue"
    count: int


@dataclass(frozen=True)
class WorkFigures:
    breaches: list[StepBreaches]
    wip: list[OpenWork]  # most open items first


# (day, orchestration id, the partition's runs as a Run queryset) -> rows written. Called inside
# the transaction that rebuilds the partition: it replaces the app's rows of that partition.
RollupPart = Callable[[Any, int, Any], int]
ROLLUP_PARTS: list[RollupPart] = []


@dataclass(frozen=True)
class RollupTable:
    """A rollup table (fields `day`, `whole_month`, `orchestration`) and how its month rows sum
    its day rows, per `key` (the fields that tell a partition's rows apart): `sums` are added,
    `counters` ({key: n}) added key by key, `sorted_lists` merged in order, and `exact` lists
    joined while every day row kept its own and they stay at most `exact_cap` long (else null)."""

    model: Any
    key: tuple[str, ...]
    sums: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()
    sorted_lists: tuple[str, ...] = ()
    exact: tuple[str, ...] = ()
    exact_cap: int = 64


ROLLUP_TABLES: list[RollupTable] = []
WorkFiguresReader = Callable[[RollupScope, Any], WorkFigures]  # (scope, now) -> figures
WORK_FIGURES: list[WorkFiguresReader] = []


def register_rollup_part(fn: RollupPart, table: RollupTable) -> None:
    """An app's rows of the Analytics rollups: `fn` rebuilds a partition's, `table` says how
    its month rows are summed."""
    if fn not in ROLLUP_PARTS:
        ROLLUP_PARTS.append(fn)
    if table not in ROLLUP_TABLES:
        ROLLUP_TABLES.append(table)


def register_work_figures(fn: WorkFiguresReader) -> None:
    if fn not in WORK_FIGURES:
        WORK_FIGURES.append(fn)


def work_figures(scope: RollupScope, now: Any) -> WorkFigures:
    """What every registered app says of the scope's work; empty without one (the engine alone)."""
    breaches: list[StepBreaches] = []
    wip: list[OpenWork] = []
    for fn in WORK_FIGURES:
        got = fn(scope, now)
        breaches.extend(got.breaches)
        wip.extend(got.wip)
    return WorkFigures(breaches=breaches, wip=sorted(wip, key=lambda w: (-w.count, w.holder)))


@dataclass(frozen=True)
class MonitorTab:
    """A tab of the monitoring pages' navigation, contributed by the app that has the page.
    Shown to users with any of `perms`; marked current on the URL names in `current`."""

    label: str
    url_name: str
    perms: tuple[str, ...]
    current: frozenset[str]
    order: int = 100


MONITOR_TABS: list[MonitorTab] = []


def register_monitor_tab(tab: MonitorTab) -> None:
    if tab not in MONITOR_TABS:
        MONITOR_TABS.append(tab)
        MONITOR_TABS.sort(key=lambda t: t.order)


# The OpenAPI description of endpoints other apps serve under /api/ (workitems: work items):
# path -> path item, and component schema name -> schema. orchestration/openapi.py merges them
# into the one document, which so describes every route without importing those apps.
API_PATHS: dict[str, dict[str, Any]] = {}
API_SCHEMAS: dict[str, dict[str, Any]] = {}


def register_api_paths(*, paths: dict[str, dict[str, Any]], schemas: dict[str, dict[str, Any]]) -> None:
    """Describe an app's API endpoints. A path or schema name another app described already is
    refused: two apps would otherwise overwrite each other's description silently."""
    for table, new in ((API_PATHS, paths), (API_SCHEMAS, schemas)):
        taken = sorted(k for k, v in new.items() if k in table and table[k] is not v)
        if taken:
            raise ValueError(f"the API document describes {', '.join(taken)} already")
    API_PATHS.update(paths)
    API_SCHEMAS.update(schemas)


@dataclass
class FlowContext:
    """What a running flow sees and accumulates."""

    run_id: int | None
    step_key: str | None
    record_model: str | None
    record_id: int | None
    record: dict[str, Any]
    inputs: dict[str, Any]
    vars: dict[str, Any]
    steps: dict[str, Any]
    outputs: dict[str, Any]
    actor_id: int | None = None
    # One logical effect per step run: "step:<step run id>", the same for every attempt (a retry
    # after a crash repeats the effect under the same key, so a receiver can drop the repeat).
    idempotency_key: str = ""
    # The index of the action running now (set by flows.run_actions).
    action_index: int = 0
    # Emails the flow's send_email actions owe, written to the outbox in the transaction that
    # stores the step's result (a flow whose result is never stored sends nothing). None: the
    # flow's caller keeps no result transaction (an evaluation flow): written at once instead.
    emails: list[dict[str, Any]] | None = None

    @property
    def action_key(self) -> str:
        """The idempotency key of the current action: the step run's key plus the action's
        index, so two actions of one flow differ and every attempt of one action agrees."""
        return f"{self.idempotency_key}:a{self.action_index}"

    def expression_context(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "inputs": self.inputs,
            "vars": self.vars,
            "steps": self.steps,
            "outputs": self.outputs,
            "run": {"id": self.run_id},
        }
