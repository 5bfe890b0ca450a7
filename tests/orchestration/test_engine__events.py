"""Statuses follow Salesforce's names, and every transition appends a dotted event with its
actor (the person whose action caused it, or nobody for the system)."""

from __future__ import annotations

import pytest

from orchestration.models import RunEvent, RunStatus, StageStatus, StepStatus
from orchestration.services import run_cancel
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItemStatus
from workitems.services import workitem_complete

from .engine_support import bg, launch, open_item, stage, task


def test_statuses_are_salesforces():
    assert set(RunStatus.values) == {
        "not_started",
        "in_progress",
        "completed",
        "error",
        "canceled",
        "suspended",
    }
    assert set(StageStatus.values) == {
        "not_started",
        "in_progress",
        "completed",
        "error",
        "canceled",
        "discontinued",
    }
    assert set(StepStatus.values) == set(StageStatus.values)
    assert set(WorkItemStatus.values) == {"assigned", "completed", "canceled"}


def _trail(run) -> list[tuple[str, str, str, str | None]]:
    return [
        (e.name, e.stage, e.step, e.actor.username if e.actor else None)
        for e in RunEvent.objects.filter(run=run).select_related("actor").order_by("id")
    ]


@pytest.mark.django_db
def test_every_transition_is_an_event_with_its_actor(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("one", task("a", user="alice")), stage("two", task("b", user="bob"))]),
    )
    run = launch(record=make_case(), actor=personas.admin)
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    workitem_complete(item=open_item(run, "b"), user=personas.bob, data={})
    assert _trail(run) == [
        ("orchestration.run.started", "", "", "admin"),
        # What the engine then does by itself is the system's: the admin launched the run, they
        # did not start its stage and step (the run page once credited them, or a record's
        # creator, with every step the system started).
        ("orchestration.stage.started", "one", "", None),
        ("orchestration.step.started", "one", "a", None),
        ("orchestration.step.completed", "one", "a", "alice"),
        ("orchestration.stage.completed", "one", "", None),
        ("orchestration.stage.started", "two", "", None),
        ("orchestration.step.started", "two", "b", None),
        ("orchestration.step.completed", "two", "b", "bob"),
        ("orchestration.stage.completed", "two", "", None),
        ("orchestration.run.completed", "", "", None),
    ]
    completed = RunEvent.objects.get(run=run, name="orchestration.step.completed", step="a")
    assert completed.payload["outputs"] == {"approved": False, "comment": None}
    assert run.started_by == personas.admin


@pytest.mark.django_db(transaction=True)
def test_system_transitions_have_no_actor(personas):
    load(auto_flow("noop"), orchestration(stages=[stage("s", bg("b", "noop"))]))
    run = launch(record=make_case())
    trail = _trail(run)
    assert [t[0].removeprefix("orchestration.") for t in trail] == [
        "run.started",
        "stage.started",
        "step.started",
        "step.completed",
        "stage.completed",
        "run.completed",
    ]
    assert {t[3] for t in trail} == {None}


@pytest.mark.django_db
def test_cancel_records_who_canceled_and_what_was_stopped(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a"), task("b", start={"after": ["a"]}))]),
    )
    run = launch(record=make_case())
    run_cancel(run_id=run.pk, actor=personas.admin, reason="duplicate case")
    trail = [t for t in _trail(run) if t[3] == "admin"]
    assert trail == [
        ("orchestration.step.discontinued", "s", "a", "admin"),
        ("orchestration.step.discontinued", "s", "b", "admin"),
        ("orchestration.stage.canceled", "s", "", "admin"),
        ("orchestration.run.canceled", "", "", "admin"),
        ("orchestration.run.cancel_reason", "", "", "admin"),
    ]
    assert RunEvent.objects.get(run=run, name="orchestration.run.cancel_reason").payload == {
        "reason": "duplicate case"
    }


@pytest.mark.django_db
def test_events_are_append_only_rows_in_order(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    first = list(RunEvent.objects.filter(run=run).order_by("id").values_list("id", "name", "created_at"))
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    after = list(RunEvent.objects.filter(run=run).order_by("id").values_list("id", "name", "created_at"))
    assert after[: len(first)] == first  # nothing rewritten, only appended
    assert len(after) > len(first)
    assert all(name.count(".") >= 2 for _, name, _ in after)
