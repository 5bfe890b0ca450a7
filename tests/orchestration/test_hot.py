"""orchestration/hot.py reads the engine's hottest rows with plain SQL: what it returns must be
what the ORM returns, value for value (JSON, dates, booleans, nulls), on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from orchestration import hot
from orchestration.models import (
    FlowVersion,
    Orchestration,
    OrchestrationVersion,
    Run,
    StageRun,
    StageStatus,
    StepRun,
)
from orchestration.services import run_launch
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow

pytestmark = pytest.mark.django_db


def values(obj: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields if f.attname not in skip
    }


def world(personas: Any) -> Run:
    load(
        auto_flow("calc", outputs={"x": "1"}),
        screen_flow("review"),
        orchestration(
            "hot",
            variables=[{"name": "note", "type": "text", "default": "'ünïcode'"}],
            stages=[
                {
                    "key": "one",
                    "steps": [
                        {
                            "key": "ask",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"user": "alice"},
                        },
                        {"key": "calc", "kind": "background", "flow": "calc", "start": {"after": ["ask"]}},
                    ],
                }
            ],
        ),
    )
    run = run_launch(orchestration="hot", record=make_case("Hot"), actor=personas.admin)
    # Every kind of value in the rows: JSON with nesting, a null date, an error text.
    Run.objects.filter(pk=run.pk).update(step_outputs={"a": {"b": [1, 2.5, None, True]}}, error="x" * 10)
    return run


def test_the_locked_run_is_the_orm_s_run_with_its_version_document_deferred(personas: Any) -> None:
    from django.db import transaction

    run = world(personas)
    with transaction.atomic():
        got = hot.lock_run(run.pk)
    orm = Run.objects.select_related("version").get(pk=run.pk)
    assert values(got) == values(orm)
    assert got.step_outputs == {"a": {"b": [1, 2.5, None, True]}}
    assert values(got.version, skip=("document",)) == values(orm.version, skip=("document",))
    assert "document" in got.version.get_deferred_fields()
    assert got.version.document == orm.version.document  # loads when touched
    with pytest.raises(Run.DoesNotExist):
        hot.lock_run(run.pk + 1000)


def test_the_stage_in_progress_and_its_steps_are_the_orm_s(personas: Any) -> None:
    run = world(personas)
    StepRun.objects.filter(run=run, key="ask").update(claimed_at=timezone.now(), inputs={"k": ["v"]})
    stage, steps = hot.stage_in_progress(run.pk)
    orm = list(
        StepRun.objects.filter(run=run, stage_run__status=StageStatus.IN_PROGRESS)
        .select_related("stage_run")
        .order_by("id")
    )
    assert [values(s) for s in steps] == [values(s) for s in orm]
    assert stage is not None and values(stage) == values(orm[0].stage_run)
    assert all(s.stage_run is stage for s in steps)  # one object, as the engine expects
    StageRun.objects.filter(run=run).update(status=StageStatus.COMPLETED)
    assert hot.stage_in_progress(run.pk) == (None, [])


def test_active_flow_versions_are_the_orm_s(personas: Any) -> None:
    world(personas)
    load(auto_flow("calc", outputs={"x": "2"}))  # a second version of calc, now the active one
    got = hot.active_flow_versions(["calc", "review", "nonexistent"])
    assert set(got) == {"calc", "review"}
    for name, version in got.items():
        orm = FlowVersion.objects.get(flow__api_name=name, is_active=True)
        assert values(version, skip=("document",)) == values(orm, skip=("document",))
        assert version.document == orm.document
    assert got["calc"].number == 2
    assert hot.active_flow_versions([]) == {}


def test_the_statements_are_written_once_per_process(personas: Any) -> None:
    run = world(personas)
    hot.stage_in_progress(run.pk)
    # Names come from the models, never values: the same text for every run.
    assert "%s" in hot._stage_sql(connection.vendor)
    assert str(run.pk) not in hot._stage_sql(connection.vendor)
    assert OrchestrationVersion._meta.db_table in hot._lock_sql(connection.vendor)


def test_a_claim_returns_the_orm_s_step_and_run_once(personas: Any) -> None:
    from orchestration.models import ExecState

    if connection.vendor != "postgresql":
        pytest.skip("the claim is one statement on PostgreSQL only (an UPDATE, then a SELECT elsewhere)")
    run = world(personas)
    step = StepRun.objects.get(run=run, key="calc")
    StepRun.objects.filter(pk=step.pk).update(
        status=StageStatus.IN_PROGRESS,
        exec_state=ExecState.QUEUED,
        attempts=2,
        inputs={"n": [1]},
        flow_version=FlowVersion.objects.get(flow__api_name="calc", is_active=True),
    )
    now = timezone.now()
    assert hot.claim_step(step.pk, 1, now=now) is None  # another attempt
    got = hot.claim_step(step.pk, 2, now=now)
    assert got is not None
    orm = StepRun.objects.select_related("run", "run__version", "flow_version").get(pk=step.pk)
    assert orm.exec_state == ExecState.RUNNING and orm.claimed_at == now
    assert values(got) == values(orm)
    assert values(got.run) == values(orm.run)
    assert (got.run.version.pk, got.run.version.checksum) == (orm.run.version.pk, orm.run.version.checksum)
    assert got.flow_version is not None and orm.flow_version is not None
    assert got.flow_version.checksum == orm.flow_version.checksum
    assert got.flow_version.document == orm.flow_version.document  # loads when touched
    assert hot.claim_step(step.pk, 2, now=now) is None  # a duplicate delivery claims nothing


# --- writes -----------------------------------------------------------------------------------


def test_an_inserted_row_reads_back_as_the_orm_would_have_written_it(personas: Any) -> None:
    from orchestration.models import RunEvent

    run = world(personas)
    ours = RunEvent(run_id=run.pk, name="x.ours", payload={"a": [1, "ü", None], "b": 1.5}, step="s")
    theirs = RunEvent.objects.create(
        run_id=run.pk, name="x.orm", payload={"a": [1, "ü", None], "b": 1.5}, step="s"
    )
    hot.insert([ours])
    assert ours.pk is not None and not ours._state.adding
    read = RunEvent.objects.get(pk=ours.pk)
    assert read.created_at is not None  # auto_now_add, as the ORM's pre_save sets it
    skip = ("id", "name", "created_at")
    assert values(read, skip=skip) == values(RunEvent.objects.get(pk=theirs.pk), skip=skip)


def test_several_rows_get_their_own_keys_in_order(personas: Any) -> None:
    from orchestration.models import RunEvent

    run = world(personas)
    events = [RunEvent(run_id=run.pk, name=f"x.{i}", payload={"i": i}) for i in range(5)]
    hot.insert(events)
    assert [RunEvent.objects.get(pk=e.pk).payload for e in events] == [{"i": i} for i in range(5)]


def test_an_update_writes_only_the_fields_named(personas: Any) -> None:
    run = world(personas)
    stale = Run.objects.get(pk=run.pk)
    run.variables = {"note": "changed", "n": [1, 2]}
    run.error = "not written"
    hot.update(run, ["variables"])
    read = Run.objects.get(pk=run.pk)
    assert read.variables == {"note": "changed", "n": [1, 2]}
    assert read.error == stale.error


def test_get_is_the_orm_s_row_with_the_joined_one(personas: Any) -> None:
    from workitems.models import WorkItem

    world(personas)
    item = WorkItem.objects.get()
    ours = hot.get(WorkItem, item.pk, join=["step_run"])
    assert values(ours) == values(item)
    assert values(ours.step_run) == values(item.step_run)
    with pytest.raises(WorkItem.DoesNotExist):
        hot.get(WorkItem, 0)


def test_no_model_signal_is_connected_to_the_rows_written_without_the_orm() -> None:
    """hot.insert and hot.update send no pre_save/post_save, hot.instance no pre_init/post_init:
    a receiver added for these models would silently never run. Connect one, and this test says
    where to look."""
    from django.db.models import signals

    from orchestration.models import RunEvent
    from workitems.models import WorkItem

    for model in (
        Run,
        StageRun,
        StepRun,
        RunEvent,
        WorkItem,
        OrchestrationVersion,
        FlowVersion,
        Orchestration,
    ):
        for signal in (signals.pre_init, signals.post_init, signals.pre_save, signals.post_save):
            assert not signal.has_listeners(model), (
                f"{signal} has a receiver for {model.__name__}: see hot.py"
            )


def test_the_active_version_is_the_orm_s_with_its_document_deferred(personas: Any) -> None:
    world(personas)
    orm = OrchestrationVersion.objects.select_related("orchestration").get(
        orchestration__api_name="hot", is_active=True
    )
    ours = hot.active_version("hot")
    assert ours is not None
    assert "document" in ours.get_deferred_fields()
    assert values(ours, skip=("document",)) == values(orm, skip=("document",))
    assert values(ours.orchestration) == values(orm.orchestration)
    assert ours.document == orm.document  # loaded when touched
    assert hot.active_version("nope") is None


def test_first_is_the_orm_s_first(personas: Any) -> None:
    from django.contrib.auth.models import User

    from workitems.models import Queue

    assert values(hot.first(Queue, api_name="triage")) == values(Queue.objects.get(api_name="triage"))
    assert hot.first(Queue, api_name="nope") is None
    alice = hot.first(User, is_active=True, username="alice")
    assert values(alice) == values(User.objects.get(username="alice"))
    assert hot.first(User, is_active=False, username="alice") is None
