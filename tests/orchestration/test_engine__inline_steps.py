"""Inline background steps (`run: inline`): a flow that only computes (set_outputs) runs in the
transition that starts the step, under the run lock, with no task on a worker, like Camunda's
synchronous script tasks and Viewflow's Function nodes. Everything else about the step is as on
a worker: its events, attempts, outputs, variables, failures and an admin's retry."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.models import ExecState, RunEvent, RunStatus, StepStatus
from orchestration.services import DefinitionsInvalid, definitions_import, step_retry
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow

from .engine_support import bg, events, failing_flow, fresh, launch, stage, step, step_status, task

pytestmark = pytest.mark.django_db(transaction=True)  # background steps are sent on commit


def _diamond(run: str = "inline") -> list[dict]:
    """W1's shape: a; then b and c (after a); then d (after b and c)."""
    flows = {"a": "1", "b": "steps.a.x + 1", "c": "steps.a.x * 2", "d": "steps.b.x + steps.c.x"}
    docs = [auto_flow(f"f_{k}", outputs={"x": v}) for k, v in flows.items()]
    docs.append(
        orchestration(
            variables=[{"name": "total", "type": "number"}],
            stages=[
                stage(
                    "s",
                    bg("a", "f_a", run=run),
                    bg("b", "f_b", run=run, start={"after": ["a"]}),
                    bg("c", "f_c", run=run, start={"after": ["a"]}),
                    bg("d", "f_d", run=run, start={"after": ["b", "c"]}, outputs={"total": "x"}),
                )
            ],
        )
    )
    return docs


def test_an_inline_chain_completes_within_the_launch_without_a_task(personas):
    load(*_diamond())
    with mock.patch("orchestration.tasks.run_background_step.apply_async") as publish:
        run = launch(record=make_case())
    assert publish.call_count == 0  # nothing went to a worker
    assert run.status == RunStatus.COMPLETED
    assert run.variables == {"total": 4}
    assert run.step_outputs == {"a": {"x": 1}, "b": {"x": 2}, "c": {"x": 2}, "d": {"x": 4}}
    for key in "abcd":
        sr = step(run, key)
        assert (sr.status, sr.attempts, sr.exec_state, sr.error) == (
            StepStatus.COMPLETED,
            1,
            ExecState.DONE,
            "",
        )
    assert events(run) == [
        "run.started",
        "stage.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "stage.completed",
        "run.completed",
    ]


def test_the_same_orchestration_on_a_worker_gives_the_same_result_and_events(personas):
    load(*_diamond("worker"))
    worker = launch(record=make_case())  # eager Celery in tests: the tasks ran on commit
    assert fresh(worker).status == RunStatus.COMPLETED
    load(*_diamond("inline"))
    inline = launch(record=make_case())
    assert (inline.variables, inline.step_outputs) == (fresh(worker).variables, fresh(worker).step_outputs)
    assert sorted(events(inline)) == sorted(events(worker))


# active version; INSERT run, stage run, step runs; flow versions; UPDATE stage run, step runs
# (one statement on PostgreSQL, one per row on SQLite), run; INSERT events.
EXPECTED_INLINE_STATEMENTS = {"postgresql": 9, "sqlite": 12}


def test_an_inline_run_is_one_transaction_with_a_handful_of_statements(personas):
    load(*_diamond())
    record = make_case()
    launch(record=make_case())  # warm: parsed definitions and flow versions are cached
    with CaptureQueriesContext(connection) as queries:
        run = launch(record=record)
    assert run.status == RunStatus.COMPLETED
    sql = [q["sql"] for q in queries.captured_queries]
    data = [s for s in sql if not s.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"))]
    # The same shape on workers takes 35 statements in 5 transactions (PostgreSQL); inline, the
    # launch's own transaction holds it all. (+1: the refresh in launch().)
    assert len(data) == EXPECTED_INLINE_STATEMENTS[connection.vendor] + 1, "\n".join(data)


def test_a_failing_inline_step_is_in_error_at_once_and_an_admin_retry_runs_it_again(personas):
    load(failing_flow("broken"), orchestration(stages=[stage("s", bg("b", "broken", run="inline"))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    assert run.status == RunStatus.ERROR
    assert (sr.status, sr.attempts) == (StepStatus.ERROR, 1)  # computing it again gives the same
    assert "division by zero" in sr.error
    assert events(run)[-2:] == ["step.error", "run.error"]
    # The admin fixes the flow and retries: the step runs inline again, a second attempt.
    load(auto_flow("broken", outputs={"x": "1"}))
    step_retry(step_run_id=sr.pk, actor=personas.admin)
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert step(run, "b").attempts == 2
    assert RunEvent.objects.filter(run=run, name="orchestration.step.completed").count() == 1


def test_an_inline_step_feeds_an_interactive_step_started_in_the_same_transition(personas):
    load(
        auto_flow("calc", outputs={"x": "21 * 2"}),
        screen_flow("review"),
        orchestration(
            stages=[stage("s", bg("calc", "calc", run="inline"), task("ask", start={"after": ["calc"]}))]
        ),
    )
    run = launch(record=make_case())
    assert step_status(run) == {"calc": "completed", "ask": "in_progress"}
    assert run.step_outputs["calc"] == {"x": 42}


def test_inline_is_refused_for_a_flow_with_effects_and_for_interactive_steps(personas):
    with pytest.raises(DefinitionsInvalid) as exc:
        definitions_import(
            items=[
                (
                    "f.yaml",
                    {
                        "kind": "autolaunched_flow",
                        "api_name": "mailer",
                        "actions": [
                            {"type": "set_outputs", "values": {"x": "1"}},
                            {"type": "send_email", "to": "'a@example.com'", "subject": "s", "body": "b"},
                        ],
                    },
                ),
                ("o.yaml", orchestration(stages=[stage("s", bg("m", "mailer", run="inline"))])),
            ]
        )
    [err] = [e for e in exc.value.errors if e.path.endswith(".run")]
    assert err.path == "stages[0].steps[0].run"
    assert "actions[1] is send_email" in err.message
    with pytest.raises(DefinitionsInvalid) as exc:
        load(screen_flow("review"), orchestration(stages=[stage("s", task("t", run="inline"))]))
    assert any("background steps" in e.message for e in exc.value.errors)


def test_a_flow_that_gained_an_effect_after_import_runs_on_a_worker(personas):
    load(
        auto_flow("calc", outputs={"x": "1"}),
        orchestration(stages=[stage("s", bg("b", "calc", run="inline"))]),
    )
    # A new version of the flow with an effect: validation of that flow alone cannot see the
    # orchestration's inline step, so the engine decides when the step starts.
    load(
        {
            "kind": "autolaunched_flow",
            "api_name": "calc",
            "outputs": [{"name": "x", "type": "number"}],
            "actions": [
                {"type": "set_outputs", "values": {"x": "1"}},
                {"type": "update_record", "values": {"description": "'touched'"}},
            ],
        }
    )
    with mock.patch("orchestration.tasks.run_background_step.apply_async") as publish:
        run = launch(record=make_case())
    assert publish.call_count == 1  # (mocked: the task never runs)
    assert step(run, "b").exec_state == ExecState.QUEUED
