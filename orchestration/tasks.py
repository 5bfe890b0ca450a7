"""Thin Celery tasks: ids in, a service call, nothing else."""

from __future__ import annotations

import time

from celery import shared_task

from . import logcontext, metrics, services


@shared_task(acks_late=True, ignore_result=True)
def run_background_step(step_run_id: int, attempt: int) -> str:
    start = time.monotonic()
    with logcontext.bind(step_run_id=step_run_id):
        outcome = services.background_step_execute(step_run_id=step_run_id, attempt=attempt)
    metrics.observe_step(outcome, time.monotonic() - start)
    return outcome


@shared_task(ignore_result=True)
def sweep() -> dict[str, object]:
    report = services.sweep()
    # Celery logs what a task returns: the sweep's start and end (epoch seconds) are how an
    # operator, and tests/faults/test_beat_twice.py, see that sweeps never overlap.
    return {
        "redispatched": report.redispatched,
        "timed_out": report.timed_out,
        "rechecked": report.rechecked,
        "woken": report.woken,
        "emails_relayed": report.emails_relayed,
        "skipped": report.skipped,
        "started": report.started_at.timestamp() if report.started_at else None,
        "ended": report.ended_at.timestamp() if report.ended_at else None,
    }


@shared_task(acks_late=True, ignore_result=True)
def deliver_email(email_id: int) -> str:
    """Send one outbox email (queued on commit of the row, by its own retries, or by the relay).
    A duplicate message is harmless: the row's claim lets one delivery through."""
    from .outbox import outbox_deliver

    return outbox_deliver(email_id=email_id)


@shared_task(ignore_result=True)
def analytics_refresh() -> dict[str, int]:
    """Bring the Analytics page's rollups up to date (orchestration/rollup.py); run by beat every
    ORCHESTRATION_ROLLUP_REFRESH_SECONDS. Two at once are safe: each partition is rebuilt by one."""
    from django.conf import settings

    from .rollup import refresh

    report = refresh(limit=settings.ORCHESTRATION_ROLLUP_PARTITIONS_PER_REFRESH)
    return {
        "marked": report.marked,
        "rebuilt": report.rebuilt,
        "months": report.months,
        "remaining": report.remaining,
    }
