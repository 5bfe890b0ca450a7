"""Routing between stages: the next stage by default, a named stage or 'end', or a decision
whose ordered outcomes are tried in turn (first true wins) with a default."""

from __future__ import annotations

import pytest

from orchestration.models import RunEvent, RunStatus, StageRun
from tests.factories import load, make_case, orchestration, screen_flow
from workitems.services import workitem_complete

from .engine_support import events, fresh, launch, open_item, stage, stages, task

DECISION = {
    "outcomes": [
        {"label": "Huge", "when": "record.amount > 10000", "goto": "board"},
        {"label": "Big", "when": "record.amount > 1000", "goto": "manager"},
        {"when": "record.severity == 'High'", "goto": "manager"},
    ],
    "default": "end",
}


def _load_decision() -> None:
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage("intake", task("check"), next=DECISION),
                stage("manager", task("m"), next="end"),
                stage("board", task("b")),
            ]
        ),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "severity", "route", "outcome"),
    [
        ("20000", "Low", "board", "Huge"),  # both Huge and Big hold: the first wins
        ("5000", "Low", "manager", "Big"),
        ("10", "High", "manager", "outcome 3: record.severity == 'High'"),
        ("10", "Low", None, "default"),
    ],
)
def test_decision_outcomes_are_tried_in_order(personas, amount, severity, route, outcome):
    _load_decision()
    run = launch(record=make_case(amount=amount, severity=severity))
    workitem_complete(item=open_item(run, "check"), user=personas.alice, data={})
    run = fresh(run)
    intake = StageRun.objects.get(run=run, key="intake")
    assert intake.outcome == outcome
    decision = RunEvent.objects.get(run=run, name="orchestration.stage.decision")
    assert decision.payload == {"outcome": outcome, "goto": route or "end"}
    assert decision.actor is None  # the engine decided, after alice's completion
    if route is None:
        assert run.status == RunStatus.COMPLETED
        assert stages(run) == [("intake", "completed")]
    else:
        assert stages(run) == [("intake", "completed"), (route, "in_progress")]


@pytest.mark.django_db
def test_next_names_a_stage_or_end(personas):
    _load_decision()
    run = launch(record=make_case(amount="5000"))
    workitem_complete(item=open_item(run, "check"), user=personas.alice, data={})
    workitem_complete(item=open_item(run, "m"), user=personas.alice, data={})
    run = fresh(run)
    # manager says next: end, so board never runs.
    assert run.status == RunStatus.COMPLETED
    assert [k for k, _ in stages(run)] == ["intake", "manager"]


@pytest.mark.django_db
def test_a_decision_can_send_the_run_back_to_an_earlier_stage(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage("draft", task("write")),
                stage(
                    "review",
                    task("check"),
                    next={
                        "outcomes": [
                            {"label": "Rework", "when": "not steps.check.approved", "goto": "draft"}
                        ],
                        "default": "end",
                    },
                ),
            ]
        ),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "write"), user=personas.alice, data={"comment": "v1"})
    workitem_complete(item=open_item(run, "check"), user=personas.alice, data={"approved": "false"})
    # Back to draft: a new stage run, a new step run and a new work item.
    assert stages(run) == [("draft", "completed"), ("review", "completed"), ("draft", "in_progress")]
    assert StageRun.objects.get(run=run, key="review").outcome == "Rework"
    workitem_complete(item=open_item(run, "write"), user=personas.alice, data={"comment": "v2"})
    workitem_complete(item=open_item(run, "check"), user=personas.alice, data={"approved": "true"})
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert [k for k, _ in stages(run)] == ["draft", "review", "draft", "review"]
    assert run.step_outputs["write"]["comment"] == "v2"  # the latest pass wins
    assert [r.outcome for r in StageRun.objects.filter(run=run, key="review").order_by("id")] == [
        "Rework",
        "default",
    ]
    assert events(run).count("stage.decision") == 2


@pytest.mark.django_db
def test_a_decision_that_cannot_be_evaluated_puts_the_run_in_error(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("a"),
                    next={"outcomes": [{"when": "record.amount / 0 > 1", "goto": "end"}], "default": "end"},
                )
            ]
        ),
    )
    run = launch(record=make_case(amount="5"))
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})  # does not raise
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert "ZeroDivisionError" in run.error and "stage 's'" in run.error
    assert stages(run) == [("s", "in_progress")]  # re-check can move it on once fixed


@pytest.mark.django_db
def test_a_loop_that_never_waits_is_stopped_with_an_error(personas):
    # Each pass the stage exits at once and its decision sends the run back to it.
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "spin",
                    task("a", start={"condition": "false"}),
                    exit={"condition": "true"},
                    next={"outcomes": [{"when": "true", "goto": "spin"}], "default": "end"},
                )
            ]
        ),
    )
    run = fresh(launch(record=make_case()))
    assert run.status == RunStatus.ERROR
    assert "routing loop" in run.error
    assert StageRun.objects.filter(run=run).count() <= 60


@pytest.mark.django_db
def test_recheck_after_a_routing_loop_goes_on_from_the_loop_not_from_the_first_stage(personas):
    # The loop error ends the stage it was leaving; "no stage in progress" must not then read as
    # a fresh run when an admin re-checks it (that restarted the run at stage 0: its first step
    # ran again and a second work item was assigned for it).
    from orchestration.services import run_recheck

    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage("first", task("a")),
                stage(
                    "spin",
                    task("s", start={"condition": "false"}),
                    exit={"condition": "true"},
                    next={"outcomes": [{"when": "true", "goto": "spin"}], "default": "end"},
                ),
            ]
        ),
    )
    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    run = fresh(run)
    assert run.status == RunStatus.ERROR and "routing loop" in run.error
    # The run stopped in the loop: its stage is the one to re-check, not the first one.
    assert run.current_stage == "spin"
    assert (
        StageRun.objects.filter(run=run, status="in_progress").values_list("key", flat=True).get() == "spin"
    )

    run_recheck(run_id=run.pk, actor=personas.admin)
    run = fresh(run)
    assert StageRun.objects.filter(run=run, key="first").count() == 1
    from workitems.models import WorkItem

    assert WorkItem.objects.filter(run=run).count() == 1  # a's only item, completed above
    assert run.status == RunStatus.ERROR and "routing loop" in run.error
    assert run.current_stage == "spin"
    assert events(run).count("run.rechecked") == 1
