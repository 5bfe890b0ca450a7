"""A mail server that fails: the send is retried for those not yet served, and the assignment,
committed before the email task runs, is never undone."""

from __future__ import annotations

import logging
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

from orchestration.models import RunStatus
from tests.factories import UserFactory, make_case
from workitems.models import WorkItemStatus
from workitems.services import workitem_reassign
from workitems.tasks import EMAIL_MAX_RETRIES, email_retry_delay

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
def flaky(settings, request):  # type: ignore[no-untyped-def]
    """Mail goes through FlakyBackend; failed sends are retried at once (see eager_retries)."""
    request.getfixturevalue("eager_retries")
    settings.MAILERS = {"default": {"BACKEND": f"{__name__}.FlakyBackend"}}
    FlakyBackend.failures = {}
    FlakyBackend.attempts = []
    mail.outbox = []
    return FlakyBackend


def sent_to() -> list[str]:
    return [m.to[0] for m in mail.outbox]


def test_a_failed_send_is_retried_and_the_assignment_stands(personas, flaky, caplog):
    flaky.failures = {"alice@example.com": 2}
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())

    assert sent_to() == ["alice@example.com"]
    assert flaky.attempts == ["alice@example.com"] * 3
    assert caplog.text.count("assignment email failed, retrying") == 2
    it = item(run, "check")
    assert it.status == WorkItemStatus.ASSIGNED
    run.refresh_from_db()
    assert run.status == RunStatus.IN_PROGRESS


def test_a_retry_sends_only_to_the_members_not_yet_served(personas, flaky):
    for name in ("erin", "frank"):
        UserFactory(username=name).groups.add(personas.engineering)
    flaky.failures = {"erin@example.com": 1}
    load_process("proc", "Case review", interactive("g", "For the group", {"group": "engineering"}))
    launch("proc", make_case())

    # alice was served before the failure; the retry starts again at erin.
    assert flaky.attempts == [
        "alice@example.com",
        "erin@example.com",
        "erin@example.com",
        "frank@example.com",
    ]
    assert sorted(sent_to()) == ["alice@example.com", "erin@example.com", "frank@example.com"]


def test_a_mail_server_that_stays_down_loses_the_email_not_the_assignment(personas, flaky, caplog):
    flaky.failures = {"alice@example.com": 1000, "bob@example.com": 1000}
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    with caplog.at_level(logging.ERROR):
        run = launch("proc", make_case())  # no exception reaches whoever caused the assignment

    assert sent_to() == []
    assert len(flaky.attempts) == EMAIL_MAX_RETRIES + 1
    assert f"assignment email not sent after {EMAIL_MAX_RETRIES + 1} tries" in caplog.text
    it = item(run, "check")
    assert it.status == WorkItemStatus.ASSIGNED
    # The same for a reassignment: it is saved, the person finds it on My Work.
    workitem_reassign(item=it, actor=personas.charlie, user=personas.bob)
    it.refresh_from_db()
    assert it.assignee_user == personas.bob


def test_retries_back_off_up_to_half_an_hour():
    assert [email_retry_delay(n) for n in range(EMAIL_MAX_RETRIES)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1800,
        1800,
    ]
