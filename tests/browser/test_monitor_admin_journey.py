"""The admin's journey in real chromium, from the runs list to a completed run: filter the runs
to those in error of one orchestration, open the failed one, read the error in the diagram, fix
its cause on the record, retry the step through the confirmation page and see the run complete.

The admin is an "Orchestration Admins" member, not a superuser: the journey works on the
permissions the monitoring pages ask for."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import Page, expect

from orchestration.models import RunEvent, RunStatus
from orchestration.services import run_launch
from records.services import record_update
from tests.browser.conftest import login
from tests.factories import UserFactory, auto_flow, load, make_case, orchestration, screen_flow
from tests.test_authorization_matrix import ADMIN_PERMS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def define() -> None:
    review = {"key": "check", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}}
    calc = {"key": "calc", "label": "Compute share", "kind": "background", "flow": "share", "max_attempts": 1}
    load(
        screen_flow("review"),
        auto_flow("share", outputs={"x": "1 / record.amount"}),
        orchestration("cases", stages=[{"key": "review", "label": "Review", "steps": [review]}]),
        orchestration("payout", stages=[{"key": "work", "label": "Work", "steps": [calc]}]),
    )


def orchestration_admin() -> None:
    admins, _ = Group.objects.get_or_create(name="Orchestration Admins")
    for perm in ADMIN_PERMS:
        app_label, codename = perm.split(".")
        admins.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    ops: Any = UserFactory(username="ops")
    ops.groups.add(admins)


def test_an_admin_finds_a_failed_run_by_filter_retries_it_and_sees_it_complete(
    page: Page, live_server, personas
):
    define()
    orchestration_admin()
    for name in ("Printer on fire", "Login loop"):
        run_launch(orchestration="cases", record=make_case(name))
    # Another payout that is fine, so that the filter has something to leave out.
    run_launch(orchestration="payout", record=make_case("Paid case", amount="4"))
    case = make_case("Invoice 77", amount="0")
    failed = run_launch(orchestration="payout", record=case)
    failed.refresh_from_db()
    assert failed.status == RunStatus.ERROR

    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, "ops")
    page.get_by_role("link", name="Monitoring").click()
    expect(page.get_by_role("heading", name="Orchestration Runs")).to_be_visible()
    expect(page.locator("tr[data-run]")).to_have_count(4)

    # The filter form: the orchestration and the status.
    page.get_by_label("Orchestration", exact=True).select_option("payout")
    page.get_by_label("Status", exact=True).select_option("error")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"orchestration=payout.*status=error"))
    rows = page.locator("tr[data-run]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Invoice 77")
    expect(rows.first).to_contain_text("Error")

    # Open the run: the error is on the failed step in the diagram.
    rows.first.get_by_role("link", name=f"Run {failed.pk}").click()
    page.wait_for_url(f"{live_server.url}/monitor/runs/{failed.pk}/")
    expect(page.locator(".run-status")).to_have_text("Error")
    step = page.locator("#step-work-calc")
    expect(step).to_contain_text("Compute share")
    expect(step).to_contain_text("Error")
    expect(step.locator(".step-error")).to_contain_text("division by zero")

    # Someone fixes the cause on the record; then the admin retries the step and confirms.
    record_update(record=case, values={"amount": "2"})
    step.get_by_role("link", name="Retry step Compute share").click()
    expect(page.get_by_role("heading", name="Retry step: calc")).to_be_visible()
    page.get_by_label("Reason (optional, kept in the run's events)").fill("amount fixed on the case")
    page.get_by_role("button", name="Confirm: retry step").click()

    page.wait_for_url(f"{live_server.url}/monitor/runs/{failed.pk}/")
    expect(page.get_by_role("status").first).to_have_text("Step retried: attempt 2 queued.")
    page.reload()  # the eager attempt has run by now: the page shows where the run stands
    expect(page.locator(".run-status")).to_have_text("Completed")
    expect(page.locator("#step-work-calc")).to_contain_text("Completed")
    expect(page.locator("#step-work-calc .step-error-current")).to_have_count(0)
    expect(page.locator(".run-events")).to_contain_text("amount fixed on the case")

    # Back on the list, filtered to errors of payout, nothing is left.
    page.goto(f"{live_server.url}/monitor/runs/?orchestration=payout&status=error")
    expect(page.locator("tr[data-run]")).to_have_count(0)
    expect(page.get_by_text("No runs match these filters.")).to_be_visible()

    failed.refresh_from_db()
    assert failed.status == RunStatus.COMPLETED
    event = RunEvent.objects.get(run=failed, name="orchestration.step.retried")
    assert event.actor is not None and event.actor.username == "ops"
