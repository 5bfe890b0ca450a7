"""When a stage ends (all steps completed, an exit condition, an evaluation flow) and when an
interactive step completes without its assignee (a completion condition or evaluation flow)."""

from __future__ import annotations

import pytest

from orchestration.models import RunStatus, StageStatus, StepStatus
from records.services import record_update
from tests.factories import eval_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

from .engine_support import events, fresh, launch, open_item, stage, stages, step, step_status, task


@pytest.mark.django_db
def test_by_default_a_stage_ends_when_every_step_completed(personas):
    load(
        screen_flow("review"), orchestration(stages=[stage("s", task("a"), task("b")), stage("t", task("c"))])
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    assert stages(run) == [("s", "in_progress")]
    workitem_complete(item=open_item(run, "b"), user=personas.alice, data={})
    assert stages(run) == [("s", "completed"), ("t", "in_progress")]


@pytest.mark.django_db(transaction=True)
def test_an_exit_condition_ends_the_stage_and_discontinues_open_steps(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "triage",
                    task("quick"),
                    task("slow"),
                    task("later", start={"after": ["slow"]}),
                    exit={"condition": "record.status == 'resolved'"},
                ),
                stage("close", task("wrap")),
            ]
        ),
    )
    case = make_case()
    run = launch(record=case)
    workitem_complete(item=open_item(run, "quick"), user=personas.alice, data={})
    slow_item = open_item(run, "slow")

    record_update(record=case, values={"status": "resolved"})

    assert stages(run) == [("triage", "completed"), ("close", "in_progress")]
    assert step_status(run) == {
        "quick": "completed",
        "slow": "discontinued",
        "later": "discontinued",
        "wrap": "in_progress",
    }
    slow_item.refresh_from_db()
    assert slow_item.status == WorkItemStatus.CANCELED
    assert events(run).count("step.discontinued") == 2
    # The person who still had the item cannot complete it any more.
    from workitems.services import WorkItemClosed

    with pytest.raises(WorkItemClosed, match="canceled"):
        workitem_complete(item=slow_item, user=personas.alice, data={})


@pytest.mark.django_db
def test_an_exit_condition_that_does_not_hold_keeps_the_stage_open_after_all_steps(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[stage("s", task("a"), exit={"condition": "vars.done"})],
            variables=[{"name": "done", "type": "boolean"}],
        ),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    run = fresh(run)
    assert run.status == RunStatus.IN_PROGRESS
    assert stages(run) == [("s", "in_progress")]
    assert run.recheck is True


@pytest.mark.django_db
def test_an_exit_evaluation_flow_decides_when_the_stage_ends(personas):
    load(
        screen_flow("review"),
        eval_flow("enough", "steps.a.approved"),
        orchestration(stages=[stage("s", task("a"), task("b"), exit={"evaluation_flow": "enough"})]),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={"approved": "true"})
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert step(run, "b").status == StepStatus.DISCONTINUED


@pytest.mark.django_db
def test_an_exit_evaluation_flow_saying_no_keeps_the_stage_open(personas):
    load(
        screen_flow("review"),
        eval_flow("enough", "steps.a.approved"),
        orchestration(stages=[stage("s", task("a"), task("b"), exit={"evaluation_flow": "enough"})]),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={"approved": "false"})
    assert stages(run) == [("s", "in_progress")]
    assert step(run, "b").status == StepStatus.IN_PROGRESS


@pytest.mark.django_db(transaction=True)
def test_an_interactive_step_completes_when_its_completion_condition_holds(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[stage("s", task("approve", completion={"condition": "record.status == 'approved'"}))]
        ),
    )
    case = make_case()
    run = launch(record=case)
    item = open_item(run, "approve")
    record_update(record=case, values={"status": "approved"})
    item.refresh_from_db()
    assert item.status == WorkItemStatus.CANCELED  # nobody has to finish it now
    sr = step(run, "approve")
    assert sr.status == StepStatus.COMPLETED
    assert sr.outputs == {}
    assert fresh(run).status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_an_interactive_step_completes_when_its_evaluation_flow_says_so(personas):
    load(
        screen_flow("review"),
        eval_flow("first_done", "steps.first.approved"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("first"),
                    task("second", completion={"evaluation_flow": "first_done"}),
                )
            ]
        ),
    )
    run = launch(record=make_case())
    second = open_item(run, "second")
    workitem_complete(item=open_item(run, "first"), user=personas.alice, data={"approved": "true"})
    second.refresh_from_db()
    assert second.status == WorkItemStatus.CANCELED
    assert step(run, "second").status == StepStatus.COMPLETED
    assert fresh(run).status == RunStatus.COMPLETED
    assert stages(run)[0][1] == StageStatus.COMPLETED


@pytest.mark.django_db
def test_the_assignee_can_still_finish_a_step_that_has_a_completion_condition(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a", completion={"condition": "record.status == 'x'"}))]),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={"comment": "done by hand"})
    assert step(run, "a").outputs["comment"] == "done by hand"
    assert fresh(run).status == RunStatus.COMPLETED
    assert not WorkItem.objects.filter(run=run, status="assigned").exists()
