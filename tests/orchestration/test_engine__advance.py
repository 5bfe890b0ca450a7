"""`advance` is idempotent (a second call writes nothing) and only runs inside a transaction."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestration import engine
from orchestration.models import Run, RunEvent, RunStatus, StageRun, StepRun
from tests.factories import load, make_case, orchestration, screen_flow
from workitems.models import WorkItem
from workitems.services import workitem_complete

from .engine_support import fresh, launch, open_item, stage, task

WRITES = ("INSERT", "UPDATE", "DELETE")


def _rows(run: Run) -> tuple:
    run = fresh(run)
    return (
        RunEvent.objects.filter(run=run).count(),
        list(StageRun.objects.filter(run=run).values_list("id", "status")),
        list(StepRun.objects.filter(run=run).values_list("id", "status", "attempts")),
        WorkItem.objects.filter(run=run).count(),
        (run.status, run.current_stage, run.variables, run.step_outputs, run.recheck),
    )


def _writes(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


@pytest.mark.django_db
def test_advancing_a_waiting_run_again_writes_nothing(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("a"),
                    task("b", start={"after": ["a"]}),
                    task("c", start={"condition": "record.amount > 100"}),
                    exit={"condition": "record.status == 'done'"},
                ),
                stage("t", task("d")),
            ]
        ),
    )
    run = launch(record=make_case(amount="5"))
    before = _rows(run)
    with transaction.atomic():
        engine.advance(run.pk)
    assert _rows(run) == before

    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        engine.advance(run.pk)
    assert _writes(ctx) == []
    # Lock the run, load the stage's steps, read the record for the conditions: nothing more.
    selects = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, selects
    if connection.features.has_select_for_update:
        # PostgreSQL locks the row; SQLite has no row locks (its IMMEDIATE transactions
        # serialise writers instead), so Django sends a plain SELECT there.
        assert "FOR UPDATE" in selects[0]
    assert _rows(run) == before


@pytest.mark.django_db
def test_advancing_after_a_completion_moves_once_then_stays_put(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a"), task("b", start={"after": ["a"]}))]),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    after_completion = _rows(run)
    for _ in range(3):
        with CaptureQueriesContext(connection) as ctx, transaction.atomic():
            engine.advance(run.pk)
        assert _writes(ctx) == []
    assert _rows(run) == after_completion


@pytest.mark.django_db
def test_advancing_a_finished_run_writes_nothing(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    assert fresh(run).status == RunStatus.COMPLETED
    before = _rows(run)
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        engine.advance(run.pk)
    assert _writes(ctx) == []
    assert _rows(run) == before


@pytest.mark.django_db(transaction=True)
def test_advance_refuses_to_run_outside_a_transaction(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    with pytest.raises(engine.EngineError, match=r"transaction\.atomic"):
        engine.advance(run.pk)
    with pytest.raises(engine.EngineError, match=r"transaction\.atomic"):
        engine.advance_locked(run)
    with pytest.raises(engine.EngineError, match=r"transaction\.atomic"):
        engine.lock_run(run.pk)
    from orchestration.services import step_complete_locked

    with pytest.raises(engine.EngineError):
        step_complete_locked(run=run, step_run=StepRun.objects.get(run=run), outputs={}, actor_id=None)
    # Inside one, it works.
    with transaction.atomic():
        engine.advance(run.pk)
