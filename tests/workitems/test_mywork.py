"""My Work: the viewer's open items on every record, with filters, sorting, claim and release,
and the count badge in the navigation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_case
from workitems.models import WorkItem
from workitems.services import workitem_complete

from .mywork_support import (
    age,
    everyone_process,
    interactive,
    item,
    launch,
    load_process,
    ticket,
    ticket_type,
)

pytestmark = pytest.mark.django_db

URL = "/my-work/"


def rows(html: str) -> list[str]:
    """The task labels of the table's rows, top to bottom."""
    return re.findall(r'<a class="fw-semibold" href="[^"]*">([^<]+)</a>', html)


def page(client, url: str = URL) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def everyone(personas):  # type: ignore[no-untyped-def]
    everyone_process()
    case = make_case("Printer on fire")
    return launch("proc", case), case


def test_lists_items_of_the_viewer_their_groups_and_their_queues(client, personas, everyone):
    client.force_login(personas.alice)
    assert sorted(rows(page(client))) == ["Check the facts", "Engineering look", "Engineering queue"]
    client.force_login(personas.bob)
    assert sorted(rows(page(client))) == ["Bob decides", "Triage it"]
    client.force_login(personas.charlie)
    html = page(client)
    assert rows(html) == []
    assert "Nothing to do." in html


def test_each_row_links_to_the_record_page_with_the_item_opened(client, personas, everyone):
    run, case = everyone
    client.force_login(personas.alice)
    html = page(client)
    mine = item(run, "mine")
    link = f"/records/case/{case.pk}/?item={mine.pk}#work-item-{mine.pk}"
    assert f'<a class="fw-semibold" href="{link}">Check the facts</a>' in html
    assert f'<a href="{link}">Printer on fire</a>' in html
    # Process, stage (the stage's label from the definition) and who it is assigned to.
    row = re.search(rf'data-item="{mine.pk}">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "Case review" in row
    assert "Review" in row
    assert re.search(r'd-md-table-cell">\s*you\s*</td>', row)
    assert ">just now</time>" in row  # created a moment ago


def test_completed_and_canceled_items_leave_the_list(client, personas, everyone):
    run, _ = everyone
    client.force_login(personas.alice)
    workitem_complete(item=item(run, "mine"), user=personas.alice, data={"approved": "true"})
    assert "Check the facts" not in rows(page(client))
    WorkItem.objects.filter(run=run).update(status="canceled")
    assert rows(page(client)) == []


def test_group_and_queue_items_show_who_holds_them_and_can_be_claimed(client, personas, everyone):
    run, _ = everyone
    group_item = item(run, "group")
    client.force_login(personas.alice)
    html = page(client)
    assert html.count(">Claim<") == 2  # the group and the queue item; her own item needs no claim

    response = client.post(f"/my-work/{group_item.pk}/claim/", {"sort": "newest"})
    assert response.status_code == 302
    assert response["Location"] == "/my-work/?sort=newest"
    html = page(client, response["Location"])
    assert "You now hold “Engineering look”" in html
    row = re.search(rf'data-item="{group_item.pk}">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "held by you" in row
    assert ">Release<" in row

    # Another engineer sees it held and cannot claim it.
    from tests.factories import UserFactory

    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    client.force_login(erin)
    row = re.search(rf'data-item="{group_item.pk}">(.*?)</tr>', page(client), re.S).group(1)  # type: ignore[union-attr]
    assert "held by alice" in row
    assert ">Claim<" not in row
    response = client.post(f"/my-work/{group_item.pk}/claim/", follow=True)
    assert "someone else already holds this item" in response.content.decode()

    client.force_login(personas.alice)
    response = client.post(f"/my-work/{group_item.pk}/release/", follow=True)
    assert "You released “Engineering look”" in response.content.decode()
    group_item.refresh_from_db()
    assert group_item.claimed_by is None


def test_items_of_other_people_cannot_be_claimed_through_my_work(client, personas, everyone):
    run, _ = everyone
    client.force_login(personas.alice)
    assert client.post(f"/my-work/{item(run, 'triage').pk}/claim/").status_code == 404
    assert client.get(f"/my-work/{item(run, 'group').pk}/claim/").status_code == 405


def test_filters_by_process_and_record_type(client, personas):
    ticket_type()
    load_process("proc", "Case review", interactive("a", "Review the case", {"user": "alice"}))
    load_process(
        "tickets",
        "Ticket handling",
        interactive("b", "Answer the ticket", {"user": "alice"}),
        record_type="ticket",
    )
    load_process("audit", "Case audit", interactive("c", "Audit the case", {"user": "alice"}))
    launch("proc", make_case("C1"))
    launch("tickets", ticket("T1"))
    launch("audit", make_case("C2"))
    client.force_login(personas.alice)

    html = page(client)
    assert len(rows(html)) == 3
    # The choices are the processes and record types the viewer has items in.
    assert '<option value="tickets">Ticket handling</option>' in html
    assert '<option value="ticket">Ticket</option>' in html
    assert sorted(rows(page(client, f"{URL}?orchestration=proc"))) == ["Review the case"]
    assert sorted(rows(page(client, f"{URL}?record_type=case"))) == ["Audit the case", "Review the case"]
    assert rows(page(client, f"{URL}?record_type=ticket")) == ["Answer the ticket"]
    assert rows(page(client, f"{URL}?record_type=case&orchestration=audit")) == ["Audit the case"]
    html = page(client, f"{URL}?record_type=ticket&orchestration=audit")
    assert rows(html) == []
    assert "No open items match these filters." in html
    # The chosen values stay selected in the form.
    html = page(client, f"{URL}?orchestration=audit")
    assert '<option value="audit" selected>Case audit</option>' in html


def test_sorts_by_age_either_way_and_by_record_name(client, personas):
    load_process("proc", "Case review", interactive("a", "Review", {"user": "alice"}))
    for name, hours in (("Bravo", 5), ("alpha", 1), ("Charlie", 30)):
        run = launch("proc", make_case(name))
        age(item(run, "a"), hours=hours)
    client.force_login(personas.alice)

    def records(url: str) -> list[str]:
        return re.findall(
            r'<a href="/records/case/\d+/\?item=\d+#work-item-\d+">([^<]+)</a>', page(client, url)
        )

    assert records(URL) == ["Charlie", "Bravo", "alpha"]  # oldest first by default
    assert records(f"{URL}?sort=oldest") == ["Charlie", "Bravo", "alpha"]
    assert records(f"{URL}?sort=newest") == ["alpha", "Bravo", "Charlie"]
    assert records(f"{URL}?sort=record") == ["alpha", "Bravo", "Charlie"]  # case-insensitive
    assert records(f"{URL}?sort=nonsense") == ["Charlie", "Bravo", "alpha"]
    # The column header toggles the age order and keeps the filters.
    html = page(client, f"{URL}?orchestration=proc")
    assert 'href="?orchestration=proc&amp;sort=newest"' in html
    # How long each has waited, oldest (30 hours) first.
    assert re.findall(r"<time [^>]*>(\d+\xa0\w+)</time>", html) == ["1\xa0day", "5\xa0hours", "1\xa0hour"]


def test_overdue_items_are_marked(client, personas):
    load_process(
        "proc",
        "Case review",
        interactive("late", "Late one", {"user": "alice"}, due_in_hours=1),
        interactive("fine", "On time", {"user": "alice"}, due_in_hours=48),
        interactive("never", "No due date", {"user": "alice"}),
    )
    run = launch("proc", make_case())
    WorkItem.objects.filter(pk=item(run, "late").pk).update(due_at=timezone.now() - timedelta(minutes=5))
    client.force_login(personas.alice)
    html = page(client)
    for key, overdue in (("late", True), ("fine", False), ("never", False)):
        row = re.search(rf'data-item="{item(run, key).pk}">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
        assert ("Overdue" in row) is overdue, key


def test_pages_of_25(client, personas):
    load_process("proc", "Case review", interactive("a", "Review", {"user": "alice"}))
    for i in range(27):
        launch("proc", make_case(f"Case {i:02}"))
    client.force_login(personas.alice)
    html = page(client, f"{URL}?sort=record")
    assert len(rows(html)) == 25
    assert "27 open items" in html
    assert 'href="?sort=record&amp;page=2"' in html
    assert len(rows(page(client, f"{URL}?sort=record&page=2"))) == 2


def test_a_link_from_an_item_without_a_record_is_highlighted(client, personas):
    load_process("proc", "Case review", interactive("a", "Review", {"user": "alice"}))
    run = launch("proc", make_case())
    it = item(run, "a")
    client.force_login(personas.alice)
    html = page(client, f"{URL}?item={it.pk}")
    assert f'class="table-active" aria-current="true" data-item="{it.pk}"' in html


def test_requires_login_and_keeps_the_query_string(client):
    response = client.get(f"{URL}?sort=newest")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/my-work/%3Fsort%3Dnewest"


# --- the navigation badge -----------------------------------------------------------------------


def badge(html: str) -> str | None:
    match = re.search(r'class="badge rounded-pill text-bg-primary my-work-badge">(\d+)<', html)
    return match.group(1) if match else None


def test_the_navigation_shows_how_many_items_wait(client, personas, everyone):
    run, _ = everyone
    client.force_login(personas.alice)
    html = page(client, "/")
    assert badge(html) == "3"
    assert '<span class="visually-hidden"> open items</span>' in html
    workitem_complete(item=item(run, "mine"), user=personas.alice, data={})
    assert badge(page(client, "/")) == "2"
    client.force_login(personas.charlie)
    html = page(client, "/")
    assert badge(html) is None
    assert '>My Work<span id="my-work-badge-nav"' in html and badge(html) is None


def test_the_badge_refreshes_itself_when_the_viewers_items_change(client, personas, everyone):
    """Both badges (beside My Work, and in the folded phone bar) ask again on `workitems-changed`,
    which every Work Guide response that changes items triggers; the answer is the new count."""
    run, _ = everyone
    client.force_login(personas.alice)
    html = page(client, "/")
    for variant in ("nav", "phone"):
        assert f'id="my-work-badge-{variant}"' in html
    assert html.count('hx-trigger="workitems-changed from:body"') == 2
    assert badge(page(client, "/my-work/badge/")) == "3"
    workitem_complete(item=item(run, "mine"), user=personas.alice, data={})
    assert badge(page(client, "/my-work/badge/")) == "2"
    phone = page(client, "/my-work/badge/?variant=phone")
    assert 'id="my-work-badge-phone"' in phone and ">2<" in phone


def test_the_badge_costs_one_query_and_only_where_the_navigation_is_shown(
    client, personas, everyone, django_assert_num_queries
):
    from workitems.context_processors import MyWorkBadge

    badge_ = MyWorkBadge(personas.alice)
    with django_assert_num_queries(1):
        assert badge_.count == 3
        assert badge_.count == 3  # cached for the rest of the page
    # The admin does not render the site navigation: the badge is never counted there.
    personas.alice.is_staff = True
    personas.alice.save()
    client.force_login(personas.alice)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/admin/").status_code == 200
    assert not any("workitems_workitem" in q["sql"] for q in ctx.captured_queries)
