"""Stages run one at a time, in the order they are written."""

from __future__ import annotations

import itertools

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestration.models import RunStatus, StageRun
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.services import workitem_complete

from .engine_support import bg, events, fresh, launch, open_item, stage, stages, task


@pytest.mark.django_db
def test_each_stage_starts_only_when_the_previous_one_completed(personas):
    load(
        screen_flow("review"),
        orchestration(
            stages=[stage("intake", task("a")), stage("review", task("b")), stage("close", task("c"))]
        ),
    )
    run = launch(record=make_case())
    assert stages(run) == [("intake", "in_progress")]
    assert run.current_stage == "intake"

    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    assert stages(run) == [("intake", "completed"), ("review", "in_progress")]
    assert fresh(run).current_stage == "review"

    workitem_complete(item=open_item(run, "b"), user=personas.alice, data={})
    assert stages(run) == [("intake", "completed"), ("review", "completed"), ("close", "in_progress")]

    workitem_complete(item=open_item(run, "c"), user=personas.alice, data={})
    assert [s for _, s in stages(run)] == ["completed"] * 3
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert run.current_stage == ""
    assert run.ended_at is not None


@pytest.mark.django_db(transaction=True)
def test_stages_that_complete_in_one_go_still_run_strictly_one_after_another(personas):
    load(
        auto_flow("noop"),
        orchestration(
            stages=[
                stage("one", bg("s1", "noop")),
                stage("two", bg("s2", "noop")),
                stage("three", bg("s3", "noop")),
            ]
        ),
    )
    run = launch(record=make_case())
    assert run.status == RunStatus.COMPLETED
    stage_events = [e for e in events(run) if e.startswith("stage.")]
    assert stage_events == [
        "stage.started",
        "stage.completed",
        "stage.started",
        "stage.completed",
        "stage.started",
        "stage.completed",
    ]
    rows = list(StageRun.objects.filter(run=run).order_by("id"))
    assert [r.key for r in rows] == ["one", "two", "three"]
    assert [r.index for r in rows] == [0, 1, 2]
    # Each stage ended before (or when) the next began.
    for earlier, later in itertools.pairwise(rows):
        assert earlier.ended_at is not None and earlier.ended_at <= later.started_at


@pytest.mark.django_db
def test_the_database_refuses_a_second_stage_in_progress(personas):
    load(screen_flow("review"), orchestration(stages=[stage("a", task("x")), stage("b", task("y"))]))
    run = launch(record=make_case())
    with pytest.raises(IntegrityError), transaction.atomic():
        StageRun.objects.create(run=run, key="b", index=1, status="in_progress", started_at=timezone.now())
    # A finished stage next to the one in progress is fine.
    StageRun.objects.create(run=run, key="b", index=1, status="completed", started_at=timezone.now())
