"""Thin Celery tasks: ids in, a service call, nothing else."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, ignore_result=True)
def run_background_step(step_run_id: int, attempt: int) -> str:
    return services.background_step_execute(step_run_id=step_run_id, attempt=attempt)


@shared_task(ignore_result=True)
def sweep() -> dict[str, int]:
    report = services.sweep()
    return {"redispatched": report.redispatched, "timed_out": report.timed_out, "rechecked": report.rechecked}


@shared_task(acks_late=True, ignore_result=True)
def deliver_email(email_id: int) -> str:
    """Send one outbox email (queued on commit of the row, by its own retries, or by the relay).
    A duplicate message is harmless: the row's claim lets one delivery through."""
    from .outbox import outbox_deliver

    return outbox_deliver(email_id=email_id)
