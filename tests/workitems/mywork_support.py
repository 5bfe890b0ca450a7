"""Builders and fixtures shared by the My Work and email tests: orchestrations whose steps are assigned to
the personas (alice: group engineering and, through it, queue eng_queue; bob: group support and
queue triage)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from orchestration.models import Run
from orchestration.services import run_launch
from records.models import Record, RecordType
from records.services import record_create, record_type_upsert
from tests.factories import load, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus


def interactive(key: str, label: str, assignee: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "kind": "interactive",
        "flow": "review",
        "assignee": assignee,
        **extra,
    }


def load_process(
    api_name: str = "proc",
    label: str = "Case review",
    *steps: dict[str, Any],
    record_type: str = "case",
    stage_label: str = "Review",
) -> None:
    """An orchestration with one stage whose steps all start at once (one item each)."""
    doc = orchestration(
        api_name,
        stages=[{"key": "review", "label": stage_label, "steps": list(steps)}],
        start={"type": "autolaunched", "record_type": record_type},
    )
    doc["label"] = label
    load(screen_flow("review"), doc)


def everyone_process() -> None:
    """ "proc": five parallel steps, one per kind of assignee."""
    load_process(
        "proc",
        "Case review",
        interactive("mine", "Check the facts", {"user": "alice"}),
        interactive("group", "Engineering look", {"group": "engineering"}),
        interactive("queue", "Engineering queue", {"queue": "eng_queue"}),
        interactive("triage", "Triage it", {"queue": "triage"}),
        interactive("bobs", "Bob decides", {"user": "bob"}),
    )


def launch(name: str, record: Record | None) -> Run:
    return run_launch(orchestration=name, record=record)


def item(run: Run, step_key: str) -> WorkItem:
    return WorkItem.objects.get(run=run, step_run__key=step_key, status=WorkItemStatus.ASSIGNED)


def age(item: WorkItem, *, hours: float) -> None:
    """Make the item look `hours` old (tests set time explicitly instead of sleeping)."""
    WorkItem.objects.filter(pk=item.pk).update(created_at=timezone.now() - timedelta(hours=hours))


def ticket_type() -> RecordType:
    return record_type_upsert(
        api_name="ticket", label="Ticket", fields=[{"name": "title", "type": "text", "required": True}]
    )


def ticket(name: str) -> Record:
    return record_create(record_type=ticket_type(), name=name, values={"title": name})


@pytest.fixture
def eager_retries(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Let the outbox's retries run at once in Celery's eager mode: with no backoff the next
    try is due at once, and its task (queued by the failed delivery) runs inside it, as a worker
    would run it later. Errors do not propagate, as a worker's would not."""
    from config.celery import app

    settings.ORCHESTRATION_EMAIL_RETRY_BASE_SECONDS = 0
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True
