"""Run detail in real chromium: an admin opens a failed run, reads the error in the diagram,
fixes the cause, retries the step through the confirmation page and sees the run complete."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import RunEvent, RunStatus
from records.services import record_update
from tests.browser.conftest import login, screenshot
from tests.factories import auto_flow, load, make_case, orchestration
from tests.orchestration.engine_support import bg, launch, stage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def define() -> None:
    load(
        auto_flow("fetch_data", outputs={"score": "70"}),
        auto_flow("check_sanctions", outputs={"clear": "true"}),
        auto_flow("transfer_money", outputs={"per_unit": "1 / record.amount"}),
        orchestration(
            "payout",
            variables=[{"name": "score", "type": "number"}],
            stages=[
                stage(
                    "intake",
                    bg("fetch", "fetch_data", label="Fetch data", outputs={"score": "score"}),
                    bg("sanctions", "check_sanctions", label="Check sanctions"),
                    label="Intake",
                    next={
                        "outcomes": [{"label": "good score", "when": "vars.score >= 50", "goto": "pay"}],
                        "default": "end",
                    },
                ),
                stage(
                    "pay",
                    bg("transfer", "transfer_money", label="Transfer", max_attempts=1),
                    label="Pay out",
                    next="end",
                ),
            ],
        ),
    )


def test_an_admin_retries_a_failed_step_after_fixing_its_cause(page: Page, live_server, personas):
    define()
    case = make_case("Broken boiler", amount="0")
    run = launch("payout", record=case)
    assert run.status == RunStatus.ERROR

    login(page, live_server, "admin")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")

    # The diagram: intake completed with its decision; the failed step with its error.
    intake = page.locator("section.stage-box", has=page.locator("#stage-intake"))
    expect(intake).to_contain_text("Completed")
    expect(intake).to_contain_text("Decision taken: good score")
    pay = page.locator("section.stage-box", has=page.locator("#stage-pay"))
    expect(pay).to_contain_text("In progress")
    transfer = page.locator("#step-pay-transfer")
    expect(transfer).to_contain_text("Error")
    expect(transfer.locator(".step-error")).to_contain_text("division by zero")
    expect(page.locator(".run-status")).to_have_text("Error")
    screenshot(page, "run-detail", full_page=True)

    # The cause is fixed on the record; then the admin retries the step.
    record_update(record=case, values={"amount": "2"})
    transfer.get_by_role("link", name="Retry step Transfer").click()
    expect(page.get_by_role("heading", name="Retry step: transfer")).to_be_visible()
    expect(page.locator(".confirm-explanation")).to_contain_text("starts again")
    page.get_by_label("Reason (optional, kept in the run's events)").fill("amount corrected on the case")
    page.get_by_role("button", name="Confirm: retry step").click()

    page.wait_for_url(f"{live_server.url}/monitor/runs/{run.pk}/")
    expect(page.get_by_role("status").first).to_have_text("Step retried: attempt 2 queued.")
    page.reload()  # the eager attempt has run by now; the page shows where the run stands
    expect(page.locator(".run-status")).to_have_text("Completed")
    expect(page.locator("#step-pay-transfer")).to_contain_text("Completed")
    expect(page.locator(".run-events")).to_contain_text("orchestration.step.retried")
    expect(page.locator(".run-events")).to_contain_text("amount corrected on the case")

    event = RunEvent.objects.get(run=run, name="orchestration.step.retried")
    assert event.actor == personas.admin


def test_on_a_phone_the_diagram_scrolls_sideways_not_the_page(page: Page, live_server, personas):
    define()
    run = launch("payout", record=make_case("Broken boiler", amount="0"))
    login(page, live_server, "admin")
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    expect(page.locator("#step-pay-transfer")).to_contain_text("division by zero")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    diagram = page.locator(".run-diagram")
    assert diagram.evaluate("el => el.scrollWidth > el.clientWidth")
    diagram.scroll_into_view_if_needed()  # under the flow graph
    diagram.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    expect(page.locator("#step-pay-transfer")).to_be_in_viewport()
