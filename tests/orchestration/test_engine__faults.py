"""Failures: background retries with backoff, then error; the stage's fault path or a run in
error; an admin's retry or skip brings the run back."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from orchestration.models import ExecState, RunEvent, RunStatus, StageStatus, StepStatus
from orchestration.services import ActionNotAllowed, step_retry, step_skip
from records.services import record_update
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

from .engine_support import (
    bg,
    events,
    failing_flow,
    fresh,
    launch,
    open_item,
    stage,
    stages,
    step,
    step_status,
    task,
)


def divide_flow() -> dict:
    """Fails while the record's amount is 0, succeeds once someone fixes the amount."""
    return {
        "kind": "autolaunched_flow",
        "api_name": "divide",
        "outputs": [{"name": "ratio", "type": "decimal"}],
        "actions": [{"type": "set_outputs", "values": {"ratio": "100 / record.amount"}}],
    }


@pytest.mark.django_db(transaction=True)
def test_a_failing_background_step_is_retried_then_put_in_error(personas):
    load(failing_flow(), orchestration(stages=[stage("s", bg("b", "broken", max_attempts=3))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    assert sr.status == StepStatus.ERROR
    assert sr.attempts == 3
    assert "division by zero" in sr.error
    retries = RunEvent.objects.filter(run=run, name="orchestration.step.retry_scheduled").order_by("id")
    assert [e.payload["attempt"] for e in retries] == [2, 3]
    assert events(run).count("step.error") == 1
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert run.error.startswith("b: ") and "division by zero" in run.error
    assert events(run)[-1] == "run.error"


@pytest.mark.django_db(transaction=True)
def test_max_attempts_one_means_no_retry(personas):
    load(failing_flow(), orchestration(stages=[stage("s", bg("b", "broken", max_attempts=1))]))
    run = launch(record=make_case())
    assert step(run, "b").attempts == 1
    assert "step.retry_scheduled" not in events(run)
    assert fresh(run).status == RunStatus.ERROR


@pytest.mark.django_db(transaction=True)
def test_retries_back_off_exponentially(personas, settings):
    settings.ORCHESTRATION_RETRY_BASE_SECONDS = 5
    settings.ORCHESTRATION_RETRY_MAX_SECONDS = 12
    load(failing_flow(), orchestration(stages=[stage("s", bg("b", "broken", max_attempts=4))]))
    before = timezone.now()
    run = launch(record=make_case())
    delays = [
        e.payload["delay_seconds"]
        for e in RunEvent.objects.filter(run=run, name="orchestration.step.retry_scheduled").order_by("id")
    ]
    assert delays == [5.0, 10.0, 12.0]  # doubled each time, capped at the maximum
    sr = step(run, "b")
    assert sr.attempts == 4
    # The last retry was scheduled (eager Celery ran it at once, but the schedule is recorded).
    assert sr.next_attempt_at >= before + dt.timedelta(seconds=12)


@pytest.mark.django_db(transaction=True)
def test_a_failed_step_takes_its_stage_fault_path(personas):
    load(
        failing_flow(),
        screen_flow("review"),
        orchestration(
            stages=[
                stage("work", bg("b", "broken", max_attempts=2), task("t"), fault_path="recover"),
                stage("after", task("never")),
                stage("recover", task("fix")),
            ]
        ),
    )
    run = launch(record=make_case())
    run = fresh(run)
    assert run.status == RunStatus.IN_PROGRESS
    assert stages(run) == [("work", "error"), ("recover", "in_progress")]
    # The failed step keeps its error for admins; its sibling is discontinued with the stage.
    assert step_status(run) == {"b": "error", "t": "discontinued", "fix": "in_progress"}
    assert "division by zero" in step(run, "b").error
    assert WorkItem.objects.get(run=run, step_run__key="t").status == WorkItemStatus.CANCELED
    from orchestration.models import StageRun

    assert StageRun.objects.get(run=run, key="work").outcome == "fault path: b failed"
    workitem_complete(item=open_item(run, "fix"), user=personas.alice, data={})
    # recover is the last stage: the run ends there.
    assert fresh(run).status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_a_step_that_cannot_start_takes_the_fault_path_even_if_the_stage_could_exit(personas):
    # The stage's exit condition holds at once, but its step fails to start: the fault path
    # wins, and the failed stage's own routing must not end the fault stage it started.
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "work",
                    task("t", assignee={"expression": "'nobody_by_that_name'"}),
                    exit={"condition": "true"},
                    fault_path="recover",
                ),
                stage("after", task("a")),
                stage("recover", task("fix")),
            ]
        ),
    )
    run = launch(record=make_case())
    assert stages(run) == [("work", "error"), ("recover", "in_progress")]
    assert "no active user 'nobody_by_that_name'" in step(run, "t").error
    assert open_item(run, "fix").assignee_user == personas.alice


@pytest.mark.django_db(transaction=True)
def test_an_admin_retry_runs_the_step_again_and_the_run_completes(personas):
    load(divide_flow(), orchestration(stages=[stage("s", bg("b", "divide", max_attempts=2))], variables=[]))
    case = make_case(amount="0")
    run = launch(record=case)
    assert fresh(run).status == RunStatus.ERROR
    record_update(record=case, values={"amount": "4"})  # the admin fixes the data
    assert fresh(run).status == RunStatus.ERROR  # a record change does not retry by itself

    step_retry(step_run_id=step(run, "b").pk, actor=personas.admin, reason="fixed the amount")

    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert run.error == ""
    sr = step(run, "b")
    assert sr.status == StepStatus.COMPLETED
    assert sr.outputs == {"ratio": "25"}
    assert sr.attempts == 3  # two failed attempts and the admin's
    tail = events(run)[-6:]
    assert tail == [
        "step.retried",
        "run.recovered",
        "step.started",
        "step.completed",
        "stage.completed",
        "run.completed",
    ]
    retried = RunEvent.objects.get(run=run, name="orchestration.step.retried")
    assert retried.actor == personas.admin
    assert retried.payload == {"reason": "fixed the amount"}


@pytest.mark.django_db(transaction=True)
def test_an_admin_skip_completes_the_step_with_given_outputs(personas):
    load(
        failing_flow(),
        screen_flow("review"),
        orchestration(
            variables=[{"name": "x", "type": "number"}],
            stages=[
                stage("s", bg("b", "broken", max_attempts=1, outputs={"x": "x"})),
                stage("t", task("read", start={"condition": "steps.b.x == 7 and vars.x == 7"})),
            ],
        ),
    )
    run = launch(record=make_case())
    sr = step(run, "b")
    with pytest.raises(ValidationError) as exc:
        step_skip(step_run_id=sr.pk, outputs={"nope": 1}, actor=personas.admin)
    assert "nope" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        step_skip(step_run_id=sr.pk, outputs={"x": "seven"}, actor=personas.admin)
    assert "x" in exc.value.message_dict

    step_skip(step_run_id=sr.pk, outputs={"x": "7"}, actor=personas.admin, reason="done by hand")

    run = fresh(run)
    assert run.status == RunStatus.IN_PROGRESS
    sr = step(run, "b")
    assert sr.status == StepStatus.COMPLETED
    assert sr.outputs == {"x": 7}
    assert run.variables["x"] == 7
    assert step(run, "read").status == StepStatus.IN_PROGRESS
    skipped = RunEvent.objects.get(run=run, name="orchestration.step.skipped")
    assert skipped.actor == personas.admin


@pytest.mark.django_db
def test_retry_and_skip_are_refused_for_a_step_that_did_not_fail(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    sr = step(run, "a")
    with pytest.raises(ActionNotAllowed, match="only a failed step"):
        step_retry(step_run_id=sr.pk, actor=personas.admin)
    with pytest.raises(ActionNotAllowed, match="only a failed step"):
        step_skip(step_run_id=sr.pk, actor=personas.admin)


@pytest.mark.django_db(transaction=True)
def test_retry_and_skip_need_the_admin_permission(personas):
    load(failing_flow(), orchestration(stages=[stage("s", bg("b", "broken", max_attempts=1))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    with pytest.raises(PermissionDenied):
        step_retry(step_run_id=sr.pk, actor=personas.alice)
    with pytest.raises(PermissionDenied):
        step_skip(step_run_id=sr.pk, actor=personas.bob)
    assert step(run, "b").status == StepStatus.ERROR


@pytest.mark.django_db(transaction=True)
def test_a_run_in_error_waits_for_the_failed_step_while_other_work_goes_on(personas):
    load(
        failing_flow(),
        screen_flow("review"),
        orchestration(
            stages=[stage("s", bg("b", "broken", max_attempts=1), task("t")), stage("u", task("next"))]
        ),
    )
    run = launch(record=make_case())
    # The person can still finish their task; the stage does not move on without b.
    workitem_complete(item=open_item(run, "t"), user=personas.alice, data={})
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert stages(run) == [("s", "in_progress")]
    step_skip(step_run_id=step(run, "b").pk, outputs={"x": 1}, actor=personas.admin)
    assert stages(run) == [("s", "completed"), ("u", "in_progress")]
    assert fresh(run).status == RunStatus.IN_PROGRESS


@pytest.mark.django_db(transaction=True)
def test_an_interactive_step_whose_completion_condition_fails_can_be_retried(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("approve", completion={"condition": "record.amount > 100"}))]),
    )
    case = make_case()  # no amount: "None > 100" cannot be evaluated
    run = launch(record=case)
    sr = step(run, "approve")
    assert sr.status == StepStatus.ERROR
    assert "TypeError" in sr.error
    # Its work item is withdrawn: nobody should work on a step in error.
    assert not WorkItem.objects.filter(run=run, status=WorkItemStatus.ASSIGNED).exists()

    record_update(record=case, values={"amount": "50"})
    step_retry(step_run_id=sr.pk, actor=personas.admin)
    assert step(run, "approve").status == StepStatus.IN_PROGRESS
    assert open_item(run, "approve").assignee_user == personas.alice
    record_update(record=case, values={"amount": "500"})
    assert step(run, "approve").status == StepStatus.COMPLETED
    assert fresh(run).status == RunStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_a_successful_background_step_records_its_outputs_and_state(personas):
    load(auto_flow("score", outputs={"score": "42"}), orchestration(stages=[stage("s", bg("b", "score"))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    assert (sr.status, sr.exec_state, sr.attempts, sr.error) == (StepStatus.COMPLETED, ExecState.DONE, 1, "")
    assert sr.outputs == {"score": 42}
    assert fresh(run).step_outputs == {"b": {"score": 42}}
    assert stages(run)[0][1] == StageStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_skip_outputs_that_do_not_fit_the_mapped_variable_are_refused(personas):
    text_out = {
        "kind": "autolaunched_flow",
        "api_name": "text_out",
        "outputs": [{"name": "code", "type": "text"}],
        "actions": [{"type": "set_outputs", "values": {"code": "1 / 0"}}],
    }
    load(
        text_out,
        orchestration(
            variables=[{"name": "code", "type": "number"}],
            stages=[stage("s", bg("b", "text_out", max_attempts=1, outputs={"code": "code"}))],
        ),
    )
    run = launch(record=make_case())
    sr = step(run, "b")
    with pytest.raises(ValidationError, match="into variable 'code'"):
        step_skip(step_run_id=sr.pk, outputs={"code": "abc"}, actor=personas.admin)
    assert step(run, "b").status == StepStatus.ERROR  # nothing half-done
    step_skip(step_run_id=sr.pk, outputs={"code": "12"}, actor=personas.admin)
    run = fresh(run)
    assert (run.status, run.variables["code"]) == (RunStatus.COMPLETED, 12)


@pytest.mark.django_db
def test_two_stages_that_are_each_others_fault_path_stop_with_a_routing_loop_error(personas):
    # Both steps fail as they start (their assignee is empty), so each stage's failure enters
    # the other: this looped for ever inside the launch's transaction, holding the run lock.
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage("a", task("x", assignee={"expression": "record.description"}), fault_path="b"),
                stage("b", task("y", assignee={"expression": "record.description"}), fault_path="a"),
            ]
        ),
    )
    run = fresh(launch(record=make_case()))
    assert run.status == RunStatus.ERROR
    assert "routing loop" in run.error
    from orchestration.models import StageRun

    assert 50 <= StageRun.objects.filter(run=run).count() <= 60
    # Stopped with the stage it was entering in progress, as a re-check needs it.
    in_progress = StageRun.objects.filter(run=run, status="in_progress").values_list("key", flat=True)
    assert list(in_progress) == [run.current_stage]
    assert WorkItem.objects.filter(run=run).count() == 0
