"""When steps start: with their stage (in parallel), after named steps, on a condition (which a
record update can make true), or when an evaluation flow says so."""

from __future__ import annotations

import pytest

from orchestration.models import RunStatus, StepStatus
from records.services import record_update
from tests.factories import auto_flow, eval_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem
from workitems.services import workitem_complete

from .engine_support import bg, events, fresh, launch, open_item, stage, step, step_status, task


@pytest.mark.django_db
def test_steps_without_a_start_gate_all_start_with_their_stage(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"), task("b"), task("c"))]))
    run = launch(record=make_case())
    assert step_status(run) == {"a": "in_progress", "b": "in_progress", "c": "in_progress"}
    assert WorkItem.objects.filter(run=run, status="assigned").count() == 3
    # Finishing them in any order: the stage waits for all three.
    workitem_complete(item=open_item(run, "c"), user=personas.alice, data={})
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    assert fresh(run).status == RunStatus.IN_PROGRESS
    workitem_complete(item=open_item(run, "b"), user=personas.alice, data={})
    assert fresh(run).status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_a_step_after_another_waits_for_it(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("first"), task("second", start={"after": ["first"]}))]),
    )
    run = launch(record=make_case())
    assert step_status(run) == {"first": "in_progress", "second": "not_started"}
    assert not WorkItem.objects.filter(run=run, step_run__key="second").exists()
    workitem_complete(item=open_item(run, "first"), user=personas.alice, data={})
    assert step_status(run) == {"first": "completed", "second": "in_progress"}


@pytest.mark.django_db
def test_diamond_dependencies_join_after_both_branches(personas):
    # a -> (b, c) -> d
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("a"),
                    task("b", start={"after": ["a"]}),
                    task("c", start={"after": ["a"]}),
                    task("d", start={"after": ["b", "c"]}),
                )
            ]
        ),
    )
    run = launch(record=make_case())
    assert step_status(run) == {k: "not_started" for k in "bcd"} | {"a": "in_progress"}
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    assert step_status(run) == {"a": "completed", "b": "in_progress", "c": "in_progress", "d": "not_started"}
    workitem_complete(item=open_item(run, "c"), user=personas.alice, data={})
    assert step(run, "d").status == StepStatus.NOT_STARTED  # b is still open
    workitem_complete(item=open_item(run, "b"), user=personas.alice, data={})
    assert step(run, "d").status == StepStatus.IN_PROGRESS
    workitem_complete(item=open_item(run, "d"), user=personas.alice, data={})
    assert fresh(run).status == RunStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_background_diamond_runs_to_completion_in_dependency_order(personas):
    load(
        auto_flow("noop"),
        orchestration(
            stages=[
                stage(
                    "s",
                    bg("a", "noop"),
                    bg("b", "noop", start={"after": ["a"]}),
                    bg("c", "noop", start={"after": ["a"]}),
                    bg("d", "noop", start={"after": ["b", "c"]}),
                )
            ]
        ),
    )
    run = launch(record=make_case())
    assert run.status == RunStatus.COMPLETED
    s = {k: step(run, k) for k in "abcd"}
    assert s["a"].ended_at <= min(s["b"].started_at, s["c"].started_at)
    assert max(s["b"].ended_at, s["c"].ended_at) <= s["d"].started_at


@pytest.mark.django_db
def test_a_step_with_a_start_condition_starts_only_when_it_holds(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("always"),
                    task("big", start={"condition": "record.amount > 1000"}),
                    task("small", start={"condition": "record.amount <= 1000"}),
                )
            ]
        ),
    )
    run = launch(record=make_case(amount="50"))
    assert step_status(run) == {"always": "in_progress", "big": "not_started", "small": "in_progress"}
    # The run waits on a condition: the periodic sweep knows to re-check it.
    assert fresh(run).recheck is True


@pytest.mark.django_db(transaction=True)
def test_a_record_update_rechecks_the_runs_on_that_record(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("ready", start={"condition": "record.status == 'ready'"}))]),
    )
    case = make_case(status="draft")
    run = launch(record=case)
    assert step(run, "ready").status == StepStatus.NOT_STARTED

    record_update(record=case, values={"status": "almost"})
    assert step(run, "ready").status == StepStatus.NOT_STARTED
    record_update(record=case, values={"status": "ready"})
    assert step(run, "ready").status == StepStatus.IN_PROGRESS
    assert open_item(run, "ready").assignee_user == personas.alice
    assert fresh(run).recheck is False  # nothing left to wait on


@pytest.mark.django_db(transaction=True)
def test_a_record_update_in_a_rolled_back_transaction_rechecks_nothing(personas):
    from django.db import transaction

    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("ready", start={"condition": "record.status == 'ready'"}))]),
    )
    case = make_case(status="draft")
    run = launch(record=case)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        record_update(record=case, values={"status": "ready"})
        raise Boom
    assert step(run, "ready").status == StepStatus.NOT_STARTED


@pytest.mark.django_db
def test_a_step_gated_by_an_evaluation_flow(personas):
    load(
        screen_flow("review"),
        eval_flow("is_high", "record.severity == 'High'"),
        eval_flow("is_low", "record.severity == 'Low'"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("escalate", start={"evaluation_flow": "is_high"}),
                    task("routine", start={"evaluation_flow": "is_low"}),
                )
            ]
        ),
    )
    run = launch(record=make_case(severity="Low"))
    assert step_status(run) == {"escalate": "not_started", "routine": "in_progress"}
    assert "step.started" in events(run)


@pytest.mark.django_db
def test_an_evaluation_flow_sees_its_input_defaults(personas):
    threshold = {
        "kind": "evaluation_flow",
        "api_name": "over_threshold",
        "inputs": [{"name": "threshold", "type": "decimal", "default": "'100'"}],
        "actions": [
            {"type": "set_outputs", "values": {"is_condition_met": "record.amount > inputs.threshold"}}
        ],
    }
    load(
        screen_flow("review"),
        threshold,
        orchestration(
            stages=[stage("s", task("big", start={"evaluation_flow": "over_threshold"}), task("t"))]
        ),
    )
    assert step(launch(record=make_case(amount="150")), "big").status == StepStatus.IN_PROGRESS
    assert step(launch(record=make_case(amount="50")), "big").status == StepStatus.NOT_STARTED
