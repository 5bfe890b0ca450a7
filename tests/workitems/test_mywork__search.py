"""My Work's search (record name, task, stage label, the run's variable values), combined with
the filters and sorts, and the priority each row shows and sorts by."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from orchestration.models import Run
from orchestration.services import run_launch
from tests.factories import load, make_case, orchestration, screen_flow
from workitems.models import Priority, WorkItem

from .mywork_support import age, interactive, item, launch, load_process, ticket, ticket_type

pytestmark = pytest.mark.django_db

URL = "/my-work/"


def rows(html: str) -> list[str]:
    """The task labels of the table's rows, top to bottom."""
    return re.findall(r'<a class="fw-semibold" href="[^"]*">([^<]+)</a>', html)


def records(html: str) -> list[str]:
    return re.findall(r'<a href="/records/\w+/\d+/\?item=\d+#work-item-\d+">([^<]+)</a>', html)


def search(client, q: str, **params: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(URL, {"q": q, **params})
    assert response.status_code == 200
    return response.content.decode()


def with_customer_input() -> None:
    """ "orders": one step for alice, and a `customer` input the run keeps as a variable."""
    load(
        screen_flow("review"),
        {
            **orchestration(
                "orders",
                stages=[
                    {
                        "key": "approve",
                        "label": "Approval",
                        "steps": [interactive("sign", "Sign the order", {"user": "alice"})],
                    }
                ],
                start={
                    "type": "autolaunched",
                    "record_type": "case",
                    "inputs": [{"name": "customer", "type": "text"}, {"name": "po", "type": "text"}],
                },
            ),
            "label": "Orders",
        },
    )


@pytest.fixture
def world(personas):  # type: ignore[no-untyped-def]
    load_process(
        "proc",
        "Case review",
        interactive("facts", "Check the facts", {"user": "alice"}),
        interactive("bobs", "Bob decides", {"user": "bob"}),
    )
    with_customer_input()
    printer = launch("proc", make_case("Printer on fire"))
    laptop = launch("proc", make_case("Laptop battery"))
    order = run_launch(
        orchestration="orders",
        record=make_case("Order 12"),
        inputs={"customer": 'Zoë Ölund & "Partners"', "po": "PO-7781"},
    )
    return printer, laptop, order


def test_search_by_record_name_ignores_case_and_surrounding_spaces(client, personas, world):
    client.force_login(personas.alice)
    html = search(client, "  PRINTER  ")
    assert records(html) == ["Printer on fire"]
    assert 'value="PRINTER"' in html  # shown back trimmed
    assert "1 open item matching “PRINTER”" in html
    assert "<title>My Work matching “PRINTER” · Flow Orchestration</title>" in html


def test_search_by_task_label_and_by_stage_label(client, personas, world):
    client.force_login(personas.alice)
    assert rows(search(client, "the facts")) == ["Check the facts", "Check the facts"]
    assert rows(search(client, "sign")) == ["Sign the order"]
    # "Approval" is the orders stage's label (its key is "approve"): the label is what people see.
    assert rows(search(client, "approval")) == ["Sign the order"]
    assert sorted(rows(search(client, "review"))) == ["Check the facts", "Check the facts"]


def test_search_by_the_values_of_the_runs_variables(client, personas, world):
    client.force_login(personas.alice)
    assert records(search(client, "po-7781")) == ["Order 12"]
    # Letters beyond ASCII and quotes, which the JSON text escapes.
    assert records(search(client, "zoë")) == ["Order 12"]
    assert records(search(client, '"Partners"')) == ["Order 12"]
    if connection.vendor == "postgresql":
        # SQLite's LIKE folds the case of ASCII letters only (docs/my-work.md says so).
        assert records(search(client, "ZOË ÖLUND")) == ["Order 12"]
    assert records(search(client, "nowhere-to-be-found")) == []


def test_a_search_matching_nothing_says_so_and_offers_all_items(client, personas, world):
    client.force_login(personas.alice)
    html = search(client, "zebra")
    assert rows(html) == []
    assert "No open items match “zebra”." in html
    assert f'<a href="{URL}">Show all your items</a>' in html
    assert "Nothing to do." not in html


def test_search_combines_with_the_filters_and_the_sort(client, personas, world):
    printer, laptop, _ = world
    ticket_type()
    load_process(
        "tickets",
        "Ticket handling",
        interactive("t", "Check the ticket", {"user": "alice"}),
        record_type="ticket",
    )
    launch("tickets", ticket("Printer jam"))
    client.force_login(personas.alice)

    assert sorted(records(search(client, "printer"))) == ["Printer jam", "Printer on fire"]
    assert records(search(client, "printer", record_type="ticket")) == ["Printer jam"]
    assert records(search(client, "printer", orchestration="proc")) == ["Printer on fire"]
    assert records(search(client, "printer", orchestration="orders")) == []
    assert rows(search(client, "check", orchestration="tickets")) == ["Check the ticket"]

    age(item(printer, "facts"), hours=5)
    age(item(laptop, "facts"), hours=1)
    assert records(search(client, "check the facts", sort="newest")) == ["Laptop battery", "Printer on fire"]
    assert records(search(client, "check the facts", sort="oldest")) == ["Printer on fire", "Laptop battery"]
    # The sort links keep the search.
    html = search(client, "check the facts", sort="oldest")
    assert 'href="?q=check+the+facts&amp;sort=newest"' in html


def test_a_search_too_long_is_refused_with_a_message_and_kept_in_the_box(client, personas, world):
    client.force_login(personas.alice)
    typed = "printer " * 13  # 104 characters, 103 once trimmed
    html = search(client, typed)
    assert "Search for at most 100 characters (you typed 103): the list below is not searched." in html
    assert f'value="{typed.strip()}"' in html
    assert 'aria-invalid="true"' in html
    assert len(rows(html)) == 3  # all her items: nothing was searched
    # Exactly 100 is fine.
    assert rows(search(client, "x" * 100)) == []
    assert "Search for at most" not in search(client, "x" * 100)


def test_search_shows_only_the_viewers_items(client, personas, world):
    """Bob's item on the printer record matches "decides", and the record's name matches
    "printer": alice sees only her own items, and nothing for words only his item has."""
    client.force_login(personas.alice)
    assert rows(search(client, "bob decides")) == []
    assert rows(search(client, "printer")) == ["Check the facts"]
    client.force_login(personas.bob)
    assert rows(search(client, "printer")) == ["Bob decides"]
    assert rows(search(client, "po-7781")) == []  # alice's order


# --- priority -----------------------------------------------------------------------------------


def test_each_row_shows_its_priority_in_words(client, personas, world):
    printer, laptop, order = world
    WorkItem.objects.filter(pk=item(printer, "facts").pk).update(priority=Priority.URGENT)
    WorkItem.objects.filter(pk=item(laptop, "facts").pk).update(priority=Priority.LOW)
    client.force_login(personas.alice)
    html = client.get(URL).content.decode()
    for run, key, word in ((printer, "facts", "Urgent"), (laptop, "facts", "Low"), (order, "sign", "Normal")):
        row = re.search(rf'data-item="{item(run, key).pk}">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
        # The word, for the table and again in the line a phone shows, not a colour alone.
        assert row.count(f'">{word}<span class="visually-hidden"> priority</span></span>') == 2, word


def test_sort_by_priority_highest_first_and_the_oldest_among_equals(client, personas, world):
    printer, laptop, order = world
    third = launch("proc", make_case("Third"))
    for run, key, priority, hours in (
        (printer, "facts", Priority.HIGH, 1),
        (laptop, "facts", Priority.URGENT, 2),
        (order, "sign", Priority.HIGH, 5),
        (third, "facts", Priority.LOW, 50),
    ):
        it = item(run, key)
        WorkItem.objects.filter(pk=it.pk).update(priority=priority)
        age(it, hours=hours)
    client.force_login(personas.alice)
    html = client.get(URL, {"sort": "priority"}).content.decode()
    assert records(html) == ["Laptop battery", "Order 12", "Printer on fire", "Third"]
    assert '<option value="priority" selected>Priority, highest first</option>' in html
    assert 'aria-sort="descending"' in html
    # The default stays the oldest first.
    assert records(client.get(URL).content.decode()) == [
        "Third",
        "Order 12",
        "Laptop battery",
        "Printer on fire",
    ]


def test_the_search_text_is_escaped(client, personas, world):
    client.force_login(personas.alice)
    html = search(client, '<script>alert("x")</script>')
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


def test_a_run_without_a_record_page_is_found_by_its_record_label(client, personas):
    load_process("proc", "Case review", interactive("a", "Review", {"user": "alice"}))
    run = launch("proc", make_case("Kept label"))
    # A run anchored elsewhere: no records.Record, only the label it was launched with.
    Run.objects.filter(pk=run.pk).update(record_label="Contract 99-X")
    WorkItem.objects.filter(run=run).update(record_type=None, record_id=None)
    client.force_login(personas.alice)
    html = search(client, "99-x")
    assert re.findall(r'<span class="fw-semibold">([^<]+)</span>', html) == ["Review"]


def test_htmx_gets_the_results_alone_for_the_live_search(client, personas, world):
    client.force_login(personas.alice)
    response = client.get(URL, {"q": "printer"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="my-work-results">')
    assert "<html" not in html and 'name="orchestration"' not in html.split("<details")[0]
    assert records(html) == ["Printer on fire"]
    assert "1 open item matching “printer”" in html
    # The save form carries the view shown, for "Save this view" after a live search.
    assert '<input type="hidden" name="q" value="printer">' in html
    # The full page has the form that asks for it.
    page = client.get(URL).content.decode()
    assert 'hx-get="/my-work/" hx-trigger="input changed delay:400ms from:#my-work-q, change"' in page
    assert 'hx-target="#my-work-results"' in page
