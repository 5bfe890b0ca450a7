from __future__ import annotations

import re

import pytest

from records.services import record_create, record_update
from tests.factories import UserFactory, make_case, ticket_type

pytestmark = pytest.mark.django_db


def shown(page: str) -> dict[str, str]:
    """The detail page's label → value pairs, tags stripped."""
    pairs = re.findall(
        r'<dt class="col-sm-4">(.*?)</dt>\s*<dd class="col-sm-8[^"]*"[^>]*>(.*?)</dd>', page, re.S
    )
    return {k: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", v)).strip() for k, v in pairs}


def test_detail_formats_each_field_by_type(clerk_client, clerk):
    pat = UserFactory(username="pat")
    record = record_create(
        record_type=ticket_type(),
        name="Projector",
        owner=clerk,
        values={
            "title": "Flickers",
            "body": "first\nsecond",
            "count": 2,
            "price": "9.90",
            "due": "2026-03-01",
            "meeting": "2026-03-01T09:30:00+00:00",
            "urgent": True,
            "colour": "red",
            "contact": "pat@example.com",
            "assignee": pat.pk,
        },
    )
    page = clerk_client.get(f"/records/ticket/{record.pk}/").content.decode()
    assert "<title>Projector · Ticket · Flow Orchestration</title>" in page
    values = shown(page)
    assert values["Title"] == "Flickers"
    assert values["Count"] == "2"
    assert values["Price"] == "9.90"
    assert values["Due"] == "2026-03-01"  # one date format, with the year, on every page
    assert values["Meeting"] == "2026-03-01 09:30"
    assert values["Urgent"] == "Yes"
    assert values["Assignee"] == "pat"
    assert values["Owner"] == "alice"
    assert "first<br>second" in page
    assert "Created" in values and "Updated" in values


def test_empty_fields_show_a_dash(clerk_client):
    record = record_create(record_type=ticket_type(), name="Bare", values={"title": "t"})
    values = shown(clerk_client.get(f"/records/ticket/{record.pk}/").content.decode())
    assert values["Price"] == "—"
    assert values["Assignee"] == "—"
    assert values["Owner"] == "—"


def test_history_from_services_and_the_system_is_listed(clerk_client, clerk):
    case = make_case("Audit", status="open")
    record_update(record=case, values={"status": "closed"})  # no actor: a flow action did it
    page = clerk_client.get(f"/records/case/{case.pk}/").content.decode()
    history = page.split('id="history-heading"')[1]
    assert '<span class="history-old">open</span>' in history
    assert '<span class="history-new">closed</span>' in history
    assert "by the system" in history


def test_a_record_without_changes_says_so(clerk_client):
    case = make_case("Quiet")
    page = clerk_client.get(f"/records/case/{case.pk}/").content.decode()
    assert "No changes since the record was created." in page
    assert "No orchestration has run on this record yet." in page
