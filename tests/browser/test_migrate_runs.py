"""Migrating runs from the version page in chromium (1280 and 375 pixels): the admin chooses the
old version and a rename, previews (how many move, why the others cannot), migrates, and the
runs are on the new version. Takes docs/screenshots/migrate-runs-*."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from orchestration.models import Run, RunEvent
from orchestration.services import run_launch
from tests.browser.conftest import login, screenshot
from tests.factories import load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import task
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


@pytest.fixture
def world(personas: Any) -> Any:
    load(
        screen_flow("review"),
        orchestration(
            "proc",
            stages=[{"key": "review", "steps": [task("check")]}, {"key": "pay", "steps": [task("pay_out")]}],
        ),
    )
    runs = [run_launch(orchestration="proc", record=make_case(f"Case {n}")) for n in range(6)]
    item = WorkItem.objects.get(run=runs[0], status=WorkItemStatus.ASSIGNED)
    workitem_complete(item=item, user=personas.alice, data={"approved": "true"})  # now in "pay"
    load(
        orchestration(
            "proc",
            stages=[
                {"key": "approval", "steps": [task("check")]},
                {"key": "payout", "steps": [task("send")]},
            ],
        )
    )
    return runs


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_admin_previews_then_migrates_runs_from_the_version_page(
    page: Page, live_server: Any, world: Any, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "admin")
    page.goto(f"{live_server.url}/monitor/orchestrations/proc/v2/")
    page.get_by_role("link", name="Migrate runs here").click()
    page.get_by_label("Runs on version").select_option("1")
    page.get_by_label("Renamed stages").fill("review=approval")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#migrate-preview")
    expect(preview).to_contain_text("5 runs can move; 1 cannot.")
    expect(preview).to_contain_text("its current stage 'pay' is not in the new version")
    screenshot(page, f"migrate-runs-{viewport}", full_page=True)
    assert not RunEvent.objects.filter(name="orchestration.run.migrated").exists()
    preview.get_by_role("button", name="Migrate 5 runs").click()
    expect(page.get_by_role("status")).to_have_text("5 runs moved from v1 to v2; 1 left as they were.")
    assert Run.objects.filter(version__number=2).count() == 5
    assert RunEvent.objects.filter(name="orchestration.run.migrated").count() == 5
