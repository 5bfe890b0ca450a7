"""The Content-Security-Policy in real chromium: the main pages load with no violation reported
(no inline script or style, no eval), and htmx still works under it (a Work Guide finish swaps in
place, the runs table polls)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import Run
from tests.browser.conftest import login
from tests.workitems.guide_support import DECISION, define, start
from workitems.models import WorkItem, WorkItemStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs in every document before its own scripts (Playwright injects it, outside the page's CSP).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  const what = e.blockedURI || "inline";
  console.error(`CSP violation: ${e.violatedDirective} blocked ${what} in ${e.documentURI}`);
});
"""


def watch(page: Page) -> list[str]:
    """Every CSP violation, console error and page error from now on."""
    problems: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return problems


def test_main_pages_report_no_csp_violation_and_htmx_still_works(page: Page, live_server: Any, personas):
    define(assignee={"user": "admin"}, screens=[DECISION])
    case, run = start("Flooded kitchen")
    problems = watch(page)
    login(page, live_server, "admin")
    header = page.request.get(f"{live_server.url}/").headers["content-security-policy"]
    assert "script-src 'self';" in header and "unsafe" not in header

    # The record page with the Work Guide; finishing the item is an htmx form post, swapped in place.
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    page.evaluate("window.__sameDocument = true")
    panel = page.locator("#panel-work_guide")
    panel.get_by_role("link", name="Open Check the claim").click()
    panel.get_by_label("Approve the claim").check()
    panel.get_by_label("Reason").fill("Photos match")
    panel.get_by_role("button", name="Finish").click()
    expect(panel.get_by_role("status")).to_have_text("Done: “Check the claim” is completed.")
    assert page.evaluate("window.__sameDocument === true"), "htmx swapped the panel without a page load"
    assert WorkItem.objects.get(run=run, step_run__key="check").status == WorkItemStatus.COMPLETED
    assert Run.objects.get(pk=run.pk).current_stage == "payout"

    for path, text in [
        ("/my-work/", "My Work"),
        ("/monitor/runs/", "Runs"),
        (f"/monitor/runs/{run.pk}/", "Claim handling"),
        ("/monitor/orchestrations/", "Orchestrations"),
        ("/account/tokens/", "Your API tokens"),
        ("/admin/", "Site administration"),
        (f"/admin/orchestration/run/{run.pk}/change/", "Variables"),
    ]:
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("body")).to_contain_text(text)

    # The runs table polls with htmx (every 5 s while visible): wait for one refresh.
    page.goto(f"{live_server.url}/monitor/runs/")
    with page.expect_request(
        lambda r: r.url.endswith("/monitor/runs/") and r.headers.get("hx-request") == "true", timeout=12_000
    ):
        pass
    assert problems == []

    # The watch itself works: an inline style set from script is refused and reported.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.wait_for_timeout(200)
    assert any("CSP violation: style-src" in p for p in problems), problems


def test_the_login_page_and_a_logout_report_no_violation(page: Page, live_server: Any, personas):
    problems = watch(page)
    page.goto(f"{live_server.url}/login/?next=/my-work/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/my-work/")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    assert problems == []
