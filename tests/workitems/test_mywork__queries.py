"""My Work runs a fixed number of queries however many items, records, processes, groups and
queues the viewer has: a regression to one query per row fails here, not in production."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_case
from workitems.models import SavedFilter

from .mywork_support import interactive, launch, load_process, ticket, ticket_type

pytestmark = pytest.mark.django_db

# session, user, then: orchestration choices, record type choices, count, the page of items (with
# their runs, processes, assignees, holders and records), the versions' stage labels, the badge,
# the viewer's permissions (user's, groups') for the menu's Monitoring link, and the viewer's
# saved views. A search reads the stage labels of all the viewer's versions (to match them)
# instead of the page's: the same count.
MY_WORK_QUERIES = 11
# The live search (htmx) gets the results alone: no filter choices, no navigation (badge,
# permissions): session, user, count, page, stage labels, saved views.
MY_WORK_HTMX_QUERIES = 6


def count(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def processes() -> None:
    ticket_type()
    steps = (
        interactive("mine", "Mine", {"user": "alice"}),
        interactive("group", "Group", {"group": "engineering"}),
        interactive("queue", "Queue", {"queue": "eng_queue"}),
    )
    load_process("cases", "Case review", *steps)
    load_process("tickets", "Ticket handling", *steps, record_type="ticket")


@pytest.mark.parametrize(
    "url",
    [
        "/my-work/",
        "/my-work/?sort=record&orchestration=cases&record_type=case",
        "/my-work/?q=e&sort=priority",  # "e" is in every record's name, task and stage
        "/my-work/?q=review&record_type=case",  # the stage label "Review"
    ],
)
def test_my_work_queries_do_not_grow_with_items_and_records(client, personas, django_assert_num_queries, url):
    processes()
    launch("cases", make_case("First"))  # three items on one record
    client.force_login(personas.alice)
    for i in range(5):
        SavedFilter.objects.create(user=personas.alice, name=f"View {i}", query=f"q=case+{i}")
    count(client, url)  # warm the per-process caches (parsed definitions, content types)
    with django_assert_num_queries(MY_WORK_QUERIES):
        client.get(url)

    for i in range(15):  # 90 more items on 30 more records of two types, in two processes
        launch("cases", make_case(f"Case {i}"))
        launch("tickets", ticket(f"Ticket {i}"))
    with django_assert_num_queries(MY_WORK_QUERIES):
        html = client.get(url).content.decode()
    assert html.count("data-item=") == 25  # a full page


def test_the_live_search_queries_do_not_grow_with_items(client, personas, django_assert_num_queries):
    processes()
    launch("cases", make_case("First"))
    client.force_login(personas.alice)
    url = "/my-work/?q=e&sort=priority"
    client.get(url, headers={"HX-Request": "true"})  # warm the per-process caches
    with django_assert_num_queries(MY_WORK_HTMX_QUERIES):
        client.get(url, headers={"HX-Request": "true"})
    for i in range(15):
        launch("cases", make_case(f"Case {i}"))
        launch("tickets", ticket(f"Ticket {i}"))
    with django_assert_num_queries(MY_WORK_HTMX_QUERIES):
        html = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert html.count("data-item=") == 25
