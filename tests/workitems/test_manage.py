"""The Work Items monitoring page: who may see it, its views (open, overdue, stalled, completed),
its filters, keyset paging, and escaping."""

from __future__ import annotations

import html as htmllib
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import grant, make_case
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

URL = "/work-items/"
VIEW = "workitems.view_workitem"


def page(client, url: str = URL) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def row_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-item="(\d+)"', html)]


def labels(html: str) -> list[str]:
    return [htmllib.unescape(x) for x in re.findall(r'<a class="fw-semibold" href="[^"]*">([^<]+)</a>', html)]


def row(html: str, pk: int) -> str:
    found = re.search(rf'<tr data-item="{pk}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, f"no row for item {pk}"
    return found.group(1)


@pytest.fixture
def everyone(personas):  # type: ignore[no-untyped-def]
    """One run of "proc" on a case: five open items, one per kind of assignee."""
    everyone_process()
    case = make_case("Printer on fire")
    grant(personas.charlie, VIEW)
    return launch("proc", case), case


# --- who sees the page ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client, everyone):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/work-items/")


def test_people_without_the_view_permission_are_refused(client, personas, everyone):
    client.force_login(personas.alice)
    assert client.get(URL).status_code == 403
    client.force_login(personas.bob)  # bob has items of his own, still not everyone's
    assert client.get(URL).status_code == 403


def test_viewers_see_everyone_s_items_but_only_reassigners_get_the_controls(client, personas, everyone):
    grant(personas.alice, VIEW)
    client.force_login(personas.alice)
    html = page(client)
    assert sorted(labels(html)) == [
        "Bob decides",
        "Check the facts",
        "Engineering look",
        "Engineering queue",
        "Triage it",
    ]
    assert 'name="items"' not in html
    assert "Reassign" not in html

    for manager in (personas.charlie, personas.admin):  # a Managers member, a superuser
        client.force_login(manager)
        html = page(client)
        assert html.count('type="checkbox" form="reassign-form" name="items"') == 5
        assert 'id="reassign-form"' in html
        # A reassign dialog on each row, opened, closed and canceled by its popover buttons.
        assert html.count('role="dialog"') == 5
        assert html.count('popovertarget="item-') == 5 * 3
        # ... with the item's due date and priority to change (workitems/_schedule_form.html).
        assert html.count('class="workitem-schedule"') == 5
        assert html.count("priority-badge priority-2") == 5  # Normal, in words


# --- views ---------------------------------------------------------------------------------------


def test_each_row_shows_item_record_orchestration_stage_assignee_and_links_to_the_record(
    client, personas, everyone
):
    run, case = everyone
    triage = item(run, "triage")
    WorkItem.objects.filter(pk=triage.pk).update(claimed_by=personas.bob)
    client.force_login(personas.charlie)
    html = page(client)
    link = f"/records/case/{case.pk}/?item={triage.pk}#work-item-{triage.pk}"
    cells = row(html, triage.pk)
    assert f'<a class="fw-semibold" href="{link}">Triage it</a>' in cells
    assert f'<a href="{link}">Printer on fire</a>' in cells
    assert "Case review" in cells  # the orchestration
    assert '<td class="d-none d-xl-table-cell">Review</td>' in cells  # the stage's label
    assert "queue Triage" in cells
    assert "held by bob" in cells
    assert "Assigned" in cells
    assert "just now" in cells
    assert "alice" in row(html, item(run, "mine").pk)
    assert "group engineering" in row(html, item(run, "group").pk)


def test_open_view_shows_open_items_newest_first_and_leaves_out_closed_ones(client, personas, everyone):
    run, _ = everyone
    later = launch("proc", make_case("Second case"))
    workitem_complete(item=item(run, "mine"), user=personas.alice, data={"approved": "true"})
    client.force_login(personas.charlie)
    ids = row_ids(page(client))
    assert len(ids) == 9
    assert ids == sorted(ids, reverse=True)
    assert item(later, "mine").pk in ids
    assert WorkItem.objects.get(run=run, step_run__key="mine").pk not in ids


def test_overdue_view_shows_open_items_past_their_due_time_most_overdue_first(client, personas, everyone):
    run, _ = everyone
    now = timezone.now()
    a, b, c = item(run, "mine"), item(run, "group"), item(run, "bobs")
    WorkItem.objects.filter(pk=a.pk).update(due_at=now - timedelta(hours=1))
    WorkItem.objects.filter(pk=b.pk).update(due_at=now - timedelta(days=2))
    WorkItem.objects.filter(pk=c.pk).update(due_at=now + timedelta(days=1))  # not yet due
    client.force_login(personas.charlie)
    html = page(client, f"{URL}?view=overdue")
    assert row_ids(html) == [b.pk, a.pk]
    assert "Overdue" in row(html, a.pk)
    assert 'class="table-danger"' in html
    # The open view highlights them too, and not the item that is not due yet.
    html = page(client)
    assert "Overdue" in row(html, b.pk)
    assert "Overdue" not in row(html, c.pk)


def test_stalled_view_lists_open_items_oldest_first(client, personas, everyone):
    run, _ = everyone
    age(item(run, "triage"), hours=24 * 10)
    age(item(run, "mine"), hours=24 * 3)
    age(item(run, "bobs"), hours=5)
    client.force_login(personas.charlie)
    html = page(client, f"{URL}?view=stalled")
    assert labels(html)[:3] == ["Triage it", "Check the facts", "Bob decides"]
    assert "1\xa0week" in row(html, item(run, "triage").pk)  # how long it has waited


def test_completed_view_shows_who_completed_each_item_and_when_last_first(client, personas, everyone):
    run, _ = everyone
    mine, bobs = item(run, "mine"), item(run, "bobs")
    workitem_complete(item=mine, user=personas.alice, data={"approved": "true"})
    workitem_complete(item=bobs, user=personas.bob, data={"approved": "false"})
    client.force_login(personas.charlie)
    html = page(client, f"{URL}?view=completed")
    assert row_ids(html) == [bobs.pk, mine.pk]
    assert "alice" in row(html, mine.pk)
    assert "Completed" in row(html, mine.pk)
    assert 'name="items"' not in html  # closed items cannot be reassigned: no controls


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture
def two_processes(everyone):  # type: ignore[no-untyped-def]
    """Besides "proc" on a case, "tickets" on a ticket: one item for alice, one for group support."""
    ticket_type()
    load_process(
        "tickets",
        "Ticket handling",
        interactive("look", "Look at it", {"user": "alice"}),
        interactive("answer", "Answer it", {"group": "support"}),
        record_type="ticket",
    )
    return everyone[0], launch("tickets", ticket("Wifi down"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user=alice", ["Check the facts", "Look at it"]),
        ("user=nobody", []),
        ("group=engineering", ["Engineering look"]),
        ("group=support", ["Answer it"]),
        ("queue=triage", ["Triage it"]),
        ("orchestration=tickets", ["Answer it", "Look at it"]),
        ("record_type=ticket", ["Answer it", "Look at it"]),
        ("record_type=case&user=alice", ["Check the facts"]),
    ],
)
def test_filters_narrow_the_list(client, personas, two_processes, query, expected):
    client.force_login(personas.charlie)
    html = page(client, f"{URL}?{query}")
    assert sorted(labels(html)) == expected
    assert "Clear filters" in html
    if not expected:
        assert "No open items match these filters." in html


def test_age_filter_keeps_items_older_than_the_given_days(client, personas, everyone):
    run, _ = everyone
    age(item(run, "mine"), hours=24 * 4)
    age(item(run, "triage"), hours=24 * 2 + 1)
    client.force_login(personas.charlie)
    assert sorted(labels(page(client, f"{URL}?older_than=2"))) == ["Check the facts", "Triage it"]
    assert labels(page(client, f"{URL}?older_than=3&view=stalled")) == ["Check the facts"]
    # A value that is not a number is reported and ignored.
    html = page(client, f"{URL}?older_than=soon")
    assert "Enter a whole number." in html
    assert len(labels(html)) == 5


def test_keyset_pages_walk_every_item_once_both_ways(client, personas, everyone, monkeypatch):
    monkeypatch.setattr("workitems.views.manage.PER_PAGE", 2)
    run, _ = everyone
    for hours, key in enumerate(("mine", "group", "queue", "triage", "bobs")):
        age(item(run, key), hours=hours + 1)
    client.force_login(personas.charlie)
    for view in ("open", "stalled"):
        url, seen, pages = f"{URL}?view={view}", [], []
        while url:
            html = page(client, url)
            pages.append(row_ids(html))
            seen += pages[-1]
            found = re.search(r'href="([^"]*)" rel="next"', html)
            url = URL + htmllib.unescape(found.group(1)) if found else ""
        assert [len(p) for p in pages] == [2, 2, 1]
        assert sorted(seen) == sorted(set(seen)) and len(seen) == 5
        # Back from the last page gives the middle page again.
        prev = re.search(r'href="([^"]*)" rel="prev"', html)
        assert prev
        assert row_ids(page(client, URL + htmllib.unescape(prev.group(1)))) == pages[1]
    # The stalled view's pages run oldest first: "bobs" was made the oldest.
    assert labels(page(client, f"{URL}?view=stalled"))[0] == "Bob decides"


def test_a_tampered_page_cursor_shows_the_first_page(client, personas, everyone):
    client.force_login(personas.charlie)
    assert len(row_ids(page(client, f"{URL}?view=stalled&after=nonsense|x"))) == 5


# --- escaping ------------------------------------------------------------------------------------


def test_a_script_in_a_record_name_is_shown_as_text(client, personas):
    everyone_process()
    grant(personas.charlie, VIEW)
    launch("proc", make_case('<script>alert("x")</script>'))
    client.force_login(personas.charlie)
    html = page(client)
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_an_assignees_items_are_paged_the_same_whichever_way_they_are_read(
    client, personas, everyone, monkeypatch
):
    """Filtered to an assignee with few items, the page picks them through the assignee index
    and sorts them (workitems.selectors._few_for_assignee); with the cap at 0 it walks the
    view's index. Both must give the same pages, both ways."""
    monkeypatch.setattr("workitems.views.manage.PER_PAGE", 2)
    runs = [everyone[0]] + [launch("proc", make_case(f"Case {i}")) for i in range(4)]
    for n, run in enumerate(runs):
        for hours, key in enumerate(("mine", "group", "queue", "triage", "bobs")):
            age(item(run, key), hours=(hours + 1) * (7 - n) % 11 + 1)  # not in id order
    client.force_login(personas.charlie)

    def walk(url: str) -> tuple[list[int], list[int]]:
        forward: list[int] = []
        html = ""
        while url:
            html = page(client, url)
            forward += row_ids(html)
            found = re.search(r'href="([^"]*)" rel="next"', html)
            url = URL + htmllib.unescape(found.group(1)) if found else ""
        backward: list[int] = []
        while html:
            found = re.search(r'href="([^"]*)" rel="prev"', html)
            html = page(client, URL + htmllib.unescape(found.group(1))) if found else ""
            backward += row_ids(html)
        return forward, backward

    for query in ("view=open&user=alice", "view=stalled&user=alice", "view=overdue&queue=triage"):
        WorkItem.objects.update(due_at=timezone.now() - timedelta(hours=1))
        sorted_way = walk(f"{URL}?{query}")
        monkeypatch.setattr("workitems.selectors.ASSIGNEE_SORT_CAP", 0)
        index_way = walk(f"{URL}?{query}")
        monkeypatch.setattr("workitems.selectors.ASSIGNEE_SORT_CAP", 2_000)
        assert sorted_way == index_way, query
        assert len(sorted_way[0]) == 5 and sorted(sorted_way[0]) == sorted(set(sorted_way[0])), query
