"""A test run of a draft in chromium: the admin starts it on a record, sees what the background
step did and the decision, completes alice's step as alice in the embedded form (htmx), sees the
run completed; the banner says nothing is saved, and nothing was. Takes docs/screenshots/
builder-sandbox.png."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.core import mail
from playwright.sync_api import Page, expect

from orchestration.models import Run
from records.models import Record
from tests.browser.conftest import login, screenshot
from tests.builder.test_sandbox import make_draft, table_counts
from tests.factories import make_case

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.builder.sandbox_urlconf"),
]


def test_the_admin_steps_through_a_draft_and_nothing_is_kept(
    page: Page, live_server: Any, personas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a test run called out")

    monkeypatch.setattr(requests, "request", refuse)
    record = make_case("Leaky roof", severity="High")
    draft = make_draft(personas.admin)
    before = table_counts()
    page.set_viewport_size({"width": 1280, "height": 1000})
    login(page, live_server, "admin")
    page.goto(f"{live_server.url}/builder/{draft.pk}/try/")
    banner = page.locator("#sandbox-banner")
    expect(banner).to_contain_text("Test run — nothing is saved")
    page.get_by_label("An existing record").check()
    page.get_by_label("Record", exact=True).select_option(label="Leaky roof")
    page.get_by_role("button", name="Start the test run").click()

    expect(page.locator("#sandbox-status")).to_contain_text("in progress")
    timeline = page.locator("#sandbox-timeline")
    expect(timeline).to_contain_text("Started on Leaky roof")
    expect(timeline).to_contain_text("intake: High risk → review")
    expect(timeline).to_contain_text("would call POST https://hooks.example.com/cases")
    step = page.locator("#sandbox-step-review-approve")
    expect(step.get_by_label("Complete as")).to_have_value("alice")
    step.get_by_role("button", name="Complete this step").click()
    expect(step.get_by_text("This field is required.")).to_be_visible()  # the comment is required
    step.get_by_label("Approved").check()
    step.get_by_label("Comment").fill("Fine by me")
    step.get_by_role("button", name="Complete this step").click()

    expect(page.locator("#sandbox-status")).to_contain_text("completed")
    expect(timeline).to_contain_text("alice completed approve")
    expect(page.locator("#sandbox-record")).to_contain_text("closed")
    expect(banner).to_be_visible()
    screenshot(page, "builder-sandbox", full_page=True)

    assert table_counts() == before
    assert mail.outbox == []
    assert not Run.objects.exists()
    assert Record.objects.get(pk=record.pk).data.get("status") in (None, "")
