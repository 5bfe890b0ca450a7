"""Two beats at once, and beats stopped and started: the sweep never runs twice at once.

`services.sweep()` holds a single-flight lock (a PostgreSQL advisory lock); a sweep that finds
it taken returns at once with `skipped`. Here the sweep is made slow (1.5 s,
ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS) while two beats send it every second to a worker with
two processes: without the lock, sweeps would overlap all the time."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from orchestration.models import ExecState, RunEvent, RunStatus, StepRun
from orchestration.services import SweepReport, sweep
from tests.conftest import require_postgresql
from tests.factories import auto_flow, load, make_case, orchestration
from tests.orchestration.engine_support import bg, launch, lost_messages, stage

from .support_infra import (
    broker_for_this_process,
    celery_beat,
    celery_worker,
    running_redis,
    service_env,
    start_all,
    subprocess_database_url,
    sweep_reports,
    sweeps_received,
    wait_for,
)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def _undelivered_step() -> int:
    """A run whose background step was committed queued but whose publish failed."""
    load(auto_flow("calc", outputs={"x": "7"}), orchestration(stages=[stage("s", bg("b", "calc"))]))
    with lost_messages() as sent:
        run = launch(record=make_case())
    assert len(sent) == 1
    StepRun.objects.filter(run=run).update(dispatch_failed=True)
    return run.pk


def _assert_no_overlap(ran: list[dict]) -> None:  # type: ignore[type-arg]
    spans = sorted((r["started"], r["ended"]) for r in ran)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two sweeps overlapped: one ended at {end:.3f}, the next started at {start:.3f}"


def test_two_beats_started_and_stopped_twice_never_run_two_sweeps_at_once(personas, tmp_path):
    require_postgresql("worker and beat processes share the test database only on PostgreSQL")
    run_id = _undelivered_step()
    with running_redis() as redis, broker_for_this_process(redis.url):
        env = service_env(
            database_url=subprocess_database_url(),
            broker_url=redis.url,
            var_dir=tmp_path / "var",
            ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS="1.5",
        )
        worker = celery_worker(env, tmp_path / "worker.log", concurrency=2)
        beats = [
            celery_beat(env, tmp_path / f"beat{i}.log", schedule=tmp_path / f"schedule{i}", name=f"beat{i}")
            for i in (1, 2)
        ]
        try:
            # Round 1: two beats at once. Round 2: one, restarted. Round 3: both again.
            for i, (round_beats, seconds) in enumerate(((beats, 4), (beats[:1], 3), (beats, 4))):
                start_all(*round_beats, *([worker] if i == 0 else []))  # together: each takes seconds
                time.sleep(seconds)
                for beat in round_beats:
                    beat.stop()
            # Let the worker finish the sweeps already sent (each skips or runs in turn).
            wait_for(
                lambda: len(sweep_reports(worker.text())) == sweeps_received(worker.text()),
                timeout=30,
                what="the sweeps sent to finish",
            )
            reports = sweep_reports(worker.text())
        finally:
            for beat in beats:
                beat.stop()
            worker.stop()

    ran = [r for r in reports if not r["skipped"]]
    skipped = [r for r in reports if r["skipped"]]
    _assert_no_overlap(ran)
    # Two beats sending every second a sweep that lasts 1.5 s: many ran, many found the lock
    # taken (so the test saw contention and could have caught an overlap).
    assert len(ran) >= 5, reports
    assert len(skipped) >= 4, reports
    # The sweeps did their work exactly once: the undelivered step was re-sent by one of them.
    assert sum(r["redispatched"] for r in ran) == 1
    assert sum(r["redispatched"] for r in skipped) == 0
    step = StepRun.objects.get(run_id=run_id)
    assert (step.exec_state, step.attempts, step.dispatch_failed) == (ExecState.DONE, 1, False)
    assert RunEvent.objects.filter(run_id=run_id, name="orchestration.step.completed").count() == 1
    assert step.run.status == RunStatus.COMPLETED


def test_sweeps_called_at_once_from_threads_do_the_work_once(personas, settings):
    run_id = _undelivered_step()
    settings.ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS = 0.5  # hold the lock while the others try
    n = 6
    barrier = threading.Barrier(n)
    reports: list[SweepReport] = []
    errors: list[BaseException] = []

    def call() -> None:
        from django.db import connection

        try:
            barrier.wait()
            reports.append(sweep())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection (its own lock session)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(reports) == n
    worked = [r for r in reports if not r.skipped]
    assert len(worked) == 1
    assert worked[0].redispatched == 1  # eager Celery: the re-sent step ran in that thread
    assert all(r.redispatched == 0 and r.started_at is None for r in reports if r.skipped)
    assert RunEvent.objects.filter(run_id=run_id, name="orchestration.step.completed").count() == 1
    # The lock was released: the next sweep runs (and finds nothing left to re-send).
    again = sweep()
    assert (again.skipped, again.redispatched) == (False, 0)
