"""Celery tasks of the workitems app: thin, they take ids and call emails.py."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)

# A mail server that is down for maintenance is usually back within the hour:
# 30 s, 1, 2, 4, 8, 16 min, then 30 min between tries, about 2 h 30 in all.
EMAIL_MAX_RETRIES = 8
EMAIL_RETRY_BASE_SECONDS = 30
EMAIL_RETRY_MAX_SECONDS = 1800


def email_retry_delay(retries: int) -> int:
    return int(min(EMAIL_RETRY_BASE_SECONDS * 2**retries, EMAIL_RETRY_MAX_SECONDS))


@shared_task(bind=True, max_retries=EMAIL_MAX_RETRIES, ignore_result=True)
def send_assignment_email(  # type: ignore[no-untyped-def]
    self, work_item_id: int, assignee: str | None = None, user_ids: list[int] | None = None
) -> int:
    """Send the assignment email of one work item (queued on commit by the services).

    A send that fails is retried with backoff for the recipients not yet served. The work item
    is committed before this runs, so nothing here can undo the assignment; after the last try
    the failure is logged and the person finds the item on My Work."""
    from .emails import EmailSendFailed, assignment_email_send

    try:
        return assignment_email_send(work_item_id=work_item_id, assignee=assignee, user_ids=user_ids)
    except EmailSendFailed as exc:
        if self.request.retries >= self.max_retries:
            log.error(
                "work item %s: assignment email not sent after %s tries: %s",
                work_item_id,
                self.request.retries + 1,
                exc,
            )
            raise
        log.warning("work item %s: assignment email failed, retrying: %s", work_item_id, exc)
        raise self.retry(
            exc=exc,
            args=(work_item_id,),
            kwargs={"assignee": assignee, "user_ids": exc.unsent},
            countdown=email_retry_delay(self.request.retries),
        ) from exc


@shared_task(ignore_result=True)
def cleanup_drafts() -> int:
    """Drafts of items that closed (see workitems.services.workitem_drafts_cleanup)."""
    from .services import workitem_drafts_cleanup

    return workitem_drafts_cleanup()
