"""Out of office in chromium, at 1280 and 375 pixels: alice says she is away and picks bob by
keyboard; the next item of a step assigned to her arrives on bob's My Work, saying whom it was
for. Takes docs/screenshots/out-of-office-*."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.conftest import logged_in_page, login, screenshot
from tests.factories import make_case
from tests.workitems.mywork_support import interactive, item, launch, load_process
from workitems.models import OutOfOffice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


@pytest.fixture
def world(personas: Any) -> Any:
    for u, (first, last) in ((personas.alice, ("Alice", "Ito")), (personas.bob, ("Bob", "Meyer"))):
        u.first_name, u.last_name = first, last
        u.save()
    load_process("proc", "Case review", interactive("mine", "Check the facts", {"user": "alice"}))
    return personas


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_alice_sets_out_of_office_and_her_next_item_arrives_at_bob(
    page: Page, new_context: Any, live_server: Any, world: Any, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/account/out-of-office/")
    expect(page.get_by_role("heading", name="Out of office")).to_be_visible()
    today = timezone.localdate()
    page.get_by_label("First day away").fill(today.isoformat())
    page.get_by_label("Last day away").fill((today + dt.timedelta(days=4)).isoformat())
    combo = page.get_by_role("combobox", name="Who takes the work")
    combo.focus()
    page.keyboard.type("bob")
    expect(page.get_by_role("listbox").get_by_role("option")).to_have_count(1)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(combo).to_have_value("Bob Meyer (bob)")
    screenshot(page, f"out-of-office-{viewport}", full_page=True)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#ooo-current")).to_contain_text("Away now")
    expect(page.locator("#ooo-current")).to_contain_text("new work goes to Bob Meyer")
    row = OutOfOffice.objects.get(user=world.alice)
    assert row.delegate == world.bob and row.ends_on == today + dt.timedelta(days=4)

    it = item(launch("proc", make_case("Flooded kitchen")), "mine")
    assert it.assignee_user == world.bob
    bob = logged_in_page(new_context, live_server, "bob", viewport=VIEWPORTS[viewport])
    bob.goto(f"{live_server.url}/my-work/")
    mine = bob.locator(f'[data-item="{it.pk}"]').first
    expect(mine).to_contain_text("Check the facts")
    expect(mine).to_contain_text("Alice Ito")
    screenshot(bob, f"out-of-office-delegate-{viewport}", full_page=True)
