from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import login
from tests.factories import RECORD_PERMS, grant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_create_with_a_corrected_error_then_edit_and_see_the_history(page: Page, live_server, personas):
    grant(personas.alice, *RECORD_PERMS)
    login(page, live_server, "alice")

    page.get_by_role("link", name="Cases").click()
    expect(page).to_have_title("Cases · Flow Orchestration")
    page.get_by_role("link", name="New case").click()
    expect(page.get_by_role("heading", name="New case")).to_be_visible()

    page.get_by_label("Name").fill("Coffee machine leaks")
    page.get_by_label("Severity").select_option("High")
    page.get_by_label("Amount").fill("twelve")
    page.get_by_label("Description").fill("Water\non the floor")
    page.get_by_role("button", name="Create").click()

    # The server refuses the amount; what was typed is still there to correct.
    expect(page.locator("#error_1_id_amount")).to_have_text("Enter a number.")
    expect(page.get_by_label("Name")).to_have_value("Coffee machine leaks")
    expect(page.get_by_label("Severity")).to_have_value("High")
    expect(page.get_by_label("Description")).to_have_value("Water\non the floor")
    page.get_by_label("Amount").fill("12.50")
    page.get_by_role("button", name="Create").click()

    expect(page.get_by_role("status")).to_have_text("Case “Coffee machine leaks” created.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Case: Coffee machine leaks")
    expect(page.get_by_text("No changes since the record was created.")).to_be_visible()

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Amount")).to_have_value("12.50")
    page.get_by_label("Status").fill("investigating")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_have_text("Case “Coffee machine leaks” saved.")
    history = page.locator(".record-history li")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text(re.compile(r"Status:\s+empty\s+→\s+changed to\s+investigating"))
    expect(history.first).to_contain_text("by alice")

    # The record and the list read on a phone without sideways scrolling.
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
    assert no_horizontal_scroll(page)
    page.get_by_role("link", name="Cases").last.click()
    expect(page.get_by_role("link", name="Coffee machine leaks")).to_be_visible()
    assert no_horizontal_scroll(page)
