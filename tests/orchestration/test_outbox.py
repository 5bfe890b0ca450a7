"""The email outbox: a background flow's send_email is a row written with the step's result
(none for an attempt that failed, one however many attempts ran), delivered after commit with
a stable Message-ID; the claim lets one delivery through; the relay sends rows whose task was
lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from orchestration.models import OutboxEmail, OutboxStatus, StepStatus
from orchestration.outbox import message_id_for, outbox_deliver, outbox_relay, outbox_write
from orchestration.registry import FlowContext, register_flow
from tests.factories import auto_flow, load, make_case, orchestration

from .engine_support import bg, launch, stage, step

pytestmark = pytest.mark.django_db(transaction=True)

FAILURES: list[int] = [0]


@register_flow("fail_after_email")
def fail_after_email(ctx: FlowContext) -> dict[str, Any]:
    if FAILURES[0] > 0:
        FAILURES[0] -= 1
        raise RuntimeError("crashed after the email action")
    return {}


def email_flow(*extra: dict[str, Any]) -> dict[str, Any]:
    return auto_flow(
        "mailer",
        actions=[
            {
                "type": "send_email",
                "to": "['ops@example.com', record.description]",
                "subject": "About {{ record.name }}",
                "body": "Hello from run {{ run.id }}",
            },
            *extra,
            *auto_flow("x")["actions"],
        ],
    )


def test_a_background_send_email_is_one_row_written_with_the_result_and_sent_after(personas, mailoutbox):
    load(email_flow(), orchestration(stages=[stage("s", bg("b", "mailer"))]))
    run = launch(record=make_case("Case 9", description="cc@example.com"))
    sr = step(run, "b")
    [row] = OutboxEmail.objects.all()
    assert (row.kind, row.run_id, row.step_run_id, row.idempotency_key) == (
        "flow",
        run.pk,
        sr.pk,
        f"step:{sr.pk}:a0",
    )
    assert (row.status, row.attempts, row.to) == ("sent", 1, ["ops@example.com", "cc@example.com"])
    [msg] = mailoutbox
    assert msg.subject == "About Case 9" and msg.to == ["ops@example.com", "cc@example.com"]
    assert msg.extra_headers["Message-ID"] == row.message_id == message_id_for(f"step:{sr.pk}:a0")
    assert msg.extra_headers["X-Orchestration-Key"] == row.idempotency_key
    assert msg.message()["Message-ID"] == row.message_id


def test_a_failed_attempt_writes_nothing_and_the_retry_writes_the_email_once(personas, mailoutbox):
    FAILURES[0] = 2
    load(
        email_flow({"type": "call", "name": "fail_after_email"}),
        orchestration(stages=[stage("s", bg("b", "mailer", max_attempts=3))]),
    )
    run = launch(record=make_case())
    assert (step(run, "b").status, step(run, "b").attempts) == (StepStatus.COMPLETED, 3)
    assert OutboxEmail.objects.count() == 1
    assert len(mailoutbox) == 1


def test_a_step_that_never_succeeds_sends_nothing(personas, mailoutbox):
    FAILURES[0] = 5
    load(
        email_flow({"type": "call", "name": "fail_after_email"}),
        orchestration(stages=[stage("s", bg("b", "mailer", max_attempts=2))]),
    )
    run = launch(record=make_case())
    assert step(run, "b").status == StepStatus.ERROR
    assert OutboxEmail.objects.count() == 0
    assert mailoutbox == []


def write(key: str = "k1") -> OutboxEmail:
    with transaction.atomic():
        outbox_write(kind="flow", key=key, to=["a@example.com"], subject="S", body="B")
    return OutboxEmail.objects.get(idempotency_key=key)


def test_writing_the_same_key_again_keeps_one_row(mailoutbox):
    write()
    write()
    assert OutboxEmail.objects.count() == 1
    assert len(mailoutbox) == 1  # the second write's delivery found the row sent


def test_a_claimed_row_is_not_sent_by_a_second_delivery_until_its_lease_is_over(settings, mailoutbox):
    row = write()
    mailoutbox.clear()
    now = timezone.now()
    OutboxEmail.objects.filter(pk=row.pk).update(status=OutboxStatus.PENDING, claimed_at=now, sent_at=None)
    assert outbox_deliver(email_id=row.pk) == "skipped"  # a live delivery holds it
    assert outbox_relay() == 0
    lease = dt.timedelta(seconds=settings.ORCHESTRATION_EMAIL_CLAIM_SECONDS + 1)
    OutboxEmail.objects.filter(pk=row.pk).update(claimed_at=now - lease, next_attempt_at=now - lease)
    assert outbox_relay() == 1  # the dead delivery's row is sent again (eagerly: at once)
    assert len(mailoutbox) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.claimed_at) == ("sent", 2, None)
    assert outbox_deliver(email_id=row.pk) == "skipped"  # sent rows stay sent
    assert len(mailoutbox) == 1


def test_the_relay_leaves_rows_that_are_done_or_not_due(mailoutbox):
    for key, status in (("sent", "sent"), ("failed", "failed"), ("canceled", "canceled")):
        row = write(key)
        OutboxEmail.objects.filter(pk=row.pk).update(
            status=status, next_attempt_at=timezone.now() - dt.timedelta(hours=1)
        )
    later = write("later")
    OutboxEmail.objects.filter(pk=later.pk).update(
        status="pending", next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )
    assert outbox_relay() == 0


def test_an_admin_retry_gives_a_failed_email_a_new_series_of_tries(mailoutbox):
    from orchestration.outbox import outbox_retry

    row = write()
    mailoutbox.clear()
    OutboxEmail.objects.filter(pk=row.pk).update(status="failed", attempts=9, last_error="boom")
    assert outbox_retry(email_ids=[row.pk]) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert len(mailoutbox) == 1
    assert outbox_retry(email_ids=[row.pk]) == 0  # only failed emails are retried
