"""Defects people met in daily use (issue "The pages people use every day"), each seen in
chromium at 1280 and at 375 pixels: a required choice that looked answered, the words for
claiming, keys where labels exist, dates without the year."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from orchestration.models import StepRun
from tests.browser.conftest import login, screenshot
from tests.factories import RECORD_PERMS, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import launch, stage
from workitems.models import WorkItem, WorkItemStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}
ISO_WITH_YEAR = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?$")


def _laptop_process() -> None:
    fields = [
        {
            "name": "laptop",
            "type": "choice",
            "label": "Laptop model",
            "required": True,
            "choices": ["MacBook Pro 14", "ThinkPad X1 Carbon"],
        }
    ]
    load(
        screen_flow("it_setup", screens=[{"key": "hw", "fields": fields}]),
        orchestration(
            "onboarding",
            stages=[
                stage(
                    "provisioning",
                    {
                        "key": "it",
                        "label": "Pick the laptop",
                        "kind": "interactive",
                        "flow": "it_setup",
                        "assignee": {"group": "engineering"},
                    },
                    label="Provisioning",
                )
            ],
        ),
    )


@pytest.fixture
def world(personas: Any) -> Any:
    for user in (personas.alice, personas.admin):
        grant(user, *RECORD_PERMS)
    _laptop_process()
    case = make_case("New hire: Dora")
    run = launch("onboarding", record=case)
    return case, run


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_required_choice_shows_nothing_picked_and_the_shared_item_says_claim(
    page: Page, live_server: Any, personas: Any, world: Any, viewport: str
) -> None:
    case, run = world
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    panel = page.locator("#panel-work_guide")
    # A group item: one word to take it, while its form is closed.
    expect(panel.get_by_role("button", name="Claim")).to_be_visible()
    expect(panel.get_by_role("button", name="Assign to me")).to_have_count(0)
    panel.get_by_role("link", name=re.compile("Open")).first.click()
    expect(panel.get_by_role("button", name="Claim")).to_have_count(0)  # the form is open
    select = panel.get_by_label("Laptop model")
    expect(select).to_have_value("")  # nothing picked: it once showed "MacBook Pro 14"
    expect(select.locator("option:checked")).to_have_text("Choose…")
    screenshot(page, f"work-guide-required-choice-{viewport}")
    panel.get_by_role("button", name="Finish").click()
    expect(panel.locator(".invalid-feedback, .text-danger").first).to_be_visible()
    assert WorkItem.objects.get(run=run).status == WorkItemStatus.ASSIGNED
    panel.get_by_label("Laptop model").select_option("ThinkPad X1 Carbon")
    panel.get_by_role("button", name="Finish").click()
    expect(panel.get_by_role("status")).to_contain_text("is completed")
    item = WorkItem.objects.get(run=run)
    assert (item.status, item.outputs) == (WorkItemStatus.COMPLETED, {"laptop": "ThinkPad X1 Carbon"})


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_run_page_names_the_stage_dates_have_the_year_and_the_system_started_the_step(
    page: Page, live_server: Any, personas: Any, world: Any, viewport: str
) -> None:
    _case, run = world
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "admin")
    page.goto(f"{live_server.url}/monitor/runs/{run.pk}/")
    header = page.locator("dl").first
    expect(header).to_contain_text("Provisioning")
    expect(header).not_to_contain_text("provisioning")
    started = page.locator("dt:text-is('Started') + dd time")
    assert ISO_WITH_YEAR.match(started.inner_text().strip()), started.inner_text()
    for stamp in page.locator("#events-h ~ * time").all_inner_texts()[:5]:
        assert ISO_WITH_YEAR.match(stamp.strip()), stamp
    # The step the engine started is the system's, not the launcher's (nor a record's creator).
    events = page.locator("#events-h ~ *")
    row = events.locator("tr", has_text="orchestration.step.started")
    expect(row).to_contain_text("system")
    screenshot(page, f"run-detail-labels-{viewport}")
    assert StepRun.objects.get(run=run).status == "in_progress"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_stage_path_on_the_record_page_moves_in_place_when_a_step_finishes(
    page: Page, live_server: Any, personas: Any, viewport: str
) -> None:
    # The steps under the current stage name others' work: shown to those who monitor runs.
    grant(personas.alice, *RECORD_PERMS, "orchestration.view_run")
    load(
        screen_flow("ok_form", fields=[{"name": "done", "type": "boolean", "label": "Done"}]),
        orchestration(
            "two_stages",
            stages=[
                stage(
                    "prepare",
                    {
                        "key": "desk",
                        "label": "Set up the desk",
                        "kind": "interactive",
                        "flow": "ok_form",
                        "assignee": {"user": "alice"},
                    },
                    label="Prepare",
                ),
                stage(
                    "welcome",
                    {
                        "key": "greet",
                        "label": "Greet the new hire",
                        "kind": "interactive",
                        "flow": "ok_form",
                        "assignee": {"user": "bob"},
                    },
                    label="Welcome",
                ),
            ],
        ),
    )
    case = make_case("New hire: Eve")
    run = launch("two_stages", record=case)
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/records/case/{case.pk}/")
    path = page.get_by_role("list", name=f"Stages of run {run.pk}")
    expect(path.locator("[aria-current=step]")).to_have_text(re.compile(r"Prepare\s*\(Current\)"))
    expect(page.get_by_role("list", name="Steps of Prepare")).to_contain_text(
        "Set up the desk: In progress · alice"
    )
    page.evaluate("window.__sameDocument = true")
    guide = page.locator("#panel-work_guide")
    guide.get_by_role("link", name=re.compile("Open")).first.click()
    guide.get_by_role("button", name="Finish").click()
    expect(guide.get_by_role("status")).to_contain_text("is completed")
    # The runs panel was refreshed with the Work Guide: no reload, the path has moved on.
    expect(path.locator("[aria-current=step]")).to_have_text(re.compile(r"Welcome\s*\(Current\)"))
    expect(path.locator(".stage-done")).to_have_text(re.compile(r"Prepare\s*\(Done\)"))
    expect(page.get_by_role("list", name="Steps of Welcome")).to_contain_text(
        "Greet the new hire: In progress · bob"
    )
    assert page.evaluate("window.__sameDocument === true")
    screenshot(page.locator("#panel-runs"), f"record-stage-path-{viewport}")
