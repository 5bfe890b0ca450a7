"""Races on the real database with threads: each thread has its own connection and its own
transactions, exactly like concurrent web requests and workers."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from orchestration import engine
from orchestration.models import RunEvent, RunStatus, StepRun
from orchestration.services import background_step_execute, run_launch
from records.models import Record
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import WorkItemClosed, workitem_complete

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 20


def race(fn: Callable[[int], Any], n: int = THREADS) -> list[Any]:
    """Run fn(i) in n threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_twenty_users_completing_the_same_item_give_one_completion(personas):
    load(
        screen_flow("review"),
        orchestration(
            "p",
            stages=[
                {
                    "key": "one",
                    "steps": [
                        {
                            "key": "r",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"group": "engineering"},
                        }
                    ],
                },
                {
                    "key": "two",
                    "steps": [
                        {"key": "r2", "kind": "interactive", "flow": "review", "assignee": {"user": "bob"}}
                    ],
                },
            ],
        ),
    )
    from tests.factories import UserFactory

    users = [personas.alice] + [UserFactory(username=f"eng{i}") for i in range(THREADS - 1)]
    for u in users[1:]:
        u.groups.add(personas.engineering)
    run = run_launch(orchestration="p", record=make_case())
    item = WorkItem.objects.get(run=run)

    results = race(
        lambda i: workitem_complete(
            item=WorkItem.objects.get(pk=item.pk), user=users[i], data={"comment": f"from {i}"}
        )
    )

    winners = [r for r in results if isinstance(r, WorkItem)]
    losers = [r for r in results if isinstance(r, WorkItemClosed)]
    assert len(winners) == 1, results
    assert len(losers) == THREADS - 1, [r for r in results if not isinstance(r, WorkItem | WorkItemClosed)]
    winner = winners[0].completed_by.username
    assert all(f"completed by {winner}" in str(e) for e in losers)
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED
    assert RunEvent.objects.filter(run=run, name="orchestration.step.completed", step="r").count() == 1
    # The next stage started exactly once.
    assert StepRun.objects.filter(run=run, key="r2").count() == 1
    assert WorkItem.objects.filter(run=run, step_run__key="r2").count() == 1


def test_twenty_advances_of_the_same_run_start_each_step_once(personas):
    load(
        screen_flow("review"),
        auto_flow("note", outputs={"ok": "true"}),
        orchestration(
            "p",
            stages=[
                {
                    "key": "one",
                    "steps": [
                        {
                            "key": "gate",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"user": "alice"},
                            "start": {"condition": "record.status == 'go'"},
                        },
                        {
                            "key": "bg",
                            "kind": "background",
                            "flow": "note",
                            "start": {"condition": "record.status == 'go'"},
                        },
                    ],
                }
            ],
        ),
    )
    case = make_case(status="wait")
    run = run_launch(orchestration="p", record=case)
    assert StepRun.objects.get(run=run, key="gate").status == "not_started"
    # Change the record behind the engine's back, then let 20 callers race to notice.
    Record.objects.filter(pk=case.pk).update(data={**case.data, "status": "go"})

    def advance(_: int) -> str:
        with transaction.atomic():
            engine.advance(run.pk)
        return "ok"

    results = race(advance)
    assert results == ["ok"] * THREADS
    started = Counter(
        RunEvent.objects.filter(run=run, name="orchestration.step.started").values_list("step", flat=True)
    )
    assert started == {"gate": 1, "bg": 1}
    assert WorkItem.objects.filter(run=run).count() == 1
    bg = StepRun.objects.get(run=run, key="bg")
    assert bg.attempts == 1 and bg.status == "completed"


def test_duplicated_task_delivery_runs_the_flow_once(personas):
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
            "p", stages=[{"key": "one", "steps": [{"key": "a", "kind": "background", "flow": "make_task"}]}]
        ),
    )
    from config.celery import app

    app.conf.task_always_eager = False  # keep the dispatched task from running: we deliver it by hand
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("orchestration.tasks.run_background_step.apply_async", lambda *a, **k: None)
            run = run_launch(orchestration="p", record=make_case())
    finally:
        app.conf.task_always_eager = True
    step = StepRun.objects.get(run=run, key="a")
    results = race(lambda i: background_step_execute(step_run_id=step.pk, attempt=step.attempts), n=8)
    assert sorted(results) == ["completed"] + ["duplicate"] * 7
    assert Record.objects.filter(name="follow-up").count() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
