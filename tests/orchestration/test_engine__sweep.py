"""The periodic sweep repairs what a broker or a worker can lose, and duplicate deliveries of
a background step's task run nothing."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.utils import timezone

from orchestration.models import ExecState, RunEvent, RunStatus, StepRun, StepStatus
from orchestration.services import background as services_background
from orchestration.services import background_step_execute, sweep
from records.models import Record
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow

from .engine_support import bg, events, fresh, launch, lost_messages, stage, step, task

pytestmark = pytest.mark.django_db(transaction=True)


def _held_run(flow: dict | None = None, **step_extra):
    """A run whose background step's message never reached a worker."""
    load(
        flow or auto_flow("calc", outputs={"x": "7"}),
        orchestration(stages=[stage("s", bg("b", "calc", **step_extra))]),
    )
    with lost_messages() as sent:
        run = launch(record=make_case())
    assert len(sent) == 1
    sr = step(run, "b")
    assert (sr.status, sr.exec_state, sr.attempts) == (StepStatus.IN_PROGRESS, ExecState.QUEUED, 1)
    return run, sr


def test_a_queued_step_whose_message_was_lost_is_dispatched_again(personas):
    run, sr = _held_run()
    # Not yet overdue: the message may still be on its way.
    assert sweep().redispatched == 0
    StepRun.objects.filter(pk=sr.pk).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=5))
    report = sweep()
    assert report.redispatched == 1
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    sr = step(run, "b")
    assert sr.attempts == 1  # the same attempt, delivered late: not a retry
    assert sr.outputs == {"x": 7}
    assert sweep().redispatched == 0


def test_a_running_step_whose_worker_died_counts_as_a_failed_attempt(personas, settings):
    run, sr = _held_run()
    timeout = settings.ORCHESTRATION_STEP_TIMEOUT_SECONDS
    # A worker claimed attempt 1 and was never heard of again.
    StepRun.objects.filter(pk=sr.pk).update(
        exec_state=ExecState.RUNNING, claimed_at=timezone.now() - dt.timedelta(seconds=timeout + 5)
    )
    report = sweep()
    assert report.timed_out == 1
    retry = RunEvent.objects.get(run=run, name="orchestration.step.retry_scheduled")
    assert retry.payload["attempt"] == 2
    assert "worker lost" in retry.payload["error"]
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED  # attempt 2 ran (eagerly) and succeeded
    assert step(run, "b").attempts == 2
    # The dead worker's attempt, redelivered now, is recognised and runs nothing.
    assert background_step_execute(step_run_id=sr.pk, attempt=1) == "duplicate"


def test_a_timed_out_step_on_its_last_attempt_goes_to_error(personas, settings):
    run, sr = _held_run(max_attempts=1)
    StepRun.objects.filter(pk=sr.pk).update(
        exec_state=ExecState.RUNNING, claimed_at=timezone.now() - dt.timedelta(days=1)
    )
    assert sweep().timed_out == 1
    sr = step(run, "b")
    assert sr.status == StepStatus.ERROR
    assert "worker lost" in sr.error
    assert fresh(run).status == RunStatus.ERROR


def test_a_recent_claim_is_left_alone(personas):
    run, sr = _held_run()
    StepRun.objects.filter(pk=sr.pk).update(exec_state=ExecState.RUNNING, claimed_at=timezone.now())
    assert sweep().timed_out == 0
    assert step(run, "b").exec_state == ExecState.RUNNING


def test_a_result_arriving_after_the_attempt_was_given_up_is_ignored(personas):
    run, sr = _held_run()
    real = services_background.run_actions
    calls: list[int] = []

    def slow_flow(fdoc, ctx):
        calls.append(1)
        if len(calls) == 1:
            # While attempt 1 is still working, the sweep decides its worker is lost and
            # schedules attempt 2, which (eager Celery) runs to completion right away.
            later = timezone.now() + dt.timedelta(days=1)
            assert sweep(now=later).timed_out == 1
        return real(fdoc, ctx)

    with mock.patch.object(services_background, "run_actions", slow_flow):
        assert background_step_execute(step_run_id=sr.pk, attempt=1) == "stale"
    assert len(calls) == 2
    sr = step(run, "b")
    assert (sr.status, sr.attempts) == (StepStatus.COMPLETED, 2)
    assert events(run).count("step.completed") == 1


def test_a_duplicated_delivery_of_the_same_attempt_runs_the_flow_once(personas):
    creates = {
        "kind": "autolaunched_flow",
        "api_name": "calc",
        "outputs": [{"name": "new_id", "type": "number"}],
        "actions": [
            {
                "type": "create_record",
                "record_type": "case",
                "name": "'Follow-up of ' ~ record.name",
                "values": {"severity": "'Low'"},
                "output": "new_id",
            }
        ],
    }
    run, sr = _held_run(creates)
    cases_before = Record.objects.count()
    assert background_step_execute(step_run_id=sr.pk, attempt=1) == "completed"
    assert background_step_execute(step_run_id=sr.pk, attempt=1) == "duplicate"
    assert Record.objects.count() == cases_before + 1
    follow_up = Record.objects.get(name="Follow-up of Case 1")
    assert step(run, "b").outputs == {"new_id": follow_up.pk}
    assert fresh(run).status == RunStatus.COMPLETED
    assert events(run).count("step.completed") == 1


def test_the_sweep_rechecks_only_runs_waiting_on_a_condition(personas):
    load(
        screen_flow("review"),
        orchestration("waits", stages=[stage("s", task("go", start={"condition": "record.status == 'go'"}))]),
        orchestration("plain", stages=[stage("s", task("t"))]),
    )
    case = make_case()
    waiting = launch("waits", record=case)
    plain = launch("plain", record=case)
    assert (waiting.recheck, plain.recheck) == (True, False)
    Record.objects.filter(pk=case.pk).update(data={**case.data, "status": "go"})  # behind the engine's back
    report = sweep()
    assert report.rechecked == 1
    assert step(waiting, "go").status == StepStatus.IN_PROGRESS
    assert fresh(waiting).recheck is False
    assert sweep().rechecked == 0
