"""The periodic sweep: re-send lost dispatches, fail attempts whose worker died, re-check runs."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connections, models, transaction
from django.utils import timezone

from .. import engine, outbox
from ..models import (
    ExecState,
    Run,
    RunStatus,
    StageStatus,
    StepRun,
)
from .background import _attempt_failed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    redispatched: int = 0
    timed_out: int = 0
    rechecked: int = 0
    woken: int = 0  # runs advanced because a wait step's time came
    emails_relayed: int = 0
    # Another sweep held the lock: this one did nothing.
    skipped: bool = False
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None


SWEEP_LOCK = "orchestration-sweep"


def sweep(*, now: dt.datetime | None = None, batch: int = 500) -> SweepReport:
    """Periodic repair: re-send background steps whose task was never delivered, fail attempts
    whose worker died, re-check runs that wait on a condition, and wake wait steps whose time
    has come.

    Single-flight: a second beat, or a sweep slower than the beat period on a worker with
    several processes, would otherwise run two sweeps at once and time out or re-send the same
    steps twice. A sweep that finds the lock taken returns at once with `skipped`."""
    report = SweepReport()
    with single_flight(SWEEP_LOCK) as acquired:
        if not acquired:
            report.skipped = True
            log.info("sweep skipped: another sweep holds the lock")
            return report
        # Both times are taken while the lock is held: [started_at, ended_at] of two sweeps
        # never overlap (tests/faults/test_beat_twice.py checks it).
        report.started_at = timezone.now()
        now = now or report.started_at
        report.redispatched = _sweep_redispatch(now=now, batch=batch)
        report.timed_out = _sweep_timed_out(now=now, batch=batch)
        report.rechecked = _sweep_recheck(batch=batch)
        report.woken = _sweep_wake(now=now, batch=batch)
        report.emails_relayed = outbox.outbox_relay(now=now, batch=batch)  # their task was lost
        if settings.ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS:
            time.sleep(settings.ORCHESTRATION_SWEEP_TEST_DELAY_SECONDS)  # test-only: a slow sweep
        report.ended_at = timezone.now()
    return report


@contextmanager
def single_flight(name: str) -> Iterator[bool]:
    """Hold a lock named `name` across processes and machines for the block, without waiting:
    yields False when someone else holds it.

    PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on this thread's
    connection. It outlives the block's transactions (the sweep commits many), is released in
    `finally`, and the server releases it by itself when the session ends, so a worker killed
    mid-sweep leaves no lock behind and nothing needs to expire. (Not behind a pooler in
    transaction mode, which hands the session to someone else between transactions.) Other
    databases (SQLite, whose processes all share one machine): an exclusive `flock` on a file
    in VAR_DIR named after the database, released by the kernel when the process dies."""
    connection = connections[StepRun.objects.db]
    if connection.vendor == "postgresql":
        key = zlib.crc32(name.encode())  # a stable 32-bit key for the 64-bit lock space
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
                except DatabaseError:
                    # The session is broken or gone, and the server released its locks with it.
                    # A transaction left aborted by the block is rolled back by its atomic();
                    # closing the connection ends the session in every case.
                    log.warning("could not release the %s lock: closing the connection", name)
                    connection.close()
        return
    # One lock per database file: processes working on another database (a test worker's
    # own) are not in each other's way.
    db = zlib.crc32(str(connection.settings_dict["NAME"]).encode())
    path = Path(settings.VAR_DIR) / f"{name}.{db:08x}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sweep_redispatch(*, now: dt.datetime, batch: int) -> int:
    """Re-send queued attempts whose message never reached a worker: those whose publish failed
    (as soon as they are due), and those nobody claimed for the grace past their due time (a
    message lost after publishing: a broker restarted without persistence). Re-sending is safe:
    the claim lets only one delivery run."""
    from ..tasks import run_background_step

    grace = dt.timedelta(seconds=settings.ORCHESTRATION_REDISPATCH_GRACE_SECONDS)
    lost = StepRun.objects.filter(
        models.Q(next_attempt_at__lt=now - grace) | models.Q(dispatch_failed=True, next_attempt_at__lte=now),
        exec_state=ExecState.QUEUED,
        status=StageStatus.IN_PROGRESS,
    ).values_list("pk", "attempts")[:batch]
    sent = 0
    for pk, attempt in lost:
        try:
            run_background_step.apply_async((pk, attempt))
        except Exception as exc:  # the broker is still away: the next sweep tries again
            log.warning("sweep: broker unreachable, %s step(s) re-sent before it failed: %s", sent, exc)
            break
        StepRun.objects.filter(pk=pk, attempts=attempt, dispatch_failed=True).update(dispatch_failed=False)
        sent += 1
    return sent


def _sweep_timed_out(*, now: dt.datetime, batch: int) -> int:
    """Fail attempts claimed longer than the step timeout ago (the worker died, or the result
    could not be stored), so that they are retried."""
    timeout = dt.timedelta(seconds=settings.ORCHESTRATION_STEP_TIMEOUT_SECONDS)
    stuck = list(
        StepRun.objects.filter(
            exec_state=ExecState.RUNNING, status=StageStatus.IN_PROGRESS, claimed_at__lt=now - timeout
        ).values_list("pk", "run_id", "attempts")[:batch]
    )
    failed = 0
    for pk, run_id, attempt in stuck:
        with transaction.atomic():
            run = engine.lock_run(run_id)
            sr = StepRun.objects.select_related("stage_run").get(pk=pk)
            if (
                sr.exec_state == ExecState.RUNNING
                and sr.attempts == attempt
                and sr.status == StageStatus.IN_PROGRESS
            ):
                _attempt_failed(run=run, sr=sr, error="worker lost: no result within the step timeout")
                failed += 1
    return failed


def _sweep_recheck(*, batch: int) -> int:
    rechecked = 0
    for run_id in Run.objects.filter(recheck=True, status=RunStatus.IN_PROGRESS).values_list("pk", flat=True)[
        :batch
    ]:
        with transaction.atomic():
            engine.advance(run_id)
        rechecked += 1
    return rechecked


def _sweep_wake(*, now: dt.datetime, batch: int) -> int:
    """Advance the runs of wait steps whose time has come (`wake_at`: resume, or a condition's
    timeout). The pass decides under the run lock, from the step run it reads there: a step a
    record save or another sweep completed meanwhile is not in progress any more, so a wait
    completes once however many wakes see it. (A suspended run is woken when it is resumed.)"""
    due = (
        StepRun.objects.filter(
            kind="wait", status=StageStatus.IN_PROGRESS, wake_at__lte=now, run__status=RunStatus.IN_PROGRESS
        )
        .order_by("wake_at")
        .values_list("run_id", flat=True)[:batch]
    )
    woken = 0
    for run_id in dict.fromkeys(due):  # a run with two due waits is advanced once
        with transaction.atomic():
            engine.advance(run_id)
        woken += 1
    return woken
