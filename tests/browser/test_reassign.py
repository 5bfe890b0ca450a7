"""Reassigning from the Work Items page in real chromium: a manager moves three items to bob, who
then finds them on My Work and in the record's Work Guide; someone who may only look gets no
control, and a forged request is refused. Takes docs/screenshots/work-items.png."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orchestration.models import RunEvent
from tests.browser.conftest import logged_in_page, screenshot
from tests.factories import RECORD_PERMS, grant, make_case
from tests.workitems.mywork_support import age, everyone_process, item, launch
from workitems.models import WorkItem

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEW = "workitems.view_workitem"


@pytest.fixture
def cases(personas):  # type: ignore[no-untyped-def]
    """Three cases, each with five open items (one per kind of assignee), some old, one overdue,
    one held; charlie (a manager) and alice may view the page; bob may open records."""
    everyone_process()
    runs = [launch("proc", make_case(name)) for name in ("Flooded kitchen", "Broken window", "Lost luggage")]
    for n, run in enumerate(runs):
        age(item(run, "mine"), hours=24 * (n + 2))
        age(item(run, "triage"), hours=30 + n)
    WorkItem.objects.filter(pk=item(runs[0], "bobs").pk).update(due_at=timezone.now() - timedelta(hours=3))
    WorkItem.objects.filter(pk=item(runs[1], "queue").pk).update(claimed_by=personas.alice)
    grant(personas.charlie, VIEW)
    grant(personas.alice, VIEW)
    grant(personas.bob, *RECORD_PERMS)
    return runs


def test_a_manager_reassigns_three_items_and_the_new_assignee_finds_them(
    new_context, live_server, personas, cases
):
    moved = [item(run, "mine") for run in cases]
    manager = logged_in_page(new_context, live_server, "charlie", viewport={"width": 1400, "height": 1000})
    manager.goto(f"{live_server.url}/work-items/")
    expect(manager.get_by_role("heading", name="Work items")).to_be_visible()
    for name in ("Flooded kitchen", "Broken window", "Lost luggage"):
        manager.get_by_label(f"Select Check the facts on {name}").check()
    form = manager.get_by_role("form", name="Reassign the selected items")
    picker = form.get_by_role("combobox", name="Assign to")
    picker.press_sequentially("bo")
    form.get_by_role("option", name="bob person").click()  # picked with the mouse here
    expect(picker).to_have_value("bob")
    form.get_by_label("Reason").fill("Alice is on leave this week")
    screenshot(manager, "work-items", full_page=True)
    form.get_by_role("button", name="Reassign selected").click()

    expect(manager.get_by_role("status")).to_have_text("3 items reassigned to bob.")
    for i in moved:
        expect(manager.locator(f'tr[data-item="{i.pk}"]')).to_contain_text("bob")
        event = RunEvent.objects.get(run=i.run, name="workitems.item.reassigned")
        assert event.actor == personas.charlie and event.payload["reason"] == "Alice is on leave this week"

    bob = logged_in_page(new_context, live_server, "bob")
    bob.goto(f"{live_server.url}/my-work/")
    for i in moved:
        expect(bob.locator(f'tr[data-item="{i.pk}"]')).to_contain_text("Check the facts")
    bob.locator(f'tr[data-item="{moved[0].pk}"]').get_by_role("link", name="Flooded kitchen").click()
    guide = bob.locator("#panel-work_guide")
    expect(guide.get_by_role("heading", name="Check the facts")).to_be_visible()
    expect(guide).to_contain_text("Assigned to you")


def test_a_viewer_who_may_not_reassign_gets_no_control_and_a_forged_post_is_refused(
    new_context, live_server, personas, cases
):
    target = item(cases[0], "bobs")  # alice tries to take bob's item
    page = logged_in_page(new_context, live_server, "alice")
    page.goto(f"{live_server.url}/work-items/")
    expect(page.locator(f'tr[data-item="{target.pk}"]')).to_contain_text("Bob decides")
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_text("Reassign")).to_have_count(0)

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/work-items/reassign/",
        form={"csrfmiddlewaretoken": token, "items": str(target.pk), "kind": "user", "target": "alice"},
        headers={"X-CSRFToken": token},
    )
    assert response.status == 403
    assert "CSRF" not in response.text()  # refused for lack of permission, not for the token
    target.refresh_from_db()
    assert target.assignee_user == personas.bob
    assert not RunEvent.objects.filter(name="workitems.item.reassigned").exists()
