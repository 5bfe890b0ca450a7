"""The Work Guide costs a fixed number of queries however many items, records, groups and
queues there are: a regression to one query per item fails here, not in production."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.services import run_launch
from tests.factories import RECORD_PERMS, grant

from .guide_support import define, item_of, post_screen, start, then_approve

pytestmark = pytest.mark.django_db

# Session, user, then the panel view's own: 2 x permissions, record; then the Work Guide:
PANEL_LIST = 5 + 1  # + the viewer's open items on the record, with everything a row shows
# + the viewer's draft, the item's flow version (its document is parsed once per process)
PANEL_OPEN = PANEL_LIST + 2
# + the opened item's history and comments: its events, each comment's text in the same query
# (workitems/history.py).
PANEL_OPEN += 1


def count(client, url: str, **extra) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **extra)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.content.decode()


@pytest.fixture
def alice_client(client, personas):  # type: ignore[no-untyped-def]
    grant(personas.alice, *RECORD_PERMS)
    client.force_login(personas.alice)
    return client


@pytest.mark.parametrize("assignee", [{"user": "alice"}, {"group": "engineering"}, {"queue": "eng_queue"}])
def test_the_list_costs_the_same_for_one_item_or_many_on_many_records(alice_client, assignee):
    define(assignee=assignee, then=[then_approve("alice")])
    case, _ = start("Busy")
    url = f"/records/case/{case.pk}/panels/work_guide/"
    one, html = count(alice_client, url)
    assert html.count('class="work-item ') == 1
    # More items on this record (more runs), and many on other records.
    for _ in range(4):
        run_launch(orchestration="claims", record=case)
    for i in range(10):
        start(f"Other {i}")
    many, html = count(alice_client, url)
    assert html.count('class="work-item ') == 5
    assert many == one == PANEL_LIST


def test_an_open_item_costs_one_query_more_whatever_else_there_is(alice_client):
    define()
    case, run = start("Busy")
    item = item_of(run)
    url = f"/records/case/{case.pk}/panels/work_guide/?item={item.pk}"
    alice_client.get(url)  # parse the flow document once, as a running server has
    post_screen(alice_client, item, 0, "next", amount="3", kind="repair")
    one, html = count(alice_client, url)
    assert "Screen 2 of 2" in html
    for i in range(10):
        start(f"Other {i}")
    many, _ = count(alice_client, url)
    assert many == one == PANEL_OPEN


def test_the_detail_page_pays_one_query_for_the_work_guide(alice_client):
    define()
    case, _ = start()
    alice_client.get(f"/records/case/{case.pk}/")
    with_items, html = count(alice_client, f"/records/case/{case.pk}/")
    assert "Check the claim" in html
    for i in range(10):
        start(f"Other {i}")
    again, _ = count(alice_client, f"/records/case/{case.pk}/")
    assert again == with_items
