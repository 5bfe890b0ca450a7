"""The Work Guide in real chromium against a live server: the journeys people take from the
record page, with htmx, without JavaScript, on a phone and with the keyboard only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import Run
from tests.browser.conftest import logged_in_page, login, screenshot
from tests.factories import RECORD_PERMS, UserFactory, grant
from tests.workitems.guide_support import DECISION, define, item_of, start, then_approve
from workitems.models import WorkItem, WorkItemStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def people(personas):  # type: ignore[no-untyped-def]
    """alice, bob and erin (alice's colleague in "engineering"), all allowed on record pages."""
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    for user in (personas.alice, personas.bob, erin):
        grant(user, *RECORD_PERMS)
    personas.erin = erin
    return personas


def guide(page: Page) -> Any:
    return page.locator("#panel-work_guide")


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def mark_page(page: Page) -> None:
    """Tag the document: a full page load loses the tag, an htmx swap keeps it."""
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def test_a_two_screen_flow_with_one_corrected_error_moves_the_run_to_the_next_stage(
    page: Page, live_server, people
):
    define()
    case, run = start("Flooded kitchen")
    login(page, live_server, "alice")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    mark_page(page)

    panel = guide(page)
    expect(panel.get_by_role("heading", name="Work Guide")).to_be_visible()
    expect(panel.get_by_role("heading", name="Check the claim")).to_be_visible()
    expect(panel).to_contain_text("Claim handling")
    expect(panel).to_contain_text("Stage: Review")
    expect(panel).to_contain_text("Assigned to you")
    panel.get_by_role("link", name="Open Check the claim").click()

    # Screen 1: focus is on its first field; a wrong amount is refused next to the field.
    amount = panel.get_by_label("Amount claimed")
    expect(amount).to_be_focused()
    expect(panel.get_by_text("In euros, without the sign.")).to_be_visible()
    amount.fill("0")
    panel.get_by_label("Kind").select_option("repair")
    panel.get_by_role("button", name="Next").click()
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(panel.get_by_text("Must be at least 1.")).to_be_visible()
    expect(amount).to_be_focused()
    expect(panel.get_by_label("Kind")).to_have_value("repair")  # nothing typed is lost
    screenshot(page, "work-guide")

    amount.fill("120.50")
    panel.get_by_role("button", name="Next").click()

    # Screen 2: focus moved to its first field.
    expect(panel).to_contain_text("Screen 2 of 2")
    expect(panel.get_by_label("Approve the claim")).to_be_focused()
    panel.get_by_label("Approve the claim").check()
    panel.get_by_label("Reason").fill("Photos match the invoice")
    panel.get_by_role("button", name="Finish").click()

    done = panel.get_by_role("status")
    expect(done).to_have_text("Done: “Check the claim” is completed.")
    expect(done).to_be_focused()
    expect(panel).to_contain_text("Nothing for you to do on this record.")
    # The runs panel refreshed in the same swap: the run is in its next stage.
    expect(page.locator("#panel-runs")).to_contain_text("Stage: Payout")
    assert same_document(page), "the journey ran in place, without a page load"
    screenshot(page, "work-guide-done")

    run = Run.objects.get(pk=run.pk)
    assert run.current_stage == "payout"
    item = WorkItem.objects.get(run=run, step_run__key="check")
    assert item.status == WorkItemStatus.COMPLETED
    assert item.outputs == {
        "amount": "120.50",
        "kind": "repair",
        "approved": True,
        "reason": "Photos match the invoice",
    }


def test_a_queue_member_claims_and_completes_an_item(page: Page, live_server, people):
    define(assignee={"queue": "triage"}, screens=[DECISION], then=[then_approve("alice")])
    case, run = start()
    login(page, live_server, "bob")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    panel = guide(page)
    expect(panel).to_contain_text("Assigned to queue Triage")
    panel.get_by_role("button", name="Claim").click()

    expect(panel.get_by_role("status")).to_contain_text("is assigned to you")
    expect(panel).to_contain_text("Held by you")
    expect(panel.get_by_role("button", name="Release")).to_be_visible()
    assert WorkItem.objects.get(run=run).claimed_by == people.bob

    expect(page.locator(".my-work-badge")).to_have_text("1 open item")
    panel.get_by_label("Reason").fill("Checked by phone")
    panel.get_by_role("button", name="Finish").click()
    expect(panel.get_by_role("status")).to_have_text("Done: “Check the claim” is completed.")
    # The navigation's count follows without a reload (htmx, on `workitems-changed`): the next
    # step is alice's, so bob has nothing left.
    expect(page.locator(".my-work-badge")).to_have_count(0)
    item = WorkItem.objects.get(run=run, step_run__key="check")
    assert item.completed_by == people.bob
    assert item.outputs["reason"] == "Checked by phone"


def test_the_second_of_two_people_finishing_the_same_item_is_told_who_did_and_sees_their_input(
    new_context, live_server, people
):
    define(assignee={"group": "engineering"})
    case, run = start()
    url = f"{live_server.url}/records/case/{case.pk}/"
    alice = logged_in_page(new_context, live_server, "alice")
    erin = logged_in_page(new_context, live_server, "erin")
    for page, reason in ((alice, "Alice approves"), (erin, "Erin has doubts")):
        page.goto(url)
        panel = guide(page)
        panel.get_by_role("link", name="Open Check the claim").click()
        panel.get_by_label("Amount claimed").fill("80")
        panel.get_by_label("Kind").select_option("replace")
        panel.get_by_role("button", name="Next").click()
        panel.get_by_label("Reason").fill(reason)

    guide(alice).get_by_role("button", name="Finish").click()
    expect(guide(alice).get_by_role("status")).to_contain_text("is completed")

    guide(erin).get_by_role("button", name="Finish").click()
    message = guide(erin).get_by_role("alert")
    expect(message).to_contain_text(re.compile(r"This item was already completed by alice on .+\."))
    expect(message).to_contain_text("Your input (not saved):")
    expect(message).to_contain_text("Erin has doubts")
    expect(message).to_contain_text("80")
    screenshot(guide(erin), "work-guide-race")

    item = item_of_run_done(run)
    assert item.completed_by == people.alice
    assert item.outputs["reason"] == "Alice approves"


def item_of_run_done(run: Run) -> WorkItem:
    return WorkItem.objects.get(run=run, step_run__key="check", status=WorkItemStatus.COMPLETED)


def test_without_javascript_the_same_journey_works_with_links_and_posts(new_context, live_server, people):
    define()
    case, run = start()
    page = logged_in_page(new_context, live_server, "alice", java_script_enabled=False)
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    panel = guide(page)
    panel.get_by_role("link", name="Open Check the claim").click()
    expect(page).to_have_url(re.compile(rf"\?item={item_of(run).pk}#work-item-"))

    panel.get_by_label("Amount claimed").fill("")
    panel.get_by_label("Kind").select_option("replace")
    panel.get_by_role("button", name="Next").click()
    expect(page).to_have_url(re.compile(r"check=1"))
    expect(panel.get_by_text("This field is required.")).to_be_visible()
    expect(panel.get_by_label("Kind")).to_have_value("replace")

    panel.get_by_label("Amount claimed").fill("45")
    panel.get_by_role("button", name="Next").click()
    expect(panel).to_contain_text("Screen 2 of 2")
    panel.get_by_role("button", name="Back").click()
    expect(panel.get_by_label("Amount claimed")).to_have_value("45")
    panel.get_by_role("button", name="Next").click()
    panel.get_by_label("Reason").fill("No JavaScript needed")
    panel.get_by_role("button", name="Finish").click()

    expect(page.get_by_role("status").first).to_have_text("Done: “Check the claim” is completed.")
    expect(page.locator("#panel-runs")).to_contain_text("Stage: Payout")
    item = WorkItem.objects.get(run=run, step_run__key="check")
    assert item.status == WorkItemStatus.COMPLETED
    assert item.outputs["amount"] == "45"


def test_the_record_page_and_work_guide_work_at_375_pixels(new_context, live_server, people):
    define(label="Claim handling for water damage in rented flats")
    case, run = start("Flooded kitchen with a very-long-unbroken-name-that-must-wrap-somewhere")
    page = logged_in_page(new_context, live_server, "alice", viewport={"width": 375, "height": 812})
    # As from the assignment email: the link opens the item directly.
    page.goto(f"{live_server.url}/records/case/{case.pk}/?item={item_of(run).pk}")
    panel = guide(page)
    expect(panel.get_by_label("Amount claimed")).to_be_focused()
    assert no_horizontal_scroll(page)
    panel.get_by_label("Amount claimed").fill("-5")
    panel.get_by_label("Kind").select_option("repair")
    panel.get_by_role("button", name="Next").click()
    expect(panel.get_by_text("Must be at least 1.")).to_be_visible()
    assert no_horizontal_scroll(page)
    panel.scroll_into_view_if_needed()
    screenshot(page, "work-guide-375")
    panel.get_by_label("Amount claimed").fill("5")
    panel.get_by_role("button", name="Next").click()
    panel.get_by_label("Reason").fill("Small fix")
    assert no_horizontal_scroll(page)
    panel.get_by_role("button", name="Finish").click()
    expect(panel.get_by_role("status")).to_have_text("Done: “Check the claim” is completed.")
    assert no_horizontal_scroll(page)
    assert WorkItem.objects.get(run=run, step_run__key="check").status == WorkItemStatus.COMPLETED


def test_a_simple_flow_can_be_done_with_the_keyboard_only(page: Page, live_server, people):
    define(screens=[DECISION])
    case, run = start()
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    open_link = guide(page).get_by_role("link", name="Open Check the claim")
    for _ in range(60):  # Tab through the page until the Work Guide's link has focus
        page.keyboard.press("Tab")
        if open_link.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("the Open link cannot be reached with Tab")
    page.keyboard.press("Enter")

    approve = guide(page).get_by_label("Approve the claim")
    expect(approve).to_be_focused()
    page.keyboard.press("Space")
    expect(approve).to_be_checked()
    page.keyboard.press("Tab")
    expect(guide(page).get_by_label("Reason")).to_be_focused()
    page.keyboard.type("Done from the keyboard")
    page.keyboard.press("Enter")  # submits with the form's first button: Finish

    expect(guide(page).get_by_role("status")).to_have_text("Done: “Check the claim” is completed.")
    item = WorkItem.objects.get(run=run, step_run__key="check")
    assert item.outputs == {"approved": True, "reason": "Done from the keyboard"}
