"""The durable email outbox: an email is a row committed in the same transaction as the state
change that owes it; delivery is at-least-once after commit, de-duplicated by a stable Message-ID.

- Writing (`outbox_write_many`): inside the caller's transaction, one row per logical email,
  keyed by its idempotency key (unique): a writer that is retried (a step attempt after a
  crash, a second call for the same assignment) writes nothing the second time. When the
  transaction commits, one `deliver_email` task per new row is queued (robust: a broker that is
  down leaves the rows pending, and the relay sends them later).
- Delivering (`outbox_deliver`, the task): claims the row with a compare-and-swap (status
  pending, due, not claimed by a live delivery), so two deliveries of one row cannot both send;
  sends; marks it sent. An SMTP failure schedules the next try with exponential backoff, up to
  ORCHESTRATION_EMAIL_MAX_ATTEMPTS tries, then the row is `failed` with the error.
- Relaying (`outbox_relay`, from the sweep): pending rows that are due and unclaimed (their task
  message was lost, or their worker died holding the claim) get a new task.

Emails of other apps (assignment emails of workitems) are rendered at their first delivery by
a renderer that app registers (`registry.register_email_renderer`); it also says when an email
no longer applies (the item was closed or reassigned), which cancels the row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import OutboxEmail, OutboxStatus
from .registry import EMAIL_RENDERERS

log = logging.getLogger(__name__)

SUBJECT_MAX = 300


def message_id_for(key: str) -> str:
    """The Message-ID of the email with this idempotency key: the same for every delivery of
    the row, so a receiver can drop the copy a crash after sending may cause."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "orchestration.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def email_retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: base * 2**(attempts-1), capped."""
    base = settings.ORCHESTRATION_EMAIL_RETRY_BASE_SECONDS
    return float(min(base * 2 ** max(attempts - 1, 0), settings.ORCHESTRATION_EMAIL_RETRY_MAX_SECONDS))


def outbox_email(
    *,
    kind: str,
    key: str,
    to: list[str] | None = None,
    subject: str = "",
    body: str = "",
    html: str = "",
    headers: dict[str, str] | None = None,
    run_id: int | None = None,
    step_run_id: int | None = None,
    work_item_id: int | None = None,
    assignee: str = "",
    recipient_id: int | None = None,
) -> OutboxEmail:
    """An unsaved row (give a list of them to `outbox_write_many`)."""
    return OutboxEmail(
        kind=kind,
        idempotency_key=key[:200],
        message_id=message_id_for(key),
        to=list(to or []),
        subject=" ".join(subject.split())[:SUBJECT_MAX],
        body=body,
        html=html,
        headers=dict(headers or {}),
        run_id=run_id,
        step_run_id=step_run_id,
        work_item_id=work_item_id,
        assignee=assignee,
        recipient_id=recipient_id,
        next_attempt_at=timezone.now(),
    )


def outbox_write_many(*, emails: list[OutboxEmail]) -> None:
    """Write these emails in the current transaction (a row already written under the same
    key is left as it is) and queue their delivery for when it commits."""
    if not emails:
        return
    # ON CONFLICT DO NOTHING on the unique key: a retried writer writes each email once.
    OutboxEmail.objects.bulk_create(emails, ignore_conflicts=True)
    keys = [e.idempotency_key for e in emails]
    # robust: the rows are committed when this runs; a broker that is unreachable must not fail
    # whoever caused the email (the relay sends pending rows whose message never came).
    transaction.on_commit(lambda: outbox_dispatch(keys=keys), robust=True)


def outbox_write(*, kind: str, key: str, **fields: Any) -> None:
    """One email (see `outbox_write_many`)."""
    outbox_write_many(emails=[outbox_email(kind=kind, key=key, **fields)])


def outbox_dispatch(*, keys: Iterable[str]) -> int:
    """Queue a delivery task for each pending row of these keys; returns how many."""
    from .tasks import deliver_email

    ids = list(
        OutboxEmail.objects.filter(idempotency_key__in=list(keys), status=OutboxStatus.PENDING).values_list(
            "pk", flat=True
        )
    )
    for pk in ids:
        deliver_email.delay(pk)
    return len(ids)


def _claim(email_id: int, now: dt.datetime) -> OutboxEmail | None:
    """Take the row for one delivery: a compare-and-swap on (status, due, claim) whose row
    count must be 1, committed at once. A claim older than the lease belonged to a worker that
    died (or hangs) and may be taken over."""
    lease = dt.timedelta(seconds=settings.ORCHESTRATION_EMAIL_CLAIM_SECONDS)
    # A second of slack: a countdown message may fire a hair before the stored due time.
    due = Q(next_attempt_at__lte=now + dt.timedelta(seconds=1))
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease)
    claimed = OutboxEmail.objects.filter(due & free, pk=email_id, status=OutboxStatus.PENDING).update(
        claimed_at=now, last_attempt_at=now, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return None
    return OutboxEmail.objects.get(pk=email_id)


def _message(row: OutboxEmail) -> EmailMultiAlternatives:
    headers = {**row.headers, "Message-ID": row.message_id, "X-Orchestration-Key": row.idempotency_key}
    msg = EmailMultiAlternatives(
        row.subject, row.body, settings.DEFAULT_FROM_EMAIL, list(row.to), headers=headers
    )
    if row.html:
        msg.attach_alternative(row.html, "text/html")
    return msg


def _finish(row: OutboxEmail, **changes: Any) -> bool:
    """Store the outcome of this delivery, if the row is still ours (the claim we took)."""
    return (
        OutboxEmail.objects.filter(pk=row.pk, claimed_at=row.claimed_at).update(claimed_at=None, **changes)
        == 1
    )


def outbox_deliver(*, email_id: int) -> str:
    """Send one outbox row now, if it is due and nobody else holds it. Returns what happened:
    "sent", "retry", "failed", "canceled" or "skipped" (not due, already done, or claimed).

    At-least-once: a worker that dies between the SMTP server accepting the message and the
    row being marked sent leaves the row claimed; once the claim's lease is over the relay
    delivers it again, with the same Message-ID."""
    now = timezone.now()
    row = _claim(email_id, now)
    if row is None:
        return "skipped"
    try:
        renderer = EMAIL_RENDERERS.get(row.kind)
        if renderer is not None:
            # The renderer fills in the message at the first try and says whether it still
            # applies (an assignment email for an item closed or reassigned meanwhile does not).
            reason = renderer(row)
            if reason:
                _finish(row, status=OutboxStatus.CANCELED, last_error=reason[:5000])
                return "canceled"
            # Kept on the row: the admin sees what is sent, and every retry sends the same.
            OutboxEmail.objects.filter(pk=row.pk).update(
                to=row.to,
                subject=row.subject[:SUBJECT_MAX],
                body=row.body,
                html=row.html,
                headers=row.headers,
            )
        if not row.to:
            _finish(row, status=OutboxStatus.CANCELED, last_error="no recipient")
            return "canceled"
        _message(row).send()
    except Exception as exc:  # OSError covers every smtplib error; anything else is a bug, kept
        if not isinstance(exc, OSError):
            log.exception("outbox email %s: delivery failed", row.pk)
        error = f"{type(exc).__name__}: {exc}"[:5000]
        if row.attempts >= settings.ORCHESTRATION_EMAIL_MAX_ATTEMPTS:
            _finish(row, status=OutboxStatus.FAILED, last_error=error)
            log.error("outbox email %s (%s) failed after %s tries: %s", row.pk, row.kind, row.attempts, error)
            return "failed"
        delay = email_retry_delay(row.attempts)
        next_at = timezone.now() + dt.timedelta(seconds=delay)
        if _finish(row, next_attempt_at=next_at, last_error=error):
            log.warning(
                "outbox email %s: try %s failed, next in %.0f s: %s", row.pk, row.attempts, delay, error
            )
            from .tasks import deliver_email

            # Not on commit: nothing here is in a transaction. If this message is lost, the
            # relay finds the row due and unclaimed.
            try:
                deliver_email.apply_async((row.pk,), countdown=delay)
            except Exception:  # a broker that is down: the relay picks the row up
                log.warning("outbox email %s: could not queue the next try", row.pk, exc_info=True)
        return "retry"
    _finish(row, status=OutboxStatus.SENT, sent_at=timezone.now(), last_error="")
    return "sent"


def outbox_relay(*, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Queue a delivery for each pending row that is due and unclaimed (or whose claim's lease
    is over): its task message was lost, or its worker died. Called by the sweep."""
    from .tasks import deliver_email

    now = now or timezone.now()
    grace = dt.timedelta(seconds=settings.ORCHESTRATION_EMAIL_RELAY_GRACE_SECONDS)
    lease = dt.timedelta(seconds=settings.ORCHESTRATION_EMAIL_CLAIM_SECONDS)
    ids = list(
        OutboxEmail.objects.filter(
            Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease),
            status=OutboxStatus.PENDING,
            next_attempt_at__lt=now - grace,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:batch]
    )
    for pk in ids:
        deliver_email.delay(pk)
    return len(ids)


def outbox_retry(*, email_ids: Iterable[int]) -> int:
    """Give failed emails a new series of tries now (the Django admin's action). Returns how
    many were failed and are pending again."""
    from .tasks import deliver_email

    ids = list(email_ids)
    with transaction.atomic():
        retried = list(
            OutboxEmail.objects.select_for_update()
            .filter(pk__in=ids, status=OutboxStatus.FAILED)
            .values_list("pk", flat=True)
        )
        OutboxEmail.objects.filter(pk__in=retried).update(
            status=OutboxStatus.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_at=None
        )

        def dispatch() -> None:
            for pk in retried:
                deliver_email.delay(pk)

        transaction.on_commit(dispatch, robust=True)
    return len(retried)
