"""The state machine (orchestration/transitions.py): every entry of the tables is reached by a
real scenario and writes its event; every change the tables do not list raises; no code
outside the engine's three status methods writes a status."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from orchestration import engine, transitions
from orchestration.models import ExecState, RunEvent, RunStatus, StageRun, StageStatus, StepRun
from orchestration.services import (
    background_step_execute,
    run_cancel,
    run_recheck,
    run_resume,
    run_suspend,
    step_retry,
    step_skip,
)
from orchestration.transitions import EXEC, RUN, STAGE, STEP, IllegalTransition
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.services import workitem_complete

from .engine_support import bg, failing_flow, fresh, launch, lost_messages, open_item, stage, step, task

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"run": RUN, "stage": STAGE, "step": STEP}


@pytest.fixture
def seen(monkeypatch):
    """Every (machine, from, to) the engine checks while the test runs."""
    found: set[tuple[str, str | None, str]] = set()
    names = {id(table): name for name, table in TABLES.items()}
    check, check_exec = transitions.check, transitions.check_exec

    def spy(table: Any, what: str, frm: str | None, to: str) -> str:
        event = check(table, what, frm, to)
        found.add((names[id(table)], frm, to))
        return event

    def spy_exec(what: str, frm: str, to: str) -> None:
        check_exec(what, frm, to)
        if frm != to:
            found.add(("exec", frm, to))

    monkeypatch.setattr(transitions, "check", spy)
    monkeypatch.setattr(transitions, "check_exec", spy_exec)
    return found


def _definitions() -> None:
    load(
        screen_flow("review"),
        failing_flow("broken"),
        auto_flow("compute", outputs={"n": "1"}),
        orchestration("human", stages=[stage("s", task("a"), task("b", start={"after": ["a"]}))]),
        orchestration(
            "faulty",
            stages=[
                stage("work", bg("b", "broken", max_attempts=2), fault_path="recover"),
                stage("recover", task("fix"), next="end"),
            ],
        ),
        orchestration("stuck", stages=[stage("work", bg("b", "broken", max_attempts=1), task("other"))]),
        orchestration(
            "unstartable", stages=[stage("s", task("t", assignee={"expression": "'nobody_by_that_name'"}))]
        ),
        orchestration("quick", stages=[stage("s", bg("c", "compute", run="inline"), bg("w", "compute"))]),
    )


@pytest.mark.django_db(transaction=True)  # background steps run on commit
def test_every_entry_of_the_tables_is_reached_and_writes_its_event(personas, seen):
    _definitions()
    case = make_case()
    # An interactive run from start to end; a second one canceled with work open and to come.
    run = launch("human", record=case)
    for key in ("a", "b"):
        workitem_complete(item=open_item(run, key), user=personas.alice, data={"approved": True})
    assert fresh(run).status == RunStatus.COMPLETED
    run = launch("human", record=case)
    run_suspend(run_id=run.pk, actor=personas.admin)
    run_resume(run_id=run.pk, actor=personas.admin)
    run_cancel(run_id=run.pk, actor=personas.admin)
    run_suspend(run_id=(run := launch("human", record=case)).pk, actor=personas.admin)
    run_cancel(run_id=run.pk, actor=personas.admin)
    # A background step retried, then failed: the fault path.
    run = launch("faulty", record=case)
    assert fresh(run).current_stage == "recover"
    # A failed step without fault path: the run in error; retried by an admin, skipped, and a
    # run in error canceled with its failed step.
    run = launch("stuck", record=case)
    failed = step(run, "b")
    step_retry(step_run_id=failed.pk, actor=personas.admin)
    step_skip(step_run_id=step(run, "b").pk, outputs={}, actor=personas.admin)
    run = launch("stuck", record=case)
    assert fresh(run).status == RunStatus.ERROR
    run_recheck(run_id=run.pk, actor=personas.admin)  # still failed: stays in error
    run_cancel(run_id=run.pk, actor=personas.admin)
    # A step that cannot start; inline and worker steps; a queued step discontinued.
    launch("unstartable", record=case)
    launch("quick", record=case)
    with lost_messages():
        run = launch("quick", record=case)
    run_cancel(run_id=run.pk, actor=personas.admin)

    expected = {(name, f, t) for name, table in TABLES.items() for (f, t) in table}
    expected |= {("exec", f, t) for (f, t) in EXEC}
    # A worker's claim is a compare-and-swap in SQL (hot.claim_step), not a checked assignment:
    # test_a_worker_claims_a_queued_attempt_by_compare_and_swap shows it.
    expected.discard(("exec", ExecState.QUEUED, ExecState.RUNNING))
    assert sorted(expected - seen, key=str) == []
    written = set(RunEvent.objects.values_list("name", flat=True))
    wanted = {f"orchestration.{e}" for table in TABLES.values() for e in table.values() if e}
    assert sorted(wanted - written) == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_claims_a_queued_attempt_by_compare_and_swap(personas):
    load(auto_flow("compute"), orchestration("p", stages=[stage("s", bg("w", "compute"))]))
    with lost_messages() as sent:
        run = launch("p", record=make_case())
    sr = step(run, "w")
    assert sr.exec_state == ExecState.QUEUED
    ((pk, attempt),) = sent
    assert background_step_execute(step_run_id=pk, attempt=attempt) == "completed"
    assert background_step_execute(step_run_id=pk, attempt=attempt) == "duplicate"
    sr.refresh_from_db()
    assert (sr.status, sr.exec_state) == (StageStatus.COMPLETED, ExecState.DONE)


@pytest.mark.parametrize("name", TABLES)
def test_every_change_the_table_does_not_list_is_refused(name):
    table = TABLES[name]
    statuses = list(StageStatus.values if name != "run" else RunStatus.values)
    for frm, to in itertools.product([None, *statuses], statuses):
        if (frm, to) in table:
            assert isinstance(transitions.check(table, name, frm, to), str)
        else:
            with pytest.raises(IllegalTransition, match=f"{name} cannot go from"):
                transitions.check(table, name, frm, to)


def test_every_task_state_change_the_table_does_not_list_is_refused():
    for frm, to in itertools.product(ExecState.values, ExecState.values):
        if frm != to and (frm, to) not in EXEC:
            with pytest.raises(IllegalTransition):
                transitions.check_exec("step", frm, to)


@pytest.mark.django_db
def test_an_illegal_change_raises_and_writes_nothing(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    run = fresh(run)
    events_before = RunEvent.objects.filter(run=run).count()
    with transaction.atomic():
        p = engine.Pass(engine.lock_run(run.pk), None)
        with pytest.raises(IllegalTransition, match=r"run \d+ cannot go from completed to suspended"):
            p.run_to(RunStatus.SUSPENDED)
        sr = StepRun.objects.get(run=run, key="a")
        p.steps = {"a": sr}
        with pytest.raises(IllegalTransition, match="step 'a' cannot go from completed to in_progress"):
            p.step_to(sr, StageStatus.IN_PROGRESS)
        p.flush()
    assert fresh(run).status == RunStatus.COMPLETED
    assert RunEvent.objects.filter(run=run).count() == events_before


@pytest.mark.django_db
def test_a_run_going_on_without_a_stage_in_progress_is_an_error_never_a_restart(personas):
    """What a re-check would once do after a routing-loop error: with no stage in progress, the
    run was taken for a fresh one and started over at its first stage."""
    load(screen_flow("review"), orchestration(stages=[stage("first", task("a")), stage("second", task("b"))]))
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    # A state no path writes (the stage in progress ended and nothing entered): as an upgrade
    # from an older version or a hand edit might leave it.
    StageRun.objects.filter(run=run, status=StageStatus.IN_PROGRESS).update(status=StageStatus.CANCELED)
    run_recheck(run_id=run.pk, actor=personas.admin)
    run = fresh(run)
    assert run.status == RunStatus.ERROR and "no stage in progress" in run.error
    assert StageRun.objects.filter(run=run, key="first").count() == 1  # not started over


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (RunStatus.IN_PROGRESS, ["cancel", "suspend", "recheck"]),
        (RunStatus.SUSPENDED, ["cancel", "resume"]),
        (RunStatus.ERROR, ["cancel", "recheck"]),
        (RunStatus.COMPLETED, []),
        (RunStatus.CANCELED, []),
    ],
)
def test_run_actions_follow_the_table(status, expected):
    from orchestration.models import Run

    assert transitions.actions_available(Run(status=status)) == expected


@pytest.mark.parametrize(
    ("run_status", "step_status", "stage_status", "expected"),
    [
        (RunStatus.ERROR, StageStatus.ERROR, StageStatus.IN_PROGRESS, ["retry", "skip"]),
        (RunStatus.IN_PROGRESS, StageStatus.ERROR, StageStatus.IN_PROGRESS, ["retry", "skip"]),
        (RunStatus.SUSPENDED, StageStatus.ERROR, StageStatus.IN_PROGRESS, ["skip"]),
        (RunStatus.ERROR, StageStatus.ERROR, StageStatus.ERROR, []),  # its stage took the fault path
        (RunStatus.IN_PROGRESS, StageStatus.IN_PROGRESS, StageStatus.IN_PROGRESS, []),
        (RunStatus.CANCELED, StageStatus.DISCONTINUED, StageStatus.CANCELED, []),
    ],
)
def test_step_actions_follow_the_table(run_status, step_status, stage_status, expected):
    from orchestration.models import Run

    stage_run = StageRun(status=stage_status)
    sr = StepRun(status=step_status, stage_run=stage_run, key="x")
    assert transitions.actions_available(Run(status=run_status), sr) == expected


# --- no status written elsewhere ------------------------------------------------------------------

STATUS_ENUMS = {"RunStatus", "StageStatus", "StepStatus", "ExecState"}
# Where a status may be written: the engine's three methods, the task state's one function, the
# constructors of new rows (the tables' "new" entries), and the worker's claim.
ALLOWED = {
    ("orchestration/pass_state.py", "run_to"),
    ("orchestration/pass_state.py", "stage_to"),
    ("orchestration/pass_state.py", "step_to"),
    ("orchestration/engine.py", "start_stage"),
    ("orchestration/transitions.py", "exec_to"),
    ("orchestration/services/launch.py", "_new_run"),
    ("orchestration/hot.py", "claim_step"),
}
FIELDS = ("status", "exec_state")
READS = {"filter", "exclude", "get", "Q", "first", "count", "exists", "values", "values_list"}


def _writes(tree: ast.AST) -> list[tuple[str, int]]:
    """(enclosing function, line) of every assignment to `.status` / `.exec_state` that is not
    a work item's or an email's, and every `status=` / `exec_state=` keyword with a run, stage,
    step or task status outside a query."""
    found: list[tuple[str, int]] = []

    def enum_of(node: ast.AST) -> str | None:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return node.value.id
        return None

    def visit(node: ast.AST, func: str, call: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        if isinstance(node, ast.Call):
            f = node.func
            call = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            for kw in node.keywords:
                if (
                    kw.arg in ("status", "exec_state")
                    and enum_of(kw.value) in STATUS_ENUMS
                    and call not in READS
                ):
                    found.append((func, node.lineno))
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                own = isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                if isinstance(t, ast.Attribute) and t.attr in FIELDS and not own:  # (an exception's own)
                    enum = enum_of(node.value) if node.value is not None else None
                    if enum is None or enum in STATUS_ENUMS:
                        found.append((func, node.lineno))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            args = node.args
            if (
                len(args) > 1
                and isinstance(args[1], ast.Constant)
                and args[1].value in ("status", "exec_state")
            ):
                found.append((func, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, func, call)

    visit(tree, "<module>", "")
    return found


def test_no_status_is_written_outside_the_state_machine():
    offenders = []
    for app in ("orchestration", "workitems", "records"):
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel:
                continue
            for func, line in _writes(ast.parse(path.read_text(), rel)):
                if (rel, func) not in ALLOWED:
                    offenders.append(f"{rel}:{line} in {func}")
    # Work items have their own statuses (workitems/services.py writes them with WorkItemStatus).
    assert offenders == []


def test_the_guard_finds_a_status_written_by_hand():
    source = (
        "def f(sr, run):\n"
        "    sr.status = StageStatus.ERROR\n"
        "    run.save()\n"
        "    x.update(exec_state=ExecState.DONE)\n"
    )
    assert _writes(ast.parse(source)) == [("f", 2), ("f", 4)]
