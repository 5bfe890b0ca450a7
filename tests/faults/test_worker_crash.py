"""A `celery worker` child SIGKILLed at the worst moments of a background step, and every
effect still happens once: the HTTP call is applied once by a receiver that de-duplicates by
Idempotency-Key (the step run's key is the same on every attempt), the record is updated once
(one history entry, one record-triggered launch), the step's email is one outbox row sent once.

Real PostgreSQL, Redis and worker processes; the fault injection is tests/faults/fault_flows.py,
loaded by the worker through ORCHESTRATION_FLOW_MODULES. The step timeout is 3 s and the test
runs the sweep itself, so a crashed attempt is retried within seconds."""

# ruff: noqa: F811  (pytest fixtures imported from support_effects are arguments here)
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tests.faults.fault_flows  # noqa: F401  (registers `kill_once` here too: definitions name it)
from orchestration import services
from orchestration.models import OutboxEmail, OutboxStatus, Run, RunEvent, RunStatus, StepRun
from records.models import FieldChange
from tests.factories import auto_flow, case_type, load, make_case, orchestration

from .support_effects import Receiver, Sink, marker, receiver, sink, start_worker, wait_for  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

STEP_TIMEOUT = 3


def effects_flow(url: str, *, kill: str | None) -> dict[str, Any]:
    """An HTTP call, a record update that is not idempotent by its values (amount + 1) and an
    email, with `kill_once` after the action named by `kill` ("http", "email") if any."""
    actions: list[dict[str, Any]] = [
        {"type": "http", "url": f"'{url}/charge'", "json": {"case": "record.id"}},
        {"type": "update_record", "values": {"amount": "record.amount + 1", "status": "'charged'"}},
        {
            "type": "send_email",
            "to": "'alice@example.com'",
            "subject": "Charged {{ record.name }}",
            "body": "{{ record.name }} was charged.",
        },
    ]
    if kill is not None:
        at = {"http": 1, "email": 3}[kill]
        actions.insert(at, {"type": "call", "name": "kill_once"})
    actions.append({"type": "set_outputs", "values": {"done": "true"}})
    return auto_flow("charge_flow", outputs={"done": "true"}, actions=actions)


def load_charge(url: str, *, kill: str | None) -> None:
    case_type()
    load(
        effects_flow(url, kill=kill),
        auto_flow("after_flow"),
        orchestration(
            "charge",
            stages=[
                {
                    "key": "bill",
                    "steps": [
                        {"key": "a", "kind": "background", "flow": "charge_flow", "max_attempts": 3},
                        {"key": "b", "kind": "background", "flow": "after_flow", "start": {"after": ["a"]}},
                    ],
                }
            ],
        ),
        # Launched by the record update: a second update would launch it a second time.
        orchestration(
            "watch",
            start={
                "type": "record",
                "record_type": "case",
                "on": "update",
                "condition": "record.status == 'charged'",
            },
            stages=[{"key": "w", "steps": [{"key": "x", "kind": "background", "flow": "after_flow"}]}],
        ),
    )


def run_until_done(run: Run, *, sweep: bool, timeout: float = 90) -> Run:
    """Wait for the run to complete, running the sweep twice a second when asked (it fails
    attempts claimed longer than the step timeout ago and retries them)."""

    def done() -> bool:
        if sweep:
            services.sweep()
        return Run.objects.get(pk=run.pk).status == RunStatus.COMPLETED

    wait_for(done, timeout=timeout, interval=0.5)
    run.refresh_from_db()
    return run


def assert_effects_once(
    run: Run, case: Any, receiver: Receiver, sink: Sink, *, attempts: int, requests: int, kill: str | None
) -> None:
    # The actions' indexes, which name their keys: kill_once after the call shifts the others.
    update, email = (2, 3) if kill == "http" else (1, 2)
    a = StepRun.objects.get(run=run, key="a")
    b = StepRun.objects.get(run=run, key="b")
    assert run.status == RunStatus.COMPLETED
    # Each step completed exactly once, after the attempts expected.
    completed = RunEvent.objects.filter(run=run, name="orchestration.step.completed")
    assert sorted(completed.values_list("step", flat=True)) == ["a", "b"]
    assert (a.attempts, b.attempts) == (attempts, 1)
    # The HTTP call: `requests` arrived, all with the step run's key, applied once.
    assert len(receiver.requests) == requests
    assert {r["key"] for r in receiver.requests} == {f"step:{a.pk}:a0"}
    assert list(receiver.applied) == [f"step:{a.pk}:a0"]
    # The record: updated once (amount 10 -> 11, not 12), one history entry per field changed.
    case.refresh_from_db()
    assert Decimal(str(case.data["amount"])) == Decimal("11")
    history = FieldChange.objects.filter(record=case).exclude(field="severity")
    assert sorted(history.values_list("field", "effect_key")) == [
        ("amount", f"step:{a.pk}:a{update}"),
        ("status", f"step:{a.pk}:a{update}"),
    ]
    wait_for(
        lambda: Run.objects.filter(orchestration__api_name="watch", status=RunStatus.COMPLETED).count() == 1
    )
    assert Run.objects.filter(orchestration__api_name="watch").count() == 1
    # The email: one outbox row, delivered once, with its stable Message-ID.
    wait_for(lambda: OutboxEmail.objects.filter(status=OutboxStatus.SENT).count() == 1)
    [row] = OutboxEmail.objects.all()
    assert row.step_run_id == a.pk and row.run_id == run.pk
    assert row.idempotency_key == f"step:{a.pk}:a{email}"
    assert (row.status, row.attempts, row.to) == ("sent", 1, ["alice@example.com"])
    wait_for(lambda: len(sink.messages()) >= 1)
    time.sleep(0.5)  # a duplicate would arrive now
    [msg] = sink.messages()
    assert msg["Message-ID"] == row.message_id
    assert msg["Subject"] == f"Charged {case.name}"


def test_killed_in_the_middle_of_the_flow(settings, tmp_path: Path, receiver, sink, start_worker):
    """Killed after the HTTP call, before the update and the email: the retry calls again
    with the same key (the receiver applies it once), then updates and emails once."""
    settings.ORCHESTRATION_STEP_TIMEOUT_SECONDS = STEP_TIMEOUT
    start_worker(EMAIL_URL=sink.url, ORCHESTRATION_STEP_TIMEOUT_SECONDS=str(STEP_TIMEOUT))
    load_charge(receiver.url, kill="http")
    case = make_case("Case crash", amount="10")
    run = services.run_launch(orchestration="charge", record=case)

    wait_for(lambda: marker(tmp_path, "kill_once-a").exists())
    run = run_until_done(run, sweep=True)
    assert_effects_once(run, case, receiver, sink, attempts=2, requests=2, kill="http")
    assert RunEvent.objects.filter(run=run, name="orchestration.step.retry_scheduled").count() == 1


def test_killed_after_the_effects_before_the_result_is_committed(
    settings, tmp_path: Path, receiver, sink, start_worker
):
    """Killed after the HTTP call, the update and the email action, before the result commit:
    the retry repeats the call (same key, applied once), finds the update applied under its key
    (no second history entry, no second launch), and the email, never written by the killed
    attempt, is written once with the result."""
    settings.ORCHESTRATION_STEP_TIMEOUT_SECONDS = STEP_TIMEOUT
    start_worker(EMAIL_URL=sink.url, ORCHESTRATION_STEP_TIMEOUT_SECONDS=str(STEP_TIMEOUT))
    load_charge(receiver.url, kill="email")
    case = make_case("Case crash", amount="10")
    run = services.run_launch(orchestration="charge", record=case)

    wait_for(lambda: marker(tmp_path, "kill_once-a").exists())
    # Before the retry: the update is applied, the email not written (nothing committed it).
    wait_for(lambda: FieldChange.objects.filter(record=case, field="amount").exists())
    assert OutboxEmail.objects.count() == 0
    run = run_until_done(run, sweep=True)
    assert_effects_once(run, case, receiver, sink, attempts=2, requests=2, kill="email")


def test_killed_after_the_commit_before_the_ack(settings, tmp_path: Path, receiver, sink, start_worker):
    """Killed by a task_postrun handler after the result committed, before the ack: the broker
    redelivers the task (acks_late, reject_on_worker_lost), the redelivery finds the attempt
    done and runs nothing. One attempt, one request, no sweep needed."""
    worker = start_worker(EMAIL_URL=sink.url, FAULT_KILL_AFTER_COMMIT="1")
    load_charge(receiver.url, kill=None)
    case = make_case("Case crash", amount="10")
    run = services.run_launch(orchestration="charge", record=case)

    wait_for(lambda: marker(tmp_path, "after_commit").exists())
    run = run_until_done(run, sweep=False)
    # The redelivered message was recognised: it claimed nothing.
    wait_for(lambda: "'duplicate'" in worker.text())
    assert_effects_once(run, case, receiver, sink, attempts=1, requests=1, kill=None)


def test_killed_after_the_smtp_send_before_the_row_is_marked_sent(
    settings, tmp_path: Path, personas, sink, start_worker
):
    """The one duplicate the outbox allows: the server accepted the message, the worker died
    before marking the row sent. Once the claim's lease is over the relay delivers it again:
    the second copy carries the same Message-ID, so a receiver can drop it."""
    from tests.workitems.mywork_support import interactive, load_process

    settings.ORCHESTRATION_EMAIL_CLAIM_SECONDS = 2
    settings.ORCHESTRATION_EMAIL_RELAY_GRACE_SECONDS = 0
    start_worker(EMAIL_URL=sink.url, FAULT_KILL_AFTER_SMTP="1", ORCHESTRATION_EMAIL_CLAIM_SECONDS="2")
    case_type()
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = services.run_launch(orchestration="proc", record=make_case())

    wait_for(lambda: marker(tmp_path, "after_smtp").exists())
    row = OutboxEmail.objects.get(run=run)

    def delivered() -> bool:
        services.sweep()  # its relay takes over the dead delivery's claim once the lease is over
        return OutboxEmail.objects.get(pk=row.pk).status == OutboxStatus.SENT

    wait_for(delivered, timeout=60, interval=0.5)
    row.refresh_from_db()
    assert row.attempts == 2
    wait_for(lambda: len(sink.messages()) >= 2)
    time.sleep(0.5)
    messages = sink.messages()
    assert len(messages) == 2
    assert [m["Message-ID"] for m in messages] == [row.message_id, row.message_id]
    assert [m["To"] for m in messages] == ["alice@example.com", "alice@example.com"]
    run.refresh_from_db()
    assert run.status == RunStatus.IN_PROGRESS
