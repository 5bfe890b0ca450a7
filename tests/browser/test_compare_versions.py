"""An admin compares two versions of an orchestration in real chromium: from the orchestration
page's form to the change list beside the YAML diff, then the activation page's What changes,
then the History. Takes docs/screenshots/versions-compare.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from orchestration.services import definitions_import
from tests.browser.conftest import login, screenshot
from tests.factories import auto_flow, grant, load, orchestration, screen_flow
from tests.orchestration.engine_support import bg, stage, task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _loan(*, with_board: bool) -> dict:
    stages = [
        stage(
            "intake",
            task(
                "check",
                label="Check the loan application" if with_board else "Check the application",
                user="alice",
            ),
            bg("score", "scoring", start={"after": ["check"]}, max_attempts=5 if with_board else 3),
            next={
                "outcomes": [{"label": "Large loan", "when": "record.amount > 10000", "goto": "board"}],
                "default": "end",
            }
            if with_board
            else "end",
        ),
    ]
    if with_board:
        stages.append(stage("board", task("vote", assignee={"group": "support"}), next="end"))
    doc = orchestration("loan_approval", stages=stages)
    doc["label"] = "Loan approval"
    return doc


def test_compare_two_versions_then_read_what_activating_changes(page: Page, live_server, personas):
    load(screen_flow("review"), auto_flow("scoring"), _loan(with_board=False))
    definitions_import(items=[("loan_approval.yaml", _loan(with_board=True))], activate=False)
    grant(personas.bob, "orchestration.view_run", "orchestration.import_definitions")
    login(page, live_server, "bob")

    page.goto(f"{live_server.url}/monitor/orchestrations/loan_approval/")
    form = page.locator("form.compare-form")
    form.get_by_label("From").select_option("1")
    form.get_by_label("To").select_option("2")
    form.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/compare/?from=1&to=2")
    expect(page.get_by_role("heading", name="Compare versions of loan_approval")).to_be_visible()

    changes = page.locator(".change-list")
    expect(changes.locator(".change-group h3")).to_contain_text(
        ["Stage board", "Stage intake", "Step board/vote", "Step intake/score"]
    )
    board = changes.locator('[data-element="stage board"]')
    expect(board.locator(".change-kind")).to_have_text(["added"])
    score = changes.locator('[data-path="stages[intake].steps[score].max_attempts"]')
    expect(score).to_be_visible()
    expect(score.locator("del")).to_have_text("3")
    expect(score.locator("ins")).to_have_text("5")
    expect(changes.locator('[data-path="stages[intake].next"]')).to_contain_text("Large loan")

    diff = page.locator("pre.yaml-diff")
    expect(diff.locator(".diff-file").first).to_have_text("--- loan_approval v1")
    expect(diff.locator("del.diff-del")).to_have_text(["-    label: Check the application"])
    expect(diff.locator("ins.diff-add", has_text="label: Check the loan application")).to_be_visible()
    expect(diff.locator("ins.diff-add", has_text="- key: board")).to_be_visible()
    expect(diff.locator("ins.diff-add", has_text="max_attempts: 5")).to_be_visible()
    screenshot(page, "versions-compare", full_page=True)

    # The activation page says the same before anything changes; activating it writes History.
    page.goto(f"{live_server.url}/monitor/orchestrations/loan_approval/v2/activate/")
    what = page.locator(".activate-changes")
    expect(what.get_by_role("heading", name="What changes")).to_be_visible()
    expect(what.locator('[data-element="stage board"]')).to_contain_text("added")
    page.get_by_role("button", name="Activate v2").click()
    expect(page.get_by_role("status")).to_contain_text("loan_approval v2 is now the active version")

    page.goto(f"{live_server.url}/monitor/orchestrations/loan_approval/")
    latest = page.locator(".history-table tbody tr").first
    expect(latest).to_contain_text("Activated v2 (was v1)")
    expect(latest).to_contain_text("bob")
    expect(latest).to_contain_text("stages added board")
    latest.get_by_role("link", name="compare").click()
    page.wait_for_url("**/compare/?from=1&to=2")
