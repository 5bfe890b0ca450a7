"""SQL statements per launch and per transition, asserted exactly so that they cannot creep up
unseen. The workloads are bench/'s W1 and W2 (bench/README.md has the throughput figures).

Transactional tests: each service's `transaction.atomic()` is then a real transaction, so the
counts are what production sees (no test SAVEPOINTs). Django logs a transaction's BEGIN and
COMMIT as queries too: each count below is "statements + 2" for the one transaction of each
service call (bench/ reports the statements alone: 35 for a W1 run on PostgreSQL, 9 with inline
steps (tests/orchestration/test_engine__inline_steps.py), 25 for bench's W2, a queue item
claimed then completed, with the page's read of the item). Every count is
taken warm (a first run has already filled the per-process caches: parsed definitions, content
types)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration import tasks
from orchestration.models import Run, RunStatus, StepRun
from orchestration.services import background_step_execute, run_launch
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem
from workitems.services import workitem_complete

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Background step tasks are recorded when their transaction commits instead of run, so
    that each transition is counted on its own."""
    sent: list[tuple[int, int]] = []

    def record(args: tuple[int, int], **kwargs: Any) -> None:
        sent.append((args[0], args[1]))

    monkeypatch.setattr(tasks.run_background_step, "apply_async", record)
    return sent


def load_w1() -> None:
    """a; then b and c (both after a); then d (after b and c): each writes one output."""
    outputs = {
        "a": "1",
        "b": "steps.a.value + 1",
        "c": "steps.a.value * 2",
        "d": "steps.b.value + steps.c.value",
    }
    after = {"b": ["a"], "c": ["a"], "d": ["b", "c"]}
    load(
        *(auto_flow(f"w1_{k}", outputs={"value": v}) for k, v in outputs.items()),
        orchestration(
            "w1",
            stages=[
                {
                    "key": "work",
                    "steps": [
                        {
                            "key": k,
                            "kind": "background",
                            "flow": f"w1_{k}",
                            "start": {"after": after.get(k, [])},
                        }
                        for k in outputs
                    ],
                }
            ],
        ),
    )


def extra_row_writes(rows: int) -> int:
    """Several step rows changed in one pass are one UPDATE … FROM (VALUES …) on PostgreSQL and
    one UPDATE per row on SQLite (the default of `make test` on a laptop)."""
    from django.db import connection

    return 0 if connection.vendor == "postgresql" else rows - 1


def separate_read() -> int:
    """A background task claims its attempt and reads the step with its run in one statement on
    PostgreSQL (`UPDATE … RETURNING` joined to the run), in two elsewhere."""
    from django.db import connection

    return 0 if connection.vendor == "postgresql" else 1


def test_w1_launch_and_each_background_transition(
    personas: Any, dispatched: list, django_assert_num_queries: Any
) -> None:
    load_w1()
    case = make_case()
    # Warm-up: a whole run, so that this process has parsed every version once (the engine
    # reads a version's document only the first time, engine._parsed).
    run_launch(orchestration="w1", record=case)
    while dispatched:
        background_step_execute(step_run_id=dispatched[0][0], attempt=dispatched.pop(0)[1])

    # Launch, up to step a's dispatch: the active version (1), then in one transaction
    # (BEGIN … COMMIT: +2) INSERT the run (2), INSERT the stage run (3) and its four step runs
    # (4), the active versions of the stage's flows (5), UPDATE step a as started (6), UPDATE
    # the run's variables and stage (7), INSERT the events (8). A fresh run has no stage to
    # load, and no expression names `record`: the record is not read.
    with django_assert_num_queries(8 + 2):
        run = run_launch(orchestration="w1", record=case)
    steps = dict(StepRun.objects.filter(run=run).values_list("key", "pk"))
    assert dispatched == [(steps["a"], 1)]

    # Step a: the claim UPDATE returning the step with its run (1); then in one transaction
    # (+2) the run lock (2), the stage's step runs (3), the active versions of the stage's flows
    # for b and c (4), one UPDATE for a completed and b, c started (5), UPDATE the run's outputs
    # (6), INSERT the events (7).
    with django_assert_num_queries(7 + 2 + separate_read() + extra_row_writes(3)):
        assert background_step_execute(step_run_id=steps["a"], attempt=1) == "completed"
    assert sorted(dispatched[1:]) == sorted([(steps["b"], 1), (steps["c"], 1)])

    # Step b completes and starts nothing (d waits for c): claim and read, lock, stage, UPDATE b,
    # UPDATE the run, INSERT the event.
    with django_assert_num_queries(6 + 2 + separate_read()):
        assert background_step_execute(step_run_id=steps["b"], attempt=1) == "completed"

    # Step c starts d: as for a (one UPDATE for c and d, one flow versions query).
    with django_assert_num_queries(7 + 2 + separate_read() + extra_row_writes(2)):
        assert background_step_execute(step_run_id=steps["c"], attempt=1) == "completed"
    assert dispatched[-1] == (steps["d"], 1)

    # Step d ends the stage and the run: claim and read, lock, stage, UPDATE d, UPDATE the
    # stage run, UPDATE the run, INSERT the events. 8 + 7 + 6 + 7 + 7 = 35 statements for the
    # run on PostgreSQL (39 elsewhere), in five transactions.
    with django_assert_num_queries(7 + 2 + separate_read()):
        assert background_step_execute(step_run_id=steps["d"], attempt=1) == "completed"

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.step_outputs == {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 2}, "d": {"value": 4}}


def test_duplicate_delivery_costs_one_statement(
    personas: Any, dispatched: list, django_assert_num_queries: Any
) -> None:
    load_w1()
    run = run_launch(orchestration="w1", record=make_case())
    step_run_id, attempt = dispatched[0]
    background_step_execute(step_run_id=step_run_id, attempt=attempt)

    # The claim finds the attempt already taken: nothing else is read or written (and no
    # transaction is opened).
    with django_assert_num_queries(1):
        assert background_step_execute(step_run_id=step_run_id, attempt=attempt) == "duplicate"
    assert Run.objects.get(pk=run.pk).step_outputs == {"a": {"value": 1}}


def test_w2_launch_and_work_item_completion(personas: Any, django_assert_num_queries: Any) -> None:
    load(
        screen_flow("review"),
        orchestration(
            "w2",
            stages=[
                {
                    "key": "review",
                    "steps": [
                        {
                            "key": "review",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"user": "alice"},
                            "email": {"enabled": False},  # the email is a task of its own
                        }
                    ],
                }
            ],
        ),
    )
    case = make_case()
    run_launch(orchestration="w2", record=case)  # warm-up

    # Launch: the active version (1), then in one transaction (+2) INSERT the run (2), the
    # stage run (3) and its step run (4), the flow's active version (5), the assignee (6),
    # INSERT the work item (7), UPDATE the step as started (8), UPDATE the run (9), INSERT the
    # events (10).
    with django_assert_num_queries(10 + 2):
        run = run_launch(orchestration="w2", record=case)

    # As the Work Guide has it: with its step run and the flow it shows.
    item = WorkItem.objects.select_related("step_run__flow_version").get(run=run)
    # Completion, in one transaction (+2): lock the run (1), re-read the item under the lock
    # (2), UPDATE the item (3), the stage's step runs (4), UPDATE the step (5), the stage run
    # (6) and the run (7), INSERT the events (8).
    with django_assert_num_queries(8 + 2):
        workitem_complete(item=item, user=personas.alice, data={"approved": "true", "comment": "ok"})

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.step_outputs == {"review": {"approved": True, "comment": "ok"}}


def test_a_queue_item_claimed_then_completed(personas: Any, django_assert_num_queries: Any) -> None:
    """bench/'s W2 (a queue item, as the Viewflow peer's task is created unassigned and assigned)."""
    from workitems.models import Queue
    from workitems.services import workitem_claim

    queue = Queue.objects.create(api_name="desk", label="Desk")
    queue.users.add(personas.alice)
    load(
        screen_flow("review"),
        orchestration(
            "w2q",
            stages=[
                {
                    "key": "review",
                    "steps": [
                        {
                            "key": "review",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"queue": "desk"},
                            "email": {"enabled": False},
                        }
                    ],
                }
            ],
        ),
    )
    case = make_case()
    run_launch(orchestration="w2q", record=case)  # warm-up
    run = run_launch(orchestration="w2q", record=case)
    item = WorkItem.objects.select_related("step_run__flow_version").get(run=run)
    # Claim: is she a member of the queue, directly or through a group (1); then in one
    # transaction (+2) lock the run (2), the item with its step (3), UPDATE the item (4),
    # INSERT the event (5). The membership is not asked again under the lock: the item's
    # assignee is the one just checked.
    with django_assert_num_queries(5 + 2):
        workitem_claim(item=item, user=personas.alice)
    item = WorkItem.objects.select_related("step_run__flow_version").get(run=run)
    # Completion: the membership (1), then as for an item of hers (8, +2).
    with django_assert_num_queries(9 + 2):
        workitem_complete(item=item, user=personas.alice, data={"approved": "true", "comment": "ok"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
