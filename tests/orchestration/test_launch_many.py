"""launch_many: one run per record, in batches of one transaction each, every run started as
run_launch starts it; a bad record fails its whole batch and nothing of it is stored."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration import tasks
from orchestration.models import Run, RunEvent, RunStatus, StageRun, StepRun
from orchestration.services import LaunchError, launch_many, run_launch
from tests.factories import RECORD_PERMS, auto_flow, grant, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem

from .engine_support import bg, events, stage, task

pytestmark = pytest.mark.django_db(transaction=True)  # real commits: dispatches happen on commit


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(tasks.run_background_step, "apply_async", lambda args, **kw: sent.append(tuple(args)))
    return sent


def _definitions() -> None:
    load(
        auto_flow("calc", outputs={"x": "2"}),
        screen_flow("review"),
        orchestration(
            stages=[stage("s", bg("b", "calc"), task("ask"))],
            start={
                "type": "autolaunched",
                "record_type": "case",
                "inputs": [{"name": "n", "type": "number"}],
            },
        ),
    )


def _launcher(personas: Any) -> Any:
    return grant(personas.bob, "orchestration.launch_orchestration", *RECORD_PERMS)


def test_every_record_gets_one_run_started_as_run_launch_starts_it(personas, dispatched):
    _definitions()
    records = [make_case(f"c{i}") for i in range(7)]
    ids = launch_many(
        orchestration="proc", records=records, inputs={"n": 3}, actor=_launcher(personas), batch_size=3
    )
    assert len(ids) == 7 and len(set(ids)) == 7
    runs = list(Run.objects.filter(pk__in=ids).order_by("pk"))
    assert [r.record_id for r in runs] == [r.pk for r in records]
    assert {r.status for r in runs} == {RunStatus.IN_PROGRESS}
    assert {r.inputs["n"] for r in runs} == {3}
    assert StageRun.objects.filter(run__in=ids).count() == 7
    assert StepRun.objects.filter(run__in=ids).count() == 14
    assert WorkItem.objects.filter(run__in=ids, status="assigned").count() == 7
    assert len(dispatched) == 7  # each run's background step, once, after its batch committed
    single = run_launch(
        orchestration="proc", record=make_case("one"), inputs={"n": 3}, actor=_launcher(personas)
    )
    assert all(events(r) == events(single) for r in runs)


def test_inputs_may_depend_on_the_record(personas, dispatched):
    _definitions()
    records = [make_case(f"c{i}", amount=str(i)) for i in range(3)]
    ids = launch_many(
        orchestration="proc",
        records=records,
        inputs=lambda record: {"n": int(record.data["amount"]) * 10},  # type: ignore[union-attr]
        actor=_launcher(personas),
    )
    assert [Run.objects.get(pk=i).inputs["n"] for i in ids] == [0, 10, 20]


def test_a_bad_record_fails_its_batch_and_leaves_the_earlier_ones(personas, dispatched):
    _definitions()
    good = [make_case(f"c{i}") for i in range(4)]
    with pytest.raises(LaunchError, match="runs on a case record"):
        launch_many(
            orchestration="proc",
            records=[*good, None, make_case("late")],
            actor=_launcher(personas),
            batch_size=4,
        )
    # The first batch (4) committed; the second held the record-less run and was never written.
    assert Run.objects.count() == 4
    assert RunEvent.objects.filter(name="orchestration.run.started").count() == 4
    assert len(dispatched) == 4


def test_who_may_not_launch_launches_nothing(personas, dispatched):
    _definitions()
    with pytest.raises(PermissionDenied):
        launch_many(orchestration="proc", records=[make_case()], actor=personas.alice)
    hidden = grant(personas.charlie, "orchestration.launch_orchestration")  # may launch, may not see cases
    with pytest.raises(PermissionDenied, match="view this record"):
        launch_many(orchestration="proc", records=[make_case()], actor=hidden)
    assert Run.objects.count() == 0


def test_a_batch_is_one_transaction_with_statements_shared_by_its_runs(personas, dispatched):
    _definitions()
    actor = _launcher(personas)
    launch_many(orchestration="proc", records=[make_case()], actor=actor)  # warm the caches
    records = [make_case(f"c{i}") for i in range(10)]
    with CaptureQueriesContext(connection) as queries:
        launch_many(orchestration="proc", records=records, actor=actor, batch_size=10)
    sql = [q["sql"] for q in queries.captured_queries]
    # Up to the batch's one COMMIT (then come the emails' tasks, eager in tests).
    sql = sql[: sql.index("COMMIT") + 1]
    inserts = [s for s in sql if s.startswith('INSERT INTO "orchestration_run"')]
    assert len(inserts) == 1  # the ten runs in one statement
    flows = [s for s in sql if "orchestration_flowversion" in s]
    assert len(flows) == 1  # the flows' active versions, read by the first run for all ten
    versions = [s for s in sql if "orchestration_orchestrationversion" in s]
    assert len(versions) == 1
