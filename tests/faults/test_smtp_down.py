"""The mail server is down: assignments stand, their emails wait in the outbox with a growing
backoff (visible on the item's pages), are sent exactly once when the server is back, and are
`failed` with the error after the last try.

Real PostgreSQL, Redis, a `celery worker` subprocess and the SMTP sink (tests/workitems/
smtp_sink.py) stopped and started again on the same port. Backoff in seconds, not minutes."""

# ruff: noqa: F811  (pytest fixtures imported from support_effects are arguments here)
from __future__ import annotations

import time
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from orchestration import services
from orchestration.models import OutboxEmail, OutboxStatus, Run, RunStatus
from tests.factories import UserFactory, case_type, make_case
from tests.workitems.mywork_support import interactive, load_process
from workitems.models import WorkItem, WorkItemStatus

from .support_effects import sink, start_worker, wait_for  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def launch_group_item(personas: Any) -> tuple[Run, WorkItem]:
    """An item for the engineering group: alice and erin are emailed (two rows)."""
    erin: Any = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    case_type()
    load_process("proc", "Case review", interactive("look", "Take a look", {"group": "engineering"}))
    run = services.run_launch(orchestration="proc", record=make_case("Printer on fire"))
    return run, WorkItem.objects.get(run=run)


def page(client: Any, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_emails_wait_with_backoff_and_are_sent_once_when_the_server_is_back(
    client, settings, personas, sink, start_worker
):
    sink.stop()  # the port now refuses connections
    settings.ORCHESTRATION_EMAIL_RELAY_GRACE_SECONDS = 0
    start_worker(EMAIL_URL=sink.url, ORCHESTRATION_EMAIL_RETRY_BASE_SECONDS="1")
    run, item = launch_group_item(personas)

    # Observe each row's delay between a failed try and the next: 1 s, 2 s, 4 s...
    delays: dict[tuple[int, int], float] = {}

    def tried(n: int) -> bool:
        for row in OutboxEmail.objects.filter(work_item_id=item.pk):
            if row.status == OutboxStatus.PENDING and row.claimed_at is None and row.last_attempt_at:
                delays[(row.pk, row.attempts)] = (row.next_attempt_at - row.last_attempt_at).total_seconds()
        return len({k for k in delays if k[1] >= n}) == 2

    wait_for(lambda: tried(3), timeout=60, interval=0.1)
    rows = list(OutboxEmail.objects.filter(work_item_id=item.pk).order_by("pk"))
    assert [r.to for r in rows] == [["alice@example.com"], ["erin@example.com"]]
    for row in rows:
        assert row.status == OutboxStatus.PENDING
        assert row.attempts >= 3
        assert "ConnectionRefusedError" in row.last_error
        assert row.next_attempt_at > row.last_attempt_at  # type: ignore[operator]
        observed = [delays[(row.pk, n)] for n in (1, 2, 3) if (row.pk, n) in delays]
        assert len(observed) >= 2 and observed == sorted(observed) and observed[-1] > observed[0]
    # The assignment stands.
    item.refresh_from_db()
    run.refresh_from_db()
    assert (item.status, run.status) == (WorkItemStatus.ASSIGNED, RunStatus.IN_PROGRESS)
    # Visible where managers and admins look at the item.
    client.force_login(personas.admin)
    for html in (page(client, "/work-items/"), page(client, reverse("monitor:run", args=[run.pk]))):
        assert html.count("Email pending") == 2
        assert "next try" in html and "ConnectionRefusedError" in html
    assert "Email pending" in page(client, reverse("admin:workitems_workitem_change", args=[item.pk]))

    sink.start()  # back, on the same port

    def all_sent() -> bool:
        services.sweep()  # relays rows that are due; their own countdown tasks may come first
        return OutboxEmail.objects.filter(work_item_id=item.pk, status=OutboxStatus.SENT).count() == 2

    wait_for(all_sent, timeout=60, interval=0.5)
    time.sleep(2)  # countdown messages still queued find the rows sent and send nothing
    services.sweep()
    messages = sink.messages()
    assert sorted(m["To"] for m in messages) == ["alice@example.com", "erin@example.com"]
    rows = list(OutboxEmail.objects.filter(work_item_id=item.pk).order_by("pk"))
    assert sorted(m["Message-ID"] for m in messages) == sorted(r.message_id for r in rows)
    assert all(r.sent_at is not None and r.last_error == "" for r in rows)
    assert page(client, "/work-items/").count("Email sent") == 2


def test_after_the_last_try_the_email_is_failed_with_the_error(
    client, settings, personas, sink, start_worker
):
    sink.stop()
    start_worker(
        EMAIL_URL=sink.url, ORCHESTRATION_EMAIL_RETRY_BASE_SECONDS="0.3", ORCHESTRATION_EMAIL_MAX_ATTEMPTS="3"
    )
    before = timezone.now()
    run, item = launch_group_item(personas)

    wait_for(
        lambda: OutboxEmail.objects.filter(work_item_id=item.pk, status=OutboxStatus.FAILED).count() == 2,
        timeout=60,
    )
    for row in OutboxEmail.objects.filter(work_item_id=item.pk):
        assert row.attempts == 3
        assert "ConnectionRefusedError" in row.last_error and "Connection refused" in row.last_error
        assert row.sent_at is None and row.last_attempt_at > before  # type: ignore[operator]
    item.refresh_from_db()
    assert item.status == WorkItemStatus.ASSIGNED
    # The sweep does not relay failed rows: they wait for an admin's retry.
    services.sweep()
    assert OutboxEmail.objects.filter(status=OutboxStatus.FAILED).count() == 2
    client.force_login(personas.admin)
    for html in (page(client, "/work-items/"), page(client, reverse("monitor:run", args=[run.pk]))):
        assert html.count("Email failed") == 2
        assert "3 tries" in html and "Connection refused" in html
    assert sink.messages() == []
