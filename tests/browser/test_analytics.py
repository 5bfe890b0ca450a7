"""The Analytics page in chromium at 1280 and at 375 pixels: its charts are images with titles,
each with its table, and the page fits the phone's width."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from orchestration.rollup import refresh
from tests.browser.conftest import login, screenshot
from tests.factories import auto_flow, load, make_case, screen_flow
from tests.orchestration.test_analytics import proc, shape

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 900},
    "phone": {"width": 375, "height": 740},
}


@pytest.fixture
def world(personas: Any) -> None:
    """Six runs over the last five days: four completed, two waiting for alice."""
    from tests.orchestration.engine_support import launch

    load(screen_flow("review"), auto_flow("calc"), proc({"user": "alice"}))
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    for i in range(6):
        start = now - dt.timedelta(days=5 - i, hours=i)
        run = launch(record=make_case(f"Case {i}"))
        end = start + dt.timedelta(hours=3 + 2 * i) if i < 4 else None
        shape(
            run,
            start=start,
            calc_end=start + dt.timedelta(minutes=10 * (i + 1)),
            end=end,
            due=start + dt.timedelta(hours=4),
        )
    refresh()  # what beat does every minute


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_analytics_page_draws_its_charts_and_tables(
    page: Page, live_server: Any, world: None, viewport: str
) -> None:
    page.set_viewport_size(VIEWPORTS[viewport])
    login(page, live_server, "admin")
    page.goto(f"{live_server.url}/monitor/analytics/proc/")
    expect(page.get_by_role("heading", name="Analytics: proc")).to_be_visible()
    expect(page.locator("#analytics-as-of")).to_contain_text("Figures as of")
    charts = page.get_by_role("img")
    expect(charts).to_have_count(3)
    for name in (
        "Runs started and completed per day",
        "Median and p90 duration per step",
        "Time waiting for a person and working, per stage",
    ):
        expect(page.get_by_role("img", name=name)).to_be_visible()
    assert page.locator("svg[role=img] rect").count() > 10  # the bars are drawn
    expect(page.locator("#table-steps")).to_contain_text("calc")
    expect(page.locator("#table-breaches")).to_contain_text("check")
    expect(page.locator("#table-wip")).to_contain_text("alice")
    expect(page.locator("#table-bottlenecks tbody tr").first).to_contain_text("check")
    expect(page.get_by_role("link", name="Analytics")).to_have_attribute("aria-current", "page")
    # Nothing is wider than the screen (tables scroll in their own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[viewport]["width"]
    screenshot(page, f"analytics-{viewport}", full_page=True)
