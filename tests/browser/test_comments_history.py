"""Comments, task history and claim-before-complete in chromium at 1280 and at 375 pixels: a
comment posted in the Work Guide appears in place (what was typed in the screen stays); a
completed item's answers show on the record page by their labels; a claim_required item's
Finish waits for a claim."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.conftest import login, screenshot
from tests.factories import RECORD_PERMS, grant, load, orchestration, screen_flow
from tests.workitems.guide_support import TWO_SCREENS, check_step, define, item_of, start
from workitems.models import WorkItem, WorkItemComment, WorkItemStatus
from workitems.services import workitem_comment, workitem_reassign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


@pytest.fixture
def people(personas: Any) -> Any:
    """alice (Alice Archer) and charlie (Charlie Chen, a manager who sees every item)."""
    for user, first, last in ((personas.alice, "Alice", "Archer"), (personas.charlie, "Charlie", "Chen")):
        user.first_name, user.last_name = first, last
        user.save()
        grant(user, *RECORD_PERMS)
    grant(personas.charlie, "workitems.view_workitem")
    return personas


def guide(page: Page) -> Any:
    return page.locator("#panel-work_guide")


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_comment_posted_in_the_work_guide_appears_in_place(
    page: Page, live_server: Any, people: Any, viewport: str
) -> None:
    define()
    case, run = start("Flooded kitchen")
    item = item_of(run)
    workitem_comment(
        item=item, author=people.charlie, body="The customer sent photos by email.\nSee the shared folder."
    )
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    panel = guide(page)
    panel.get_by_role("link", name="Open Check the claim").click()
    panel.get_by_label("Amount claimed").fill("240")
    page.evaluate("window.__sameDocument = true")  # a reload would lose it; an htmx swap keeps it

    comments = panel.locator(f"#work-item-{item.pk}-comments")
    expect(comments).to_contain_text("Charlie Chen")
    expect(comments).to_contain_text("See the shared folder.")
    # An empty comment: refused, with the message, and nothing written.
    comments.get_by_role("button", name=re.compile("^Comment")).click()
    expect(comments.get_by_text("Write something before you send the comment.")).to_be_visible()
    box = comments.get_by_label("Add a comment")
    box.fill("Photos match the description; checking the invoice <next>.")
    comments.get_by_role("button", name=re.compile("^Comment")).click()
    expect(comments.locator(".work-item-comment")).to_have_count(2)
    expect(comments.locator(".work-item-comment").last).to_contain_text("Alice Archer")
    expect(comments.locator(".work-item-comment").last).to_contain_text(
        "Photos match the description; checking the invoice <next>."
    )
    stamp = comments.locator(".work-item-comment time").last.inner_text().strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", stamp), stamp
    expect(comments.get_by_label("Add a comment")).to_have_value("")
    # In place: the same document, and the amount typed in the screen is still there.
    assert page.evaluate("window.__sameDocument === true")
    expect(panel.get_by_label("Amount claimed")).to_have_value("240")
    assert no_horizontal_scroll(page)
    assert list(WorkItemComment.objects.filter(item=item).values_list("author__username", flat=True)) == [
        "charlie",
        "alice",
    ]
    screenshot(panel.locator(f"#work-item-{item.pk}"), f"work-item-comments-{viewport}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_completed_item_shows_on_the_record_page_with_its_field_labels(
    page: Page, live_server: Any, people: Any, viewport: str
) -> None:
    define(assignee={"user": "bob"})
    case, run = start("Flooded kitchen")
    item = item_of(run)
    workitem_reassign(item=item, actor=people.charlie, user=people.alice, reason="Bob is on leave this week")
    item.refresh_from_db()
    workitem_comment(item=item, author=people.alice, body="Called the customer: the plumber came on Monday.")
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    history = page.locator("#panel-task_history")
    expect(history).to_contain_text("No task on this record has been completed yet")

    panel = guide(page)
    panel.get_by_role("link", name="Open Check the claim").click()
    panel.get_by_label("Amount claimed").fill("120.50")
    panel.get_by_label("Kind").select_option("replace")
    panel.get_by_role("button", name="Next").click()
    panel.get_by_label("Approve the claim").check()
    panel.get_by_label("Reason").fill("Photos match the invoice")
    panel.get_by_role("button", name="Finish").click()
    expect(panel.get_by_role("status")).to_contain_text("is completed")

    # The Task history panel came back with the Work Guide, without a reload.
    entry = history.locator(f"#task-history-{item.pk}")
    expect(entry).to_contain_text("Check the claim")
    expect(entry).to_contain_text("Alice Archer completed it")
    for label, value in [
        ("Amount claimed", "120.50"),
        ("Kind", "replace"),
        ("Approve the claim", "Yes"),
        ("Reason", "Photos match the invoice"),
    ]:
        expect(entry.locator(f"dt:text-is('{label}') + dd")).to_have_text(value)
    expect(entry).to_contain_text("Charlie Chen reassigned it from bob to Alice Archer")
    expect(entry).to_contain_text("Reason: Bob is on leave this week")
    expect(entry).to_contain_text("Called the customer: the plumber came on Monday.")
    expect(entry).not_to_contain_text("true")
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.COMPLETED

    page.reload()
    expect(history.locator(f"#task-history-{item.pk}")).to_contain_text("Amount claimed")
    assert no_horizontal_scroll(page)
    screenshot(history, f"record-history-{viewport}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_claim_required_item_refuses_finish_until_claimed(
    page: Page, live_server: Any, people: Any, viewport: str
) -> None:
    load(
        {**screen_flow("claim_check", screens=TWO_SCREENS), "label": "Claim check"},
        orchestration(
            "claims",
            stages=[
                {
                    "key": "review",
                    "label": "Review",
                    "steps": [check_step({"group": "engineering"}, claim_required=True)],
                }
            ],
        ),
    )
    case, run = start("Cracked window")
    item = item_of(run)
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    panel = guide(page)
    panel.get_by_role("link", name="Open Check the claim").click()
    panel.get_by_label("Amount claimed").fill("80")
    panel.get_by_label("Kind").select_option("repair")
    panel.get_by_role("button", name="Next").click()
    panel.get_by_label("Reason").fill("Glass only")

    expect(panel.get_by_text("Claim this item to complete it.")).to_be_visible()
    expect(panel.get_by_role("button", name="Finish")).to_be_disabled()
    screenshot(panel, f"work-guide-claim-required-{viewport}")
    panel.get_by_role("button", name="Claim", exact=True).click()
    expect(panel.get_by_role("status")).to_contain_text("is assigned to you")
    expect(panel).to_contain_text("Held by you")
    expect(panel.get_by_label("Reason")).to_have_value("Glass only")  # kept through the claim
    finish = panel.get_by_role("button", name="Finish")
    expect(finish).to_be_enabled()
    finish.click()
    expect(panel.get_by_role("status")).to_contain_text("is completed")
    item.refresh_from_db()
    assert (item.status, item.claimed_by, item.completed_by) == (
        WorkItemStatus.COMPLETED,
        people.alice,
        people.alice,
    )
    assert item.outputs["reason"] == "Glass only"
