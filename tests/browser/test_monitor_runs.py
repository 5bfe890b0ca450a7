from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import Run, RunStatus
from orchestration.services import run_cancel
from tests.browser.conftest import login, screenshot
from tests.factories import make_case
from tests.orchestration.test_monitor_runs import define, launch, ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_filters_the_runs_to_those_in_error(page: Page, live_server, personas):
    define()
    for name in ("Printer on fire", "Refund for order 1042", "Login loop"):
        launch("cases", make_case(name), actor=personas.admin)
    failed = launch("failing", make_case("Invoice 77 totals"))
    assert failed.status == RunStatus.ERROR
    launch("tickets", ticket("VPN down"))

    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, live_server, "admin")
    page.get_by_role("link", name="Monitoring").click()
    expect(page).to_have_title("Orchestration Runs · Flow Orchestration")
    expect(page.locator("tr[data-run]")).to_have_count(5)

    page.get_by_label("Status", exact=True).select_option("error")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"status=error"))
    rows = page.locator("tr[data-run]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Invoice 77 totals")
    expect(rows.first).to_contain_text("Error")
    expect(rows.first).to_contain_text("Work")
    expect(page.locator('[data-status="error"] .run-count')).to_have_text("1")
    expect(page.locator('[data-status="in_progress"] .run-count')).to_have_text("4")
    # The run links to its detail page, the record to the record's page.
    expect(rows.first.get_by_role("link", name=f"Run {failed.pk}")).to_have_attribute(
        "href", f"/monitor/runs/{failed.pk}/"
    )
    expect(rows.first.get_by_role("link", name="Invoice 77 totals")).to_have_attribute(
        "href", re.compile(rf"/records/case/{failed.record_id}/$")
    )
    screenshot(page, "runs", full_page=True)

    # The table refreshes in place while runs progress: someone cancels a run elsewhere.
    other = Run.objects.filter(status=RunStatus.IN_PROGRESS).order_by("id").first()
    assert other is not None
    run_cancel(run_id=other.pk)
    expect(page.locator('[data-status="canceled"] .run-count')).to_have_text("1", timeout=10_000)
    expect(page.locator('[data-status="in_progress"] .run-count')).to_have_text("3")
    expect(page.get_by_label("Status", exact=True)).to_have_value("error")  # the form is left alone
