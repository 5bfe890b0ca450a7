"""From the assignment email to the finished task, as the assignee lives it: the email's link,
logged out, goes through the login form and lands on the record page with the item open in the
Work Guide; a link to an item that is no longer theirs says so. On a desktop and on a 375 px
phone. Also takes the My Work screenshots in docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.conftest import SCREENSHOTS, login
from tests.factories import RECORD_PERMS, grant, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_reassign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE: ViewportSize = {"width": 375, "height": 812}
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


def review_process() -> None:
    flow = screen_flow(
        "review",
        fields=[
            {"name": "decision", "label": "Decision", "type": "choice", "choices": ["Approve", "Reject"]},
            {"name": "note", "label": "Note", "type": "text"},
        ],
    )
    doc = orchestration(
        "proc",
        stages=[
            {
                "key": "review",
                "label": "Review",
                "steps": [
                    {
                        "key": "check",
                        "label": "Check the refund",
                        "kind": "interactive",
                        "flow": "review",
                        "assignee": {"user": "alice"},
                        "email": {"subject": "Refund to check: {{ record.name }}"},
                    },
                    {
                        "key": "triage",
                        "label": "Triage the case",
                        "kind": "interactive",
                        "flow": "review",
                        "assignee": {"queue": "eng_queue"},
                        "email": {"enabled": False},
                    },
                ],
            }
        ],
    )
    doc["label"] = "Refund review"
    load(flow, doc)


def link_in(text: str) -> str:
    match = re.search(r"^(http://\S+\?item=\d+)$", text, re.M)
    assert match, "the email has a link to the item"
    return match.group(1)


def log_in_on_the_form(page: Page, username: str, password: str = "pw") -> None:
    expect(page.get_by_text("Log in to continue to the page you asked for.")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def guide(page: Page) -> Any:
    return page.locator("#panel-work_guide")


def launch_for_alice(live_server: Any, settings: Any, personas: Any, name: str = "Refund for ACME") -> Any:
    from orchestration.services import run_launch

    settings.SITE_URL = live_server.url
    grant(personas.alice, *RECORD_PERMS)
    review_process()
    case = make_case(name)
    run = run_launch(orchestration="proc", record=case)
    return case, WorkItem.objects.get(run=run, step_run__key="check")


def open_the_link_and_finish(page: Page, link: str, case: Any, item: WorkItem) -> None:
    """Logged out: the link, the login form, the record page with the item open; then finish it."""
    page.goto(link)
    assert re.search(r"/login/\?next=", page.url)
    log_in_on_the_form(page, "alice")
    page.wait_for_url(link)
    assert page.url == link  # the record page, ?item= and all
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case: {case.name}")
    # The Work Guide has the item open at its screen.
    expect(guide(page).get_by_role("heading", name="Check the refund")).to_be_visible()
    expect(guide(page).get_by_label("Decision")).to_be_visible()
    if page.viewport_size and page.viewport_size["width"] <= 400:
        assert no_horizontal_scroll(page)
    guide(page).get_by_label("Decision").select_option("Approve")
    guide(page).get_by_label("Note").fill("Receipt attached, fine.")
    guide(page).get_by_role("button", name="Finish").click()
    expect(guide(page).get_by_role("heading", name="Check the refund")).to_have_count(0)
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED
    assert item.outputs["decision"] == "Approve"

    # The same link again: the item is done, and the page says by whom.
    page.goto(link)
    expect(guide(page)).to_contain_text("This item was already completed by you")


def test_the_email_link_goes_through_login_to_the_open_item(
    page: Page, live_server, settings, personas, mailoutbox
):
    case, item = launch_for_alice(live_server, settings, personas)
    [email] = mailoutbox
    assert email.subject == "Refund to check: Refund for ACME"
    link = link_in(email.body)
    assert link == f"{live_server.url}/records/case/{case.pk}/?item={item.pk}"
    assert f'href="{link}"' in email.alternatives[0][0]
    open_the_link_and_finish(page, link, case, item)


def test_on_a_phone_through_the_development_outbox(page: Page, live_server, settings, personas, tmp_path):
    """`make run`: mail goes to a folder; the Outbox page lists it; a newcomer clicks through."""
    settings.DEBUG = True
    settings.MAILERS = {"default": {"BACKEND": FILE_BACKEND, "OPTIONS": {"file_path": str(tmp_path)}}}
    page.set_viewport_size(PHONE)
    case, item = launch_for_alice(
        live_server, settings, personas, name="Refund for a very long customer name"
    )

    login(page, live_server, "admin")  # the Outbox is staff's, even in development
    page.goto(f"{live_server.url}/dev/outbox/")
    expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
    assert no_horizontal_scroll(page)
    page.get_by_role("link", name="Refund to check: Refund for a very long customer name").click()
    expect(page.get_by_text("To").first).to_be_visible()
    expect(page.locator(".outbox-text")).to_contain_text("Hello alice,")
    assert no_horizontal_scroll(page)
    link = f"{live_server.url}/records/case/{case.pk}/?item={item.pk}"
    expect(page.locator("iframe.outbox-html")).to_be_visible()
    # The HTML version, in its sandboxed frame, has the button to the task.
    expect(
        page.frame_locator("iframe.outbox-html").get_by_role("link", name="Open the task")
    ).to_have_attribute("href", link)
    # The newcomer follows the link as its recipient would: logged out.
    page.context.clear_cookies()
    page.locator(".outbox-links").get_by_role("link", name=link).click()
    page.wait_for_url(re.compile(r"/login/\?next="))
    assert no_horizontal_scroll(page)
    page.go_back()
    open_the_link_and_finish(page, link, case, item)


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_links_to_items_no_longer_yours_say_so(
    page: Page, live_server, settings, personas, mailoutbox, viewport
):
    if viewport:
        page.set_viewport_size(viewport)
    _, item = launch_for_alice(live_server, settings, personas)
    link = link_in(mailoutbox[0].body)
    login(page, live_server, "alice")

    workitem_reassign(item=item, actor=personas.charlie, user=personas.bob)
    page.goto(link)
    expect(guide(page)).to_contain_text("This item is now assigned to someone else")
    expect(guide(page).get_by_label("Decision")).to_have_count(0)

    # A canceled item (the run was stopped).
    WorkItem.objects.filter(pk=item.pk).update(status=WorkItemStatus.CANCELED)
    page.goto(link)
    expect(guide(page)).to_contain_text("This item was canceled")
    if viewport:
        assert no_horizontal_scroll(page)


def test_my_work_screenshots(page: Page, live_server, settings, personas):
    """docs/screenshots/my-work.png and my-work-phone.png, with a few items of each kind."""
    from datetime import timedelta

    from django.utils import timezone

    from orchestration.services import run_launch

    settings.SITE_URL = live_server.url
    review_process()
    names = ["Refund for ACME", "Broken laptop", "Invoice 2031 disputed", "Desk move, 4th floor"]
    for hours, name in zip((50, 26, 5, 1), names, strict=True):
        run = run_launch(orchestration="proc", record=make_case(name))
        WorkItem.objects.filter(run=run).update(created_at=timezone.now() - timedelta(hours=hours))
        if name.startswith("Invoice"):
            WorkItem.objects.filter(run=run, step_run__key="check").update(
                due_at=timezone.now() - timedelta(hours=2)
            )
    login(page, live_server, "alice")
    page.set_viewport_size({"width": 1280, "height": 720})
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile(r"^My Work")
    ).first.click()
    expect(page.get_by_role("heading", name="My Work")).to_be_visible()
    expect(page.locator(".my-work-badge")).to_have_text("8 open items")
    expect(page.locator("tr[data-item]")).to_have_count(8)
    expect(page.get_by_text("Overdue").filter(visible=True)).to_have_count(1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "my-work.png"), full_page=True)

    # Oldest first; the header flips it, and a row opens its item on the record page.
    first = page.locator("tr[data-item] td:first-child a").first
    expect(first).to_have_text("Check the refund")
    page.get_by_role("link", name="Waiting").click()
    expect(page.locator("tr[data-item]").first).to_contain_text("Desk move, 4th floor")

    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/my-work/")
    assert no_horizontal_scroll(page)
    expect(page.get_by_text("Overdue").filter(visible=True)).to_have_count(1)
    page.screenshot(path=str(SCREENSHOTS / "my-work-phone.png"), full_page=True)
    page.locator("tr[data-item] td:first-child a").first.click()
    page.wait_for_url(re.compile(r"/records/case/\d+/\?item=\d+"))
