"""A mail server that fails: each recipient's outbox row is retried with backoff, and the
assignment, committed with the rows before any delivery, is never undone."""

from __future__ import annotations

import datetime as dt
import logging
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from orchestration.models import OutboxEmail, OutboxStatus, RunStatus
from orchestration.outbox import email_retry_delay, outbox_relay
from tests.factories import UserFactory, make_case
from workitems.models import WorkItemStatus
from workitems.services import workitem_reassign

from .mywork_support import eager_retries, interactive, item, launch, load_process  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyBackend(LocmemBackend):
    """The locmem backend, refusing the next `failures[address]` messages to an address the way
    an SMTP server does (smtplib raises, and the message is not delivered)."""

    failures: dict[str, int] = {}
    attempts: list[str] = []

    def send_messages(self, messages):  # type: ignore[no-untyped-def]
        for message in messages:
            [address] = message.to
            FlakyBackend.attempts.append(address)
            if FlakyBackend.failures.get(address, 0) > 0:
                FlakyBackend.failures[address] -= 1
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


@pytest.fixture
def flaky(settings):  # type: ignore[no-untyped-def]
    """Mail goes through FlakyBackend."""
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}.FlakyBackend"}}
    FlakyBackend.failures = {}
    FlakyBackend.attempts = []
    mail.outbox = []
    return FlakyBackend


def sent_to() -> list[str]:
    return [m.to[0] for m in mail.outbox]


@pytest.mark.usefixtures("eager_retries")
def test_a_failed_send_is_retried_and_the_assignment_stands(personas, flaky, caplog):
    flaky.failures = {"alice@example.com": 2}
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())

    assert sent_to() == ["alice@example.com"]
    assert flaky.attempts == ["alice@example.com"] * 3
    assert caplog.text.count("SMTPServerDisconnected: Connection unexpectedly closed") == 2
    it = item(run, "check")
    assert it.status == WorkItemStatus.ASSIGNED
    run.refresh_from_db()
    assert run.status == RunStatus.IN_PROGRESS
    row = OutboxEmail.objects.get(work_item_id=it.pk)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, "")
    assert row.sent_at is not None


@pytest.mark.usefixtures("eager_retries")
def test_each_recipient_is_a_row_of_its_own_so_a_retry_sends_only_to_them(personas, flaky):
    for name in ("erin", "frank"):
        UserFactory(username=name).groups.add(personas.engineering)
    flaky.failures = {"erin@example.com": 1}
    load_process("proc", "Case review", interactive("g", "For the group", {"group": "engineering"}))
    launch("proc", make_case())

    # alice was served before the failure; only erin's row is tried again.
    assert flaky.attempts == [
        "alice@example.com",
        "erin@example.com",
        "erin@example.com",
        "frank@example.com",
    ]
    assert sorted(sent_to()) == ["alice@example.com", "erin@example.com", "frank@example.com"]
    assert sorted(OutboxEmail.objects.values_list("to", "attempts", "status")) == [
        (["alice@example.com"], 1, "sent"),
        (["erin@example.com"], 2, "sent"),
        (["frank@example.com"], 1, "sent"),
    ]


@pytest.mark.usefixtures("eager_retries")
def test_a_mail_server_that_stays_down_fails_the_email_not_the_assignment(personas, flaky, caplog, settings):
    flaky.failures = {"alice@example.com": 1000, "bob@example.com": 1000}
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    with caplog.at_level(logging.ERROR):
        run = launch("proc", make_case())  # no exception reaches whoever caused the assignment

    tries = settings.ORCHESTRATION_EMAIL_MAX_ATTEMPTS
    assert sent_to() == []
    assert len(flaky.attempts) == tries
    assert f"failed after {tries} tries" in caplog.text
    it = item(run, "check")
    assert it.status == WorkItemStatus.ASSIGNED
    row = OutboxEmail.objects.get(work_item_id=it.pk)
    assert (row.status, row.attempts) == ("failed", tries)
    assert row.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    # The same for a reassignment: it is saved, the person finds it on My Work.
    workitem_reassign(item=it, actor=personas.charlie, user=personas.bob)
    it.refresh_from_db()
    assert it.assignee_user == personas.bob
    assert OutboxEmail.objects.filter(work_item_id=it.pk, status=OutboxStatus.FAILED).count() == 2


def test_a_failed_try_leaves_the_email_pending_with_its_next_try_and_the_relay_sends_it(personas, flaky):
    flaky.failures = {"alice@example.com": 1}
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    before = timezone.now()
    run = launch("proc", make_case())

    row = OutboxEmail.objects.get(work_item_id=item(run, "check").pk)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "Connection unexpectedly closed" in row.last_error
    # The next try is 30 s later (its task was queued with that countdown; eagerly it ran at
    # once, found the row not due yet and left it).
    assert row.next_attempt_at - before >= dt.timedelta(seconds=30)
    assert sent_to() == []
    # Not due yet: the sweep's relay leaves it. Due (and its message lost): the relay sends it.
    assert outbox_relay() == 0
    OutboxEmail.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - dt.timedelta(minutes=5))
    assert outbox_relay() == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)
    assert sent_to() == ["alice@example.com"]


def test_retries_back_off_up_to_half_an_hour():
    assert [email_retry_delay(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1800, 1800]


def test_a_message_queued_before_the_outbox_writes_the_rows_once(personas, mailoutbox):
    """An upgrade with old `send_assignment_email` messages still in the broker."""
    from workitems.tasks import send_assignment_email

    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())
    it = item(run, "check")
    assert send_assignment_email(it.pk, f"user:{personas.alice.pk}") == 1  # asks for alice's row
    assert send_assignment_email(it.pk, f"user:{personas.bob.pk}") == 0  # stale: not bob's item
    assert OutboxEmail.objects.filter(work_item_id=it.pk).count() == 1  # the row already written
    assert len(mailoutbox) == 1
