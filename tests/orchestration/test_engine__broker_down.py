"""A broker that cannot be reached: the state change commits, the publish fails fast and marks
the step, and the next sweep re-sends it without waiting for the grace. The sweep is
single-flight."""

from __future__ import annotations

import datetime as dt
import threading
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from orchestration.models import ExecState, RunEvent, RunStatus, StepRun
from orchestration.services import SWEEP_LOCK, single_flight, sweep
from tests.factories import auto_flow, load, make_case, orchestration

from .engine_support import bg, fresh, launch, lost_messages, stage, step

pytestmark = pytest.mark.django_db(transaction=True)


def broker_down():  # type: ignore[no-untyped-def]
    return mock.patch(
        "orchestration.tasks.run_background_step.apply_async", side_effect=BrokerError("Connection refused")
    )


def _definitions(*, on_create: bool = True) -> None:
    docs = [auto_flow("calc", outputs={"x": "7"}), orchestration(stages=[stage("s", bg("b", "calc"))])]
    if on_create:
        start = {"type": "record", "record_type": "case", "on": "create"}
        docs.append(orchestration("on_create", start=start, stages=[stage("s", bg("b", "calc"))]))
    load(*docs)


def test_a_launch_while_the_broker_is_down_succeeds_and_the_next_sweep_sends_the_step(personas, caplog):
    _definitions()
    with broker_down() as publish:
        run = launch(record=make_case())  # the case also launches on_create
    assert publish.call_count == 2
    assert sum("broker unreachable" in r.getMessage() for r in caplog.records) == 2
    assert fresh(run).status == RunStatus.IN_PROGRESS
    marked = StepRun.objects.filter(exec_state=ExecState.QUEUED, dispatch_failed=True, attempts=1)
    assert marked.count() == 2
    # Not the 60 s grace: the broker is back and the next sweep sends both at once.
    report = sweep()
    assert report.redispatched == 2
    assert fresh(run).status == RunStatus.COMPLETED
    sr = step(run, "b")
    assert (sr.attempts, sr.exec_state, sr.dispatch_failed) == (1, ExecState.DONE, False)
    assert RunEvent.objects.filter(name="orchestration.step.completed").count() == 2
    assert sweep().redispatched == 0


def test_a_sweep_while_the_broker_is_still_down_stops_at_the_first_failure(personas):
    _definitions()
    with broker_down():
        launch(record=make_case())
    with broker_down() as publish:
        assert sweep().redispatched == 0
    assert publish.call_count == 1  # it did not spend a connect timeout on every step
    assert StepRun.objects.filter(dispatch_failed=True).count() == 2
    assert sweep().redispatched == 2


def test_a_retry_whose_publish_failed_waits_for_its_backoff(personas):
    _definitions(on_create=False)
    with broker_down():
        run = launch(record=make_case())
    later = timezone.now() + dt.timedelta(seconds=30)
    StepRun.objects.filter(run=run).update(next_attempt_at=later)
    assert sweep().redispatched == 0  # marked, but not due yet
    assert sweep(now=later).redispatched == 1


def test_the_grace_for_messages_lost_after_publishing_is_a_setting(personas, settings):
    _definitions(on_create=False)
    with lost_messages():
        run = launch(record=make_case())
    StepRun.objects.filter(run=run).update(next_attempt_at=timezone.now() - dt.timedelta(seconds=10))
    assert sweep().redispatched == 0  # 60 s by default
    settings.ORCHESTRATION_REDISPATCH_GRACE_SECONDS = 5
    assert sweep().redispatched == 1
    assert fresh(run).status == RunStatus.COMPLETED


def test_a_sweep_that_finds_the_lock_taken_returns_at_once_and_does_nothing(personas):
    _definitions(on_create=False)
    with broker_down():
        run = launch(record=make_case())
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        from django.db import connection as own  # this thread's own session

        with single_flight(SWEEP_LOCK) as acquired:
            assert acquired
            held.set()
            release.wait(10)
        own.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        report = sweep()
    finally:
        release.set()
        holder.join(10)
    assert (report.skipped, report.redispatched, report.started_at) == (True, 0, None)
    assert step(run, "b").exec_state == ExecState.QUEUED
    report = sweep()  # released: the next one works
    assert (report.skipped, report.redispatched) == (False, 1)


def test_single_flight_without_postgresql_is_a_file_lock(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    with mock.patch.object(connection, "vendor", "sqlite"):
        with single_flight("x") as outer:
            with single_flight("x") as inner:
                assert (outer, inner) == (True, False)
            with single_flight("y") as other:
                assert other is True
        with single_flight("x") as again:
            assert again is True
    [lock] = tmp_path.glob("x.*.lock")  # named after the database: one per database file
    assert lock.is_file()
