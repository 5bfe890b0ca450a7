"""Two beats at once, and a tick delivered twice: on PostgreSQL (real row locks, two connections),
thirty items' reminders and escalations fire exactly once each, counted in rows, emails and events."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from orchestration.models import OutboxEmail, RunEvent
from tests.clock import Clock
from tests.conftest import require_postgresql
from tests.factories import make_case
from tests.orchestration.engine_support import launch
from workitems import sla
from workitems.models import FiredRule, WorkItem
from workitems.tasks import sla_tick as sla_tick_task

from .test_sla import berlin, define

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = 30


def test_two_beats_and_a_duplicate_delivery_fire_each_rule_once(
    personas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postgresql("two ticks racing need real row locks")
    personas.alice.email = "alice@example.com"
    personas.alice.save()
    define(
        rules=[
            {"key": "remind", "at": "-4 business hours", "email": {"to": "assignee", "subject": "Due soon"}},
            {"key": "escalate", "at": "due", "reassign": {"queue": "triage"}, "priority": "raise"},
        ]
    )
    clock = Clock(monkeypatch, berlin(2026, 12, 23, 15, 0))
    for n in range(ITEMS):
        launch("cases_sla", record=make_case(f"Case {n}"))
    at_due = clock.at(berlin(2026, 12, 28, 15, 0))  # both rules are due for every item
    barrier = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def beat() -> None:
        try:
            barrier.wait()
            reports.append(sla.sla_tick(now=at_due, batch=7))  # small batches: more interleaving
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    sla_tick_task.apply()  # the same tick delivered again (as a Celery task): nothing new

    assert sum(r.fired for r in reports) == 2 * ITEMS
    assert FiredRule.objects.count() == 2 * ITEMS
    assert FiredRule.objects.filter(rule="remind").count() == ITEMS
    assert OutboxEmail.objects.filter(kind="rule").count() == ITEMS
    assert RunEvent.objects.filter(name="workitems.item.escalated").count() == 2 * ITEMS
    assert RunEvent.objects.filter(name="workitems.item.reassigned").count() == ITEMS
    assert WorkItem.objects.filter(assignee_queue__api_name="triage", assignments=2).count() == ITEMS
    assert not WorkItem.objects.filter(next_rule_at__isnull=False).exists()
