"""The list and detail pages run a fixed number of queries however many records, changes and
runs there are: a regression to one query per row fails here, not in production."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.services import run_launch
from records.models import Record
from records.services import record_create, record_update
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration, ticket_type

pytestmark = pytest.mark.django_db

# session, user, 2 x permissions, the navigation's My Work badge (one COUNT), then the page's own.
# A panel another app registers adds its queries to DETAIL_MAX on purpose: the budget is raised
# knowingly, not crept past.
LIST_MAX = 9  # + record type, count, page of records (with owners), usernames of user columns
# + record (type, owner), history (with authors), usernames, runs, launchable versions, and the
# runs' stage path: their stage runs, the current stages' step runs, who holds those steps' work.
DETAIL_MAX = 13
# The Work Guide panel (workitems): + the viewer's open items on the record, in one query.
DETAIL_MAX += 1


def count(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def add_tickets(n: int, users: list) -> None:  # type: ignore[type-arg]
    rt = ticket_type()
    for i in range(n):
        record_create(
            record_type=rt,
            name=f"T{i}",
            owner=users[i % len(users)],
            values={"title": "x", "count": i, "assignee": users[(i + 1) % len(users)].pk},
        )
    # Put the user field among the list's columns, so usernames are looked up for every row.
    rt.fields = [rt.field("assignee"), *[f for f in rt.fields if f["name"] != "assignee"]]
    rt.save()


def test_list_queries_do_not_grow_with_records(clerk_client, clerk, django_assert_max_num_queries):
    users = [UserFactory() for _ in range(5)]
    add_tickets(1, users)
    one = count(clerk_client, "/records/ticket/")
    add_tickets(40, users)
    with django_assert_max_num_queries(LIST_MAX):
        full = count(clerk_client, "/records/ticket/")
    assert full == one
    assert count(clerk_client, "/records/ticket/?q=T&page=2") == one


@pytest.fixture
def launcher(clerk):  # type: ignore[no-untyped-def]
    load(
        auto_flow("noop"),
        orchestration(
            stages=[{"key": "a", "label": "A", "steps": [{"key": "s", "kind": "background", "flow": "noop"}]}]
        ),
    )
    return grant(clerk, "orchestration.launch_orchestration")


def grow(case: Record, n: int, users: list) -> None:  # type: ignore[type-arg]
    for _ in range(n):
        i = case.changes.count()
        record_update(record=case, values={"status": f"s{i}"}, owner=users[i % len(users)])
        run_launch(orchestration="proc", record=case)


def test_detail_queries_do_not_grow_with_changes_and_runs(
    clerk_client, launcher, django_assert_max_num_queries
):
    users = [UserFactory() for _ in range(5)]
    case = make_case("Busy", owner=launcher)
    grow(case, 1, users)
    url = f"/records/case/{case.pk}/"
    one = count(clerk_client, url)
    grow(case, 30, users)
    with django_assert_max_num_queries(DETAIL_MAX):
        many = count(clerk_client, url)
    assert many == one
    page = clerk_client.get(url).content.decode()
    # Everything is on the page: each change and each run is one list item.
    assert page.count('class="list-group-item px-0"') == case.changes.count() + 31


def test_edit_form_queries_do_not_grow_with_users(clerk_client, clerk, django_assert_max_num_queries):
    case = make_case("Form")
    url = f"/records/case/{case.pk}/edit/"
    one = count(clerk_client, url)
    for _ in range(20):
        UserFactory()
    with django_assert_max_num_queries(one):
        clerk_client.get(url)
