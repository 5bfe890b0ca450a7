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
from tests.workitems import guide_support
from tests.workitems.mywork_support import interactive, load_process
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_claim, workitem_comment, workitem_complete, workitem_reassign

pytestmark = pytest.mark.django_db

# session, user, 2 x permissions, the navigation's My Work badge (one COUNT), then the page's own.
# A panel another app registers adds its queries to DETAIL_MAX on purpose: the budget is raised
# knowingly, not crept past.
LIST_MAX = 9  # + record type, count, page of records (with owners), usernames of user columns
HOME_MAX = 8  # + the types with their two counts, the viewer's newest records, everyone's newest
# + record (type, owner), history (with authors), usernames, runs, launchable versions, and the
# runs' stage path: their stage runs, the current stages' step runs, who holds those steps' work.
DETAIL_MAX = 13
# The Work Guide panel (workitems): + the viewer's open items on the record, in one query.
DETAIL_MAX += 1
# The Task history panel (workitems): + the record's completed items the viewer may see, and
# their events with each comment's text (workitems/history.py). A completed screen with a person
# field costs one more (those people's names); the tests here have none.
DETAIL_MAX += 2


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


def test_home_queries_do_not_grow_with_records_types_and_runs(clerk_client, clerk, django_assert_num_queries):
    load_process("review", "Case review", interactive("a", "Review", {"user": "alice"}))
    users = [UserFactory() for _ in range(3)]
    add_tickets(1, users)
    run_launch(orchestration="review", record=make_case("One", owner=clerk))
    count(clerk_client, "/records/")  # content types cached, as a running server has them
    with django_assert_num_queries(HOME_MAX):
        clerk_client.get("/records/")
    add_tickets(30, [clerk, *users])
    for i in range(10):
        run_launch(orchestration="review", record=make_case(f"Case {i}", owner=clerk))
    with django_assert_num_queries(HOME_MAX):
        html = clerk_client.get("/records/").content.decode()
    assert html.count('<li class="list-group-item px-0') == 15  # 5 of hers, 10 of everyone's
    assert 'data-count="records">11<' in html and 'data-count="open-runs">11<' in html


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


def complete_items(case: Record, n: int, people) -> None:  # type: ignore[no-untyped-def]
    """`n` more runs on `case` whose Work Guide item was reassigned, claimed, commented on and
    completed: what the Task history panel lists."""
    for i in range(n):
        run = run_launch(orchestration="claims", record=case)
        item = WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)
        workitem_reassign(item=item, actor=people.charlie, group=people.engineering, reason=f"cover {i}")
        item.refresh_from_db()
        workitem_claim(item=item, user=people.alice)
        for body in ("Looking", "Done soon"):
            workitem_comment(item=item, author=people.alice, body=body)
        item.refresh_from_db()
        workitem_complete(
            item=item, user=people.alice, data={"amount": "5", "kind": "repair", "reason": "ok"}
        )


def test_detail_queries_do_not_grow_with_completed_items_and_comments(
    clerk_client, personas, django_assert_max_num_queries
):
    grant(personas.alice, "workitems.view_workitem")  # she sees every item's history
    guide_support.define()
    case = make_case("Flooded")
    complete_items(case, 1, personas)
    url = f"/records/case/{case.pk}/"
    clerk_client.get(url)  # the flow documents parsed once, as a running server has them
    one = count(clerk_client, url)
    complete_items(case, 4, personas)
    with django_assert_max_num_queries(DETAIL_MAX):
        many = count(clerk_client, url)
    assert many == one
    page = clerk_client.get(url).content.decode()
    assert page.count('class="task-history-item ') == 5
    assert page.count("Done soon") == 5


def test_edit_form_queries_do_not_grow_with_users(clerk_client, clerk, django_assert_max_num_queries):
    case = make_case("Form")
    url = f"/records/case/{case.pk}/edit/"
    one = count(clerk_client, url)
    for _ in range(20):
        UserFactory()
    with django_assert_max_num_queries(one):
        clerk_client.get(url)
