"""The people picker in chromium, by keyboard only, at 1280 and 375 pixels: a manager opens a
row's reassign dialog, types part of a name, moves to the person with the arrow keys, picks with
Enter and sends; then filters the list by the same person. Takes docs/screenshots/people-picker-*."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from orchestration.models import RunEvent
from tests.browser.conftest import login, screenshot
from tests.factories import UserFactory, grant, make_case
from tests.workitems.mywork_support import everyone_process, item, launch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


@pytest.fixture
def world(personas: Any) -> Any:
    UserFactory(username="dana", first_name="Dana", last_name="Whitfield", email="dana@example.com")
    UserFactory(username="dwhite", first_name="Dana", last_name="White")
    grant(personas.charlie, "workitems.view_workitem")  # a manager: may see and reassign
    everyone_process()
    run = launch("proc", make_case("Flooded kitchen"))
    return item(run, "mine")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_manager_reassigns_by_keyboard_through_the_picker_then_filters_by_that_person(
    page: Page, live_server: Any, personas: Any, world: Any, viewport: str
) -> None:
    mine = world
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "charlie")
    page.goto(f"{live_server.url}/work-items/")
    row = page.locator(f'tr[data-item="{mine.pk}"]')
    opener = row.get_by_role("button", name="Reassign Check the facts")
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Reassign “Check the facts”")
    expect(dialog).to_be_visible()
    combo = dialog.get_by_role("combobox", name="Assign to")
    expect(combo).to_be_focused()  # the dialog puts the keyboard where to type

    page.keyboard.type("dan")
    listbox = dialog.get_by_role("listbox")
    expect(listbox).to_contain_text("Dana Whitfield")
    expect(listbox.get_by_role("option")).to_have_count(2)
    expect(combo).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = listbox.get_by_role("option", name="Dana Whitfield (dana) person")
    expect(second).to_have_attribute("aria-selected", "true")
    expect(combo).to_have_attribute("aria-activedescendant", second.get_attribute("id") or "")
    screenshot(page, f"people-picker-{viewport}")
    page.keyboard.press("Enter")  # picks; does not send the form
    expect(combo).to_have_value("Dana Whitfield (dana)")
    expect(listbox).to_be_hidden()
    assert not RunEvent.objects.filter(name="workitems.item.reassigned").exists()

    page.keyboard.press("Tab")
    expect(dialog.get_by_role("form", name="Reassign Check the facts").get_by_label("Reason")).to_be_focused()
    page.keyboard.type("Alice is away")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("1 item reassigned to Dana Whitfield.")
    expect(row).to_contain_text("Dana Whitfield")
    mine.refresh_from_db()
    assert mine.assignee_user is not None and mine.assignee_user.username == "dana"
    event = RunEvent.objects.get(run=mine.run, name="workitems.item.reassigned")
    assert event.payload["reason"] == "Alice is away" and event.actor == personas.charlie

    # The same person as a filter: pick by keyboard, Enter picks, Enter again applies.
    who = page.get_by_role("combobox", name="Assigned to")
    who.focus()
    page.keyboard.type("whitf")
    expect(page.get_by_role("listbox", name="Matches for assigned to").get_by_role("option")).to_have_count(1)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(who).to_have_value("Dana Whitfield (dana)")
    page.keyboard.press("Enter")
    page.wait_for_url("**user=dana**")
    expect(page.locator("tr[data-item]")).to_have_count(1)
    expect(row).to_be_visible()
    expect(page.get_by_role("combobox", name="Assigned to")).to_have_value("Dana Whitfield (dana)")


def test_escape_closes_the_list_first_and_the_dialog_second(
    page: Page, live_server: Any, personas: Any, world: Any
) -> None:
    page.set_viewport_size(VIEWPORTS["desktop"])
    login(page, live_server, "charlie")
    page.goto(f"{live_server.url}/work-items/")
    page.locator(f'tr[data-item="{world.pk}"]').get_by_role("button", name="Reassign Check the facts").click()
    dialog = page.get_by_role("dialog", name="Reassign “Check the facts”")
    expect(dialog.get_by_role("combobox", name="Assign to")).to_be_focused()
    page.keyboard.type("zz")
    # (The list shown on focus is replaced by the answer for "zz": wait for the text, then count.)
    expect(dialog.get_by_role("listbox")).to_have_text("No one matches “zz”")
    expect(dialog.get_by_role("listbox").get_by_role("option")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(dialog.get_by_role("listbox")).to_be_hidden()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Typed text that is no one, sent anyway: the dialog comes back with the near matches.
    page.locator(f'tr[data-item="{world.pk}"]').get_by_role("button", name="Reassign Check the facts").click()
    expect(dialog.get_by_role("combobox", name="Assign to")).to_be_focused()
    expect(dialog.get_by_role("combobox", name="Assign to")).to_have_value(
        "zz"
    )  # what was typed is still there
    page.keyboard.press("Control+a")
    page.keyboard.type("Dana Whitfeld")
    # The list answers the typing (its near matches), then Escape closes it, not the dialog.
    expect(dialog.get_by_role("listbox")).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog.get_by_role("listbox")).to_be_hidden()
    dialog.get_by_role("button", name="Reassign", exact=True).click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("No user, group or queue is called “Dana Whitfeld”. Did you mean")
    assert not RunEvent.objects.filter(name="workitems.item.reassigned").exists()
