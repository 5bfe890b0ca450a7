"""Celery tasks of the workitems app: thin, they take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)

# Assignment emails are outbox rows delivered by orchestration.tasks.deliver_email
# (orchestration/outbox.py): nothing of theirs runs here any more.


@shared_task(ignore_result=True)
def cleanup_drafts() -> int:
    """Drafts of items that closed (see workitems.services.workitem_drafts_cleanup)."""
    from .services import workitem_drafts_cleanup

    return workitem_drafts_cleanup()
