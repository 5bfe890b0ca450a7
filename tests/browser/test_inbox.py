"""The inbox features in chromium at 1280 and at 375 pixels: search My Work and see the matching
row, save the view and open it again from its pill, the priority a manager sets, and the records
home with its counts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from orchestration.models import RunEvent
from tests.browser.conftest import login, screenshot
from tests.factories import RECORD_PERMS, grant, make_case
from tests.workitems.mywork_support import interactive, item, launch, load_process
from workitems.models import Priority, SavedFilter, WorkItem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


@pytest.fixture
def inbox(personas: Any) -> Any:
    grant(personas.alice, *RECORD_PERMS)
    load_process(
        "proc",
        "Facilities request",
        interactive("inspect", "Inspect the site", {"user": "alice"}),
        interactive("quote", "Get a quote", {"group": "engineering"}),
        stage_label="Assessment",
    )
    runs = {
        name: launch("proc", make_case(name, owner=personas.alice))
        for name in ("Leaky roof", "Broken heater")
    }
    WorkItem.objects.filter(pk=item(runs["Leaky roof"], "quote").pk).update(priority=Priority.URGENT)
    return runs


def rows(page: Page) -> Any:
    return page.locator("table.my-work-table tbody tr")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_search_my_work_save_the_view_and_open_it_again(
    page: Page, live_server: Any, personas: Any, inbox: Any, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/my-work/")
    expect(rows(page)).to_have_count(4)

    page.get_by_role("searchbox", name="Search").fill("roof")
    page.get_by_label("Sort", exact=True).select_option(label="Priority, highest first")
    # Apply loads the page (the list also follows without it: the next test).
    with page.expect_navigation(url=re.compile(r"q=roof")):
        page.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_text("2 open items matching “roof”")).to_be_visible()
    # The urgent one first, its priority in words (on a phone, in the line under the task).
    first = rows(page).first
    expect(first).to_contain_text("Get a quote")
    expect(first.locator(".priority-badge:visible")).to_have_text(re.compile(r"Urgent"))
    expect(rows(page).nth(1)).to_contain_text("Inspect the site")
    expect(page.get_by_role("searchbox", name="Search")).to_have_value("roof")

    page.locator("summary", has_text="Save this view").click()
    page.get_by_label("Name", exact=True).fill("Roof work")
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_role("status").filter(has_text="Saved this view as “Roof work”")).to_be_visible()
    assert SavedFilter.objects.get(user=personas.alice).query == "q=roof&sort=priority"
    pill = page.get_by_role("navigation", name="Saved views").get_by_role("link", name="Roof work")
    expect(pill).to_have_attribute("aria-current", "page")
    # On a phone the filters come first: the whole page, to show the rows under them.
    screenshot(page, f"my-work-search-{viewport}", full_page=viewport == "phone")

    # Elsewhere, then back through the pill: the same search and sort.
    page.goto(f"{live_server.url}/my-work/")
    expect(rows(page)).to_have_count(4)
    page.get_by_role("navigation", name="Saved views").get_by_role("link", name="Roof work").click()
    page.wait_for_url(re.compile(r"/my-work/\?q=roof&sort=priority$"))
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_label("Sort", exact=True)).to_have_value("priority")

    # A second view of the same name is refused, and the name typed is still there.
    page.locator("summary", has_text="Save this view").click()
    page.get_by_label("Name", exact=True).fill("roof work")
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_text("You already have a saved view called “roof work”").first).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_value("roof work")
    assert SavedFilter.objects.filter(user=personas.alice).count() == 1

    page.get_by_role("button", name="Delete the saved view Roof work").click()
    expect(page.get_by_role("status").filter(has_text="Deleted the saved view “Roof work”")).to_be_visible()
    expect(page.get_by_role("navigation", name="Saved views")).to_have_count(0)
    assert not SavedFilter.objects.exists()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_list_follows_what_is_typed_without_apply(
    page: Page, live_server: Any, personas: Any, inbox: Any, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/my-work/")
    page.evaluate("window.__sameDocument = true")
    box = page.get_by_role("searchbox", name="Search")
    box.press_sequentially("heat", delay=30)
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_text("2 open items matching “heat”")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/my-work/\?q=heat"))  # the address follows, to share or reload
    expect(box).to_be_focused()  # still typing: the form was not replaced
    page.get_by_label("Sort", exact=True).select_option("newest")
    expect(page).to_have_url(re.compile(r"q=heat.*sort=newest"))
    expect(rows(page)).to_have_count(2)
    assert page.evaluate("window.__sameDocument === true")  # no page load


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_manager_sets_the_due_date_and_priority(
    page: Page, live_server: Any, personas: Any, inbox: Any, viewport: str
) -> None:
    it = item(inbox["Broken heater"], "inspect")
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "charlie")
    page.goto(f"{live_server.url}/work-items/{it.pk}/schedule/")
    form = page.get_by_role("form", name="Due date and priority of Inspect the site")
    form.get_by_label("Due").fill("2001-01-01T09:00")  # in the past: refused, kept
    form.get_by_label("Priority").select_option(label="High")
    form.get_by_label("Reason").fill("The tenant is back on Monday")
    form.get_by_role("button", name=re.compile("Save")).click()
    form = page.get_by_role("form", name="Due date and priority of Inspect the site")
    expect(form.get_by_text("The new due date is in the past: choose a later one.")).to_be_visible()
    expect(form.get_by_label("Reason")).to_have_value("The tenant is back on Monday")
    expect(form.get_by_label("Priority")).to_have_value("3")
    form.get_by_label("Due").fill("2031-03-02T09:30")
    form.get_by_role("button", name=re.compile("Save")).click()
    expect(
        page.get_by_role("status").filter(has_text="is now high priority, due 2031-03-02 09:30")
    ).to_be_visible()
    it.refresh_from_db()
    assert (it.priority, it.due_at.isoformat()) == (Priority.HIGH, "2031-03-02T09:30:00+00:00")  # type: ignore[union-attr]
    event = RunEvent.objects.get(run_id=it.run_id, name="workitems.item.rescheduled")
    assert event.payload["reason"] == "The tenant is back on Monday"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_records_home_shows_counts_and_the_newest_records(
    page: Page, live_server: Any, personas: Any, inbox: Any, viewport: str
) -> None:
    make_case("Quiet corridor")  # no process on it, and nobody's
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/")
    cases = page.locator("[data-record-type=case]")
    expect(cases).to_contain_text("3 cases, 2 with a process under way")
    mine = page.locator("[data-list=mine] a")
    expect(mine).to_have_text(["Broken heater", "Leaky roof"])
    expect(page.locator("[data-list=recent] a")).to_have_text(
        ["Quiet corridor", "Broken heater", "Leaky roof"]
    )
    screenshot(page, f"records-home-{viewport}")
    mine.first.click()
    page.wait_for_url(re.compile(r"/records/case/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Broken heater")
