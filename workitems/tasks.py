from __future__ import annotations

from celery import shared_task


@shared_task(bind=True, max_retries=5, default_retry_delay=30, ignore_result=True)
def send_assignment_email(self, work_item_id: int) -> int:  # type: ignore[no-untyped-def]
    from .emails import assignment_email_send

    try:
        return assignment_email_send(work_item_id=work_item_id)
    except OSError as exc:  # SMTP down: retry later; the assignment itself is already committed
        raise self.retry(exc=exc) from exc
