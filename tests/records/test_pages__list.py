from __future__ import annotations

import re

import pytest

from records.models import Record
from tests.factories import UserFactory, make_case, ticket_type

pytestmark = pytest.mark.django_db


def names_on(page: str) -> list[str]:
    return re.findall(r'<td class="text-break"><a href="/records/\w+/\d+/">(.*?)</a></td>', page)


def test_list_shows_name_owner_fields_and_links_newest_first(clerk_client, clerk):
    make_case("Older", owner=clerk, severity="Low", amount="1.5")
    newer = make_case("Newer", severity="High")
    page = clerk_client.get("/records/case/").content.decode()
    assert "<title>Cases · Flow Orchestration</title>" in page
    assert names_on(page) == ["Newer", "Older"]
    assert f'href="/records/case/{newer.pk}/"' in page
    assert '<th scope="col" class="d-none d-md-table-cell">Severity</th>' in page
    assert "<td>alice</td>" in page
    assert '<td class="d-none d-md-table-cell text-break">1.5</td>' in page
    assert "2 cases" in page


def test_user_fields_show_usernames_in_the_list(clerk_client):
    rt = ticket_type()
    pat = UserFactory(username="pat")
    # ticket's first three short fields are title, count, price: make assignee visible by order.
    rt.fields = [rt.field("assignee"), *[f for f in rt.fields if f["name"] != "assignee"]]
    rt.save()
    Record.objects.create(record_type=rt, name="T", data={"assignee": pat.pk, "title": "x"})
    page = clerk_client.get("/records/ticket/").content.decode()
    assert '<td class="d-none d-md-table-cell text-break">pat</td>' in page


def test_search_matches_part_of_the_name_ignoring_case(clerk_client):
    make_case("Printer on fire")
    make_case("Broken PRINTER tray")
    make_case("Laptop")
    page = clerk_client.get("/records/case/", {"q": "printer"}).content.decode()
    assert sorted(names_on(page)) == ["Broken PRINTER tray", "Printer on fire"]
    assert "2 cases matching “printer”" in page
    assert 'value="printer"' in page
    empty = clerk_client.get("/records/case/", {"q": "zebra"}).content.decode()
    assert names_on(empty) == []
    assert "No cases match your search." in empty


def test_pages_of_25_and_the_links_keep_the_search(clerk_client):
    for i in range(30):
        make_case(f"Alpha {i:02d}")
    for i in range(3):
        make_case(f"Beta {i}")
    first = clerk_client.get("/records/case/").content.decode()
    assert len(names_on(first)) == 25
    assert "Page 1 of 2" in first
    second = clerk_client.get("/records/case/", {"page": 2}).content.decode()
    assert len(names_on(second)) == 8
    assert names_on(second)[-1] == "Alpha 00"

    searched = clerk_client.get("/records/case/", {"q": "alpha"}).content.decode()
    assert len(names_on(searched)) == 25
    assert 'href="?q=alpha&amp;page=2"' in searched
    page2 = clerk_client.get("/records/case/", {"q": "alpha", "page": 2}).content.decode()
    assert names_on(page2) == [f"Alpha {i:02d}" for i in range(4, -1, -1)]
    assert 'href="?q=alpha&amp;page=1"' in page2
    # A page number past the end shows the last page rather than an error.
    assert names_on(clerk_client.get("/records/case/", {"page": 99}).content.decode()) == names_on(second)


def test_the_top_navigation_marks_the_page_you_are_on(client, personas):
    """Records on the records pages and home, My Work on My Work: one link marked at a time."""
    import re

    from tests.factories import RECORD_PERMS, grant

    grant(personas.alice, *RECORD_PERMS)
    client.force_login(personas.alice)

    def marked(url: str) -> list[str]:
        nav = client.get(url).content.decode().split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]
        return re.findall(r'<a class="nav-link" href="[^"]*" aria-current="page">([^<]+)', nav)

    assert marked("/") == ["Records"]
    assert marked("/records/case/") == ["Records"]
    assert marked("/my-work/") == ["My Work"]
