"""Expression fields in the builder (chromium): the name being typed is completed wherever it is
in the expression, from the names the draft knows (variables, inputs, record fields, step
outputs), not only at the start of the field."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from orchestration.builder.drafts import draft_edit, draft_new
from tests.browser.conftest import login
from tests.factories import grant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPTIONS = "() => Array.from(document.querySelectorAll('#expr-names option')).map(o => o.value)"


def test_a_name_is_completed_in_the_middle_of_an_expression(
    page: Page, live_server: Any, personas: Any
) -> None:
    bob = grant(personas.bob, "orchestration.change_orchestration")
    draft = draft_new(api_name="onboarding", actor=bob)
    for name in ("total", "tier"):
        draft, _ = draft_edit(
            draft=draft, op="variable_save", params={"name": name, "type": "number"}, actor=bob
        )
    login(page, live_server, "bob")
    page.goto(f"{live_server.url}/builder/{draft.pk}/?el=stage:stage_1")
    field = page.locator("#id_exit_condition")
    assert sorted(page.evaluate(OPTIONS)) == ["vars.tier", "vars.total"]
    field.press_sequentially("vars.total > 3 and vars.t")
    assert sorted(page.evaluate(OPTIONS)) == ["vars.total > 3 and vars.tier", "vars.total > 3 and vars.total"]
    field.press_sequentially("o")
    assert page.evaluate(OPTIONS) == ["vars.total > 3 and vars.total"]
    field.press_sequentially("tal < 10")  # nothing left to complete: every name is offered again
    assert sorted(page.evaluate(OPTIONS)) == ["vars.tier", "vars.total"]
