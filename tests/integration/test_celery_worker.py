"""End to end through a real Celery worker process and Redis."""

from __future__ import annotations

import pytest

from orchestration.models import ExecState, Run, RunEvent, RunStatus, StepRun
from orchestration.services import run_launch
from records.models import Record
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem
from workitems.services import workitem_complete

from .conftest import wait_for

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def _diamond() -> None:
    load(
        auto_flow("fa", outputs={"x": "1"}),
        auto_flow("fb", outputs={"x": "steps.a.x + 1"}),
        auto_flow("fc", outputs={"x": "steps.a.x + 2"}),
        auto_flow("fd", outputs={"x": "steps.b.x + steps.c.x"}),
        screen_flow("review"),
        orchestration(
            "diamond",
            variables=[{"name": "total", "type": "number"}],
            stages=[
                {
                    "key": "work",
                    "steps": [
                        {"key": "a", "kind": "background", "flow": "fa"},
                        {"key": "b", "kind": "background", "flow": "fb", "start": {"after": ["a"]}},
                        {"key": "c", "kind": "background", "flow": "fc", "start": {"after": ["a"]}},
                        {
                            "key": "d",
                            "kind": "background",
                            "flow": "fd",
                            "start": {"after": ["b", "c"]},
                            "outputs": {"total": "x"},
                        },
                    ],
                },
                {
                    "key": "check",
                    "steps": [
                        {"key": "r", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}},
                    ],
                },
            ],
        ),
    )


def test_worker_runs_background_steps_end_to_end(personas, celery_worker_process):
    _diamond()
    runs = [run_launch(orchestration="diamond", record=make_case(f"Case {i}")) for i in range(5)]
    for run in runs:
        wait_for(lambda run=run: Run.objects.get(pk=run.pk).current_stage == "check")
    for run in runs:
        run.refresh_from_db()
        assert run.variables["total"] == 5  # d = (1+1) + (1+2)
        assert run.step_outputs["d"] == {"x": 5}
        # The worker ran each step exactly once.
        assert (
            StepRun.objects.filter(run=run, kind="background", attempts=1, exec_state=ExecState.DONE).count()
            == 4
        )
        item = WorkItem.objects.get(run=run)
        workitem_complete(item=item, user=personas.alice, data={"approved": "true"})
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED


def test_duplicate_delivery_runs_the_flow_once(personas, celery_worker_process, tmp_path):
    """The same task message delivered twice (e.g. a redelivery after a lost ack) must not
    run the step's effects twice: the second delivery finds the attempt already claimed."""
    load(
        auto_flow(
            "make_task",
            outputs={"created": "outputs.created"},
            actions=[
                {
                    "type": "create_record",
                    "record_type": "case",
                    "name": "'follow-up'",
                    "values": {"severity": "'Low'"},
                    "output": "created",
                },
            ],
        ),
        orchestration(
            "dup", stages=[{"key": "s", "steps": [{"key": "a", "kind": "background", "flow": "make_task"}]}]
        ),
    )
    from orchestration.tasks import run_background_step

    case = make_case("origin")
    run = run_launch(orchestration="dup", record=case)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.COMPLETED)
    step = StepRun.objects.get(run=run, key="a")
    # Deliver the same attempt twice more: both must be recognised and ignored. The worker logs
    # each task's result (INFO): wait until both have said "duplicate".
    sent = [run_background_step.delay(step.pk, step.attempts).id for _ in range(2)]
    log = tmp_path / "worker.log"

    def both_answered() -> bool:
        text = log.read_text()
        return all(f"[{task_id}] succeeded" in text for task_id in sent)

    wait_for(both_answered)
    answers = [line for line in log.read_text().splitlines() if any(f"[{t}] succeeded" in line for t in sent)]
    assert len(answers) == 2 and all(line.endswith("'duplicate'") for line in answers), answers
    assert Record.objects.filter(name="follow-up").count() == 1
    assert RunEvent.objects.filter(run=run, name="orchestration.step.completed", step="a").count() == 1


def test_failing_step_retries_on_the_worker_then_errors(personas, celery_worker_process):
    load(
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration(
            "fails",
            stages=[
                {"key": "s", "steps": [{"key": "a", "kind": "background", "flow": "boom", "max_attempts": 3}]}
            ],
        ),
    )
    run = run_launch(orchestration="fails", record=make_case())
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.ERROR)
    step = StepRun.objects.get(run=run, key="a")
    assert step.attempts == 3
    assert "division by zero" in step.error
    assert RunEvent.objects.filter(run=run, name="orchestration.step.retry_scheduled").count() == 2
