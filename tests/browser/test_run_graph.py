"""The run page's flow graph and variables changed by hand, in chromium at 1280 and at 375
pixels: an admin reads a failed run in the graph and clicks the failed step to land on its
error; an admin changes a variable with a reason and finds the change in the events."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from orchestration.models import Run, RunEvent, RunStatus
from orchestration.services import PERM_CHANGE_VARIABLES
from tests.browser.conftest import login, screenshot
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, launch, stage, task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


def define() -> None:
    """intake: two checks side by side, a summary after both, then a decision (with a fault
    path to review); pay: the transfer divides by the case's amount; review: a person's step."""
    load(
        auto_flow("fetch_data", outputs={"score": "70"}),
        auto_flow("check_sanctions", outputs={"clear": "true"}),
        auto_flow("summarise", outputs={"ok": "true"}),
        auto_flow("transfer_money", outputs={"per_unit": "1 / record.amount"}),
        screen_flow("review_form"),
        orchestration(
            "payout",
            variables=[
                {"name": "score", "type": "number", "description": "From the data fetched"},
                {"name": "note", "type": "text"},
            ],
            stages=[
                stage(
                    "intake",
                    bg("fetch", "fetch_data", label="Fetch data", outputs={"score": "score"}),
                    bg("sanctions", "check_sanctions", label="Check sanctions"),
                    bg("summary", "summarise", label="Summarise", start={"after": ["fetch", "sanctions"]}),
                    label="Intake",
                    next={
                        "outcomes": [{"label": "good score", "when": "vars.score >= 50", "goto": "pay"}],
                        "default": "review",
                    },
                    fault_path="review",
                ),
                stage(
                    "pay", bg("transfer", "transfer_money", label="Transfer", max_attempts=1), label="Pay out"
                ),
                stage("review", task("look", "review_form", label="Look at the case"), label="Review"),
            ],
        ),
    )


@pytest.fixture
def failed(personas: Any) -> Run:
    define()
    run = launch("payout", record=make_case("Broken boiler", amount="0"))
    assert run.status == RunStatus.ERROR
    return run


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_failed_step_in_the_graph_leads_to_its_error(
    page: Page, live_server: Any, personas: Any, failed: Run, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "admin")
    page.goto(f"{live_server.url}/monitor/runs/{failed.pk}/")

    graph = page.get_by_role("img", name=f"Flow graph of run {failed.pk}")
    expect(graph).to_be_visible()
    # Each step says its state in words; the failed one is marked.
    expect(graph.locator('[data-step="intake/fetch"]')).to_contain_text("✓ Done")
    expect(graph.locator('[data-step="intake/summary"]')).to_contain_text("✓ Done")
    expect(graph.locator('[data-step="review/look"]')).to_contain_text("○ Not started")
    failed_node = graph.locator("a.rg-step-failed")
    expect(failed_node).to_have_count(1)
    expect(failed_node).to_contain_text("✕ Failed · see error")
    expect(graph.locator(".rg-edge-fault")).to_have_count(1)
    expect(graph.locator(".rg-edge-taken")).to_have_count(1)  # "good score" was taken

    # The graph never widens the page: on a phone it scrolls inside its own box.
    box = page.locator(".run-graph-scroll")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    fits = box.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert fits is (viewport == "desktop"), "the graph fits at 1280 px and scrolls at 375 px"
    failed_node.scroll_into_view_if_needed()
    screenshot(page.locator("section.run-graph"), f"run-graph-failed-{viewport}")

    failed_node.click()
    page.wait_for_url(f"{live_server.url}/monitor/runs/{failed.pk}/#error-pay-transfer")
    error = page.locator("#error-pay-transfer")
    expect(error).to_be_in_viewport()
    expect(error).to_contain_text("division by zero")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_admin_changes_a_variable_with_a_reason_and_sees_the_event(
    page: Page, live_server: Any, personas: Any, failed: Run, viewport: str
) -> None:
    ops = grant(UserFactory(username="ops", first_name="Olga", last_name="Ops"), "orchestration.view_run")
    grant(ops, PERM_CHANGE_VARIABLES)
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "ops")
    page.goto(f"{live_server.url}/monitor/runs/{failed.pk}/")

    row = page.locator("#variable-score")
    expect(row).to_contain_text("70")
    row.get_by_text("Change").click()
    value = row.get_by_label("New value")
    expect(value).to_have_value("70")
    value.fill("12")
    # Without a reason, nothing is changed and the field says why (in place: htmx).
    row.get_by_role("button", name="Save score").click()
    expect(page.locator("#variable-score .field-error")).to_contain_text("This field is required")
    assert Run.objects.get(pk=failed.pk).variables["score"] == 70
    expect(page.locator("#variable-score").get_by_label("New value")).to_have_value("12")  # kept
    assert not RunEvent.objects.filter(run=failed, name="orchestration.run.variable_changed").exists()

    # Again from the page as it loads, with a reason this time.
    page.reload()
    row = page.locator("#variable-score")
    row.get_by_text("Change").click()
    row.get_by_label("New value").fill("12")
    row.get_by_label("Reason, kept in the run's events").fill("score re-read from the bureau")
    row.scroll_into_view_if_needed()
    screenshot(page.locator("section[aria-labelledby=variables-h]"), f"run-variable-edit-{viewport}")
    row.get_by_role("button", name="Save score").click()

    expect(page.get_by_role("status").first).to_contain_text("Variable 'score' changed")
    expect(page.locator("#variable-score pre")).to_have_text("12")
    event_row = page.locator(".run-events tr", has_text="orchestration.run.variable_changed")
    expect(event_row).to_contain_text("Variable changed by hand")
    expect(event_row).to_contain_text("Olga Ops")
    expect(event_row).to_contain_text("score re-read from the bureau")
    expect(event_row).to_contain_text("old: 70")
    event = RunEvent.objects.get(run=failed, name="orchestration.run.variable_changed")
    assert event.actor == ops
    assert event.payload == {
        "variable": "score",
        "old": 70,
        "new": 12,
        "reason": "score re-read from the bureau",
    }
    assert Run.objects.get(pk=failed.pk).variables["score"] == 12
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
