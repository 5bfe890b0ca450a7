"""An admin uploads a definitions file on the Orchestrations page, fixes what it reports, reads
the new version's diagram and activates it. Takes docs/screenshots/orchestrations*.png."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from django.utils import timezone
from playwright.sync_api import Page, expect

from orchestration.models import OrchestrationVersion, Run, RunStatus
from tests.browser.conftest import login, screenshot
from tests.factories import auto_flow, grant, load, orchestration, screen_flow
from tests.orchestration.engine_support import bg, stage, task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _loan(*, with_board: bool) -> dict:
    stages = [
        stage(
            "intake",
            task("check", label="Check the application", user="alice"),
            bg("score", "scoring", start={"after": ["check"]}),
            fault_path="repair",
            next={
                "outcomes": [{"label": "Large loan", "when": "record.amount > 10000", "goto": "board"}],
                "default": "end",
            }
            if with_board
            else "end",
        ),
        stage("repair", task("fix", assignee={"queue": "triage"}), next="end"),
    ]
    if with_board:
        stages.insert(1, stage("board", task("vote", assignee={"group": "support"}), next="end"))
    doc = orchestration("loan_approval", stages=stages)
    doc["label"] = "Loan approval"
    return doc


def _history() -> None:
    """Finished runs of v1 with known durations, so the page has figures to show."""
    version = OrchestrationVersion.objects.get(orchestration__api_name="loan_approval")
    start = timezone.now() - dt.timedelta(days=2)
    for minutes, status in [(30, "completed"), (45, "completed"), (90, "completed"), (5, "error")]:
        Run.objects.create(
            orchestration=version.orchestration,
            version=version,
            status=status,
            started_at=start,
            ended_at=start + dt.timedelta(minutes=minutes),
        )
    Run.objects.create(orchestration=version.orchestration, version=version, status=RunStatus.IN_PROGRESS)


def test_upload_fix_read_the_diagram_and_activate(page: Page, live_server, personas):
    load(screen_flow("review"), auto_flow("scoring"), _loan(with_board=False))
    _history()
    grant(personas.charlie, "orchestration.view_run", "orchestration.import_definitions")
    login(page, live_server, "charlie")
    page.set_viewport_size({"width": 1280, "height": 720})

    page.goto(f"{live_server.url}/monitor/orchestrations/")
    row = page.locator('tr[data-orchestration="loan_approval"]')
    expect(row.locator(".completion-rate")).to_have_text("75.0 %")
    expect(row.locator(".avg-duration")).to_have_text("55 min")
    expect(row.locator(".failed-runs")).to_contain_text("1")
    screenshot(page, "orchestrations", full_page=True)

    # A first attempt with a mistake: nothing is stored, the error says where.
    page.get_by_role("link", name="Upload definitions").click()
    broken = _loan(with_board=True)
    broken["stages"][0]["next"]["outcomes"][0]["goto"] = "bored"
    page.get_by_label("Definitions file").set_input_files(
        {"name": "loan.yaml", "mimeType": "application/yaml", "buffer": yaml.safe_dump(broken).encode()}
    )
    page.get_by_label("Activate after import").uncheck()
    page.get_by_role("button", name="Import").click()
    errors = page.locator(".upload-errors")
    expect(errors).to_contain_text("loan.yaml")
    expect(errors).to_contain_text("stages[0].next.outcomes[0].goto")
    assert OrchestrationVersion.objects.count() == 1

    page.get_by_label("Definitions file").set_input_files(
        {
            "name": "loan.yaml",
            "mimeType": "application/yaml",
            "buffer": yaml.safe_dump(_loan(with_board=True)).encode(),
        }
    )
    page.get_by_label("Activate after import").uncheck()
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("created: orchestration loan_approval v2")
    expect(row.locator(".active-version")).to_have_text("v1")

    # The new version's diagram, read before it runs anything.
    page.get_by_role("link", name="Loan approval").click()
    page.get_by_role("link", name="v2", exact=True).click()
    diagram = page.locator(".version-diagram")
    expect(diagram.locator(".diagram-stage h3")).to_have_text(["intake", "board", "repair"])
    intake = diagram.locator('[data-stage="intake"]')
    expect(intake).to_contain_text("Check the application")
    expect(intake).to_contain_text("after check")
    expect(intake).to_contain_text("Large loan record.amount > 10000 → board")
    expect(intake.locator(".stage-fault")).to_contain_text("repair")
    page.get_by_text("Definition (YAML)").click()
    expect(page.locator(".version-yaml pre")).to_contain_text("api_name: loan_approval")
    screenshot(page, "orchestrations-version", full_page=True)

    page.get_by_role("link", name="Activate").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Activate loan_approval v2?")
    page.get_by_role("button", name="Activate v2").click()
    expect(page.get_by_role("status")).to_contain_text("loan_approval v2 is now the active version")
    assert OrchestrationVersion.objects.get(is_active=True).number == 2
