"""Celery tasks of the workitems app: thin, they take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)

# Assignment emails are outbox rows delivered by orchestration.tasks.deliver_email
# (orchestration/outbox.py).


@shared_task(ignore_result=True)
def send_assignment_email(
    work_item_id: int, assignee: str | None = None, user_ids: list[int] | None = None
) -> int:
    """Messages queued by a version before the outbox (still in a broker at an upgrade): write
    the item's rows now, if it is still open and assigned as the message says. Their keys make
    this idempotent. Not queued by this version."""
    from django.db import transaction

    from orchestration import engine

    from .emails import assignee_key, assignment_emails_enabled, assignment_emails_write
    from .models import WorkItem, WorkItemStatus

    run_id = WorkItem.objects.filter(pk=work_item_id).values_list("run_id", flat=True).first()
    if run_id is None:
        return 0
    with transaction.atomic():
        engine.lock_run(run_id)  # as every writer of work items: run first, then item
        item = WorkItem.objects.select_related("run", "step_run").get(pk=work_item_id)
        if item.status != WorkItemStatus.ASSIGNED or (
            assignee is not None and assignee != assignee_key(item)
        ):
            return 0
        if not assignment_emails_enabled(item):
            return 0
        return assignment_emails_write(item=item)


@shared_task(ignore_result=True)
def cleanup_drafts() -> int:
    """Drafts of items that closed (see workitems.services.workitem_drafts_cleanup)."""
    from .services import workitem_drafts_cleanup

    return workitem_drafts_cleanup()


@shared_task(ignore_result=True)
def sla_tick() -> int:
    """Fire the SLA rules (reminders, escalations) whose time has come (workitems/sla.py); run by
    beat every WORKITEMS_SLA_TICK_SECONDS. Safe to run twice at once: each firing happens once."""
    from .sla import sla_tick as tick

    report = tick()
    if report.fired:
        log.info("SLA rules fired: %s", ", ".join(report.fired_rules))
    return report.fired
