"""The Work Items page runs a fixed number of queries for one item or a full page of 50 on as many
records, orchestrations and assignees: a regression to one query per row fails here."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import grant, make_case
from workitems.models import WorkItem
from workitems.services import workitem_complete

from .mywork_support import interactive, item, launch, load_process, ticket, ticket_type

pytestmark = pytest.mark.django_db

# session, user, the viewer's permissions (user's, groups'), then: the page of items (with their
# runs' ids, stage keys, and their records' names and types), the people it names (assignees,
# holders, completers), the versions' stage labels, the filter choices that also name each row's
# group, queue, orchestration and record type (four), the rows' assignment emails from the outbox
# (one, for every row: their delivery state is shown with the assignee), and the My Work badge of
# the navigation.
PAGE_QUERIES = 13
# Plus one per user, group, queue or orchestration filter (its name turned into an id first) and
# one for an assignee filter (how many items the assignee holds): workitems/selectors.py says why.


def count(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("/work-items/", 0),
        ("/work-items/?view=stalled&older_than=0", 0),
        ("/work-items/?view=overdue", 0),
        ("/work-items/?view=completed", 0),
        ("/work-items/?record_type=case&orchestration=cases", 1),
        # (+1 for the user filter: the picker shows the person's name.)
        ("/work-items/?view=completed&user=alice&orchestration=cases", 4),
    ],
)
def test_work_items_page_queries_do_not_grow_with_items(client, personas, url, extra):
    ticket_type()
    load_process("cases", "Case review", interactive("check", "Check", {"user": "alice"}))
    load_process("tickets", "Tickets", interactive("look", "Look", {"queue": "triage"}), record_type="ticket")
    manager = grant(personas.charlie, "workitems.view_workitem")

    def add(start: int, stop: int) -> None:
        for i in range(start, stop):
            case = i % 2 == 0
            run = launch("cases", make_case(f"Case {i}")) if case else launch("tickets", ticket(f"T {i}"))
            if "completed" in url:
                key, who = ("check", personas.alice) if case else ("look", personas.bob)
                workitem_complete(item=item(run, key), user=who, data={"approved": "true"})
        WorkItem.objects.update(due_at=timezone.now() - timedelta(hours=1))  # all overdue

    add(0, 1)
    client.force_login(manager)
    count(client, url)  # warm the per-process caches (content types, parsed definitions)
    one = count(client, url)
    assert client.get(url).content.decode().count("<tr data-item=") == 1
    add(1, 101)  # on 100 more records, of two types, in two orchestrations, for a user and a queue
    html = client.get(url).content.decode()
    assert html.count("<tr data-item=") == 50
    assert html.count("data-email=") == 50  # every row's assignment email, from one outbox query
    assert count(client, url) == one == PAGE_QUERIES + extra
