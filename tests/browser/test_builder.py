"""The builder (/builder/) in chromium, through its pages only: employee onboarding built from
nothing (flows, screens and fields, stages with parallel steps, a background step, a decision),
activated, and launched by a new record; stages added and reordered from the keyboard alone;
every element's page on a phone; a stage dragged into place. Takes docs/screenshots/
builder-desktop.png, builder-phone.png and builder-yaml.png."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from playwright.sync_api import Locator, Page, expect

from orchestration.builder import ops
from orchestration.builder.drafts import draft_new, draft_set_yaml
from orchestration.models import Draft, Run, StageStatus
from records.models import Record
from records.services import record_type_upsert
from tests.browser.conftest import login, screenshot
from tests.factories import RECORD_PERMS, UserFactory, grant
from tests.test_authorization_matrix import ADMIN_PERMS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DUPLICATE_IDS = """() => {
  const seen = new Set(), twice = [];
  for (const el of document.querySelectorAll("[id]")) {
    if (seen.has(el.id)) twice.push(el.id);
    seen.add(el.id);
  }
  return twice;
}"""


def changed(page: Page, act: Callable[[], None]) -> None:
    """Do `act`, wait for htmx to swap the builder region in again, and check the page it left:
    no error from the server, no id on it twice (a label would name another form's input)."""
    page.evaluate("document.getElementById('builder').dataset.stale = '1'")
    act()
    page.wait_for_function("() => { const b = document.getElementById('builder'); return !b.dataset.stale; }")
    error = page.locator("#builder-error")
    assert not error.count(), error.inner_text()
    assert page.evaluate(DUPLICATE_IDS) == []


def choose(page: Page, where: str, name: str) -> None:
    """Open an element from the outline or a list on the element's page."""
    changed(page, lambda: page.locator(where).get_by_role("link", name=name, exact=True).click())


def save(page: Page) -> None:
    changed(page, lambda: page.locator("#save-element").click())


def add_flow(page: Page, kind: str, name: str) -> None:
    page.locator("#new-flow-kind").select_option(kind)
    page.locator("#new-flow-name").fill(name)
    changed(page, lambda: page.locator("#add-flow").get_by_role("button", name="Add flow").click())


def add_step(page: Page, key: str, kind: str) -> Locator:
    """On a stage's page: add a step; returns the new step's form."""
    form = page.locator("#add-step")
    form.get_by_label("New step key").fill(key)
    form.get_by_label("Kind").select_option(kind)
    changed(page, lambda: form.get_by_role("button", name="Add step").click())
    expect(page.locator("#h-element")).to_contain_text(f"Step {key}")
    expect(page.locator(".run-graph-svg")).to_contain_text(key)  # drawn before it has a flow
    return page.locator("#element-form")


def assign(form: Locator, flow: str, group: str) -> None:
    form.get_by_label("Flow", exact=True).fill(flow)
    form.get_by_label("Assigned to").select_option("group")
    form.get_by_label("Who").fill(group)


def outline(page: Page) -> list[str]:
    return page.locator("#stage-list > li").evaluate_all("items => items.map(li => li.dataset.key)")


def stage_keys(draft: Draft) -> list[str]:
    draft.refresh_from_db()
    return [str(s["key"]) for s in ops.stages(draft.documents)]


def onboarding_admin() -> Any:
    """hana, in the demo's "Orchestration Admins" (the monitoring and the builder), who may also
    create records."""
    admins, _ = Group.objects.get_or_create(name="Orchestration Admins")
    for perm in (*ADMIN_PERMS, "orchestration.change_orchestration"):
        app_label, codename = perm.split(".")
        admins.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    hana: Any = UserFactory(username="hana")
    hana.groups.add(admins)
    return grant(hana, *RECORD_PERMS)


def test_employee_onboarding_is_built_from_nothing_activated_and_started_by_a_new_hire(
    page: Page, live_server: Any, personas: Any
) -> None:
    record_type_upsert(
        api_name="new_hire",
        label="New hire",
        fields=[{"name": "remote", "type": "boolean"}, {"name": "start_date", "type": "date"}],
    )
    for team in ("IT", "Facilities", "HR"):
        Group.objects.get_or_create(name=team)
    onboarding_admin()
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, "hana")
    page.get_by_role("link", name="Builder").click()
    page.get_by_label("API name").fill("employee_onboarding")
    page.get_by_label("Label").fill("Employee onboarding")
    page.get_by_label("Starts when a record is created").select_option("new_hire")
    page.get_by_role("button", name="Create draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Employee onboarding")
    expect(page.locator("#problem-count")).to_contain_text("No problems")
    choose(page, ".builder-outline", "Start")
    start = page.locator("#element-form")
    expect(start.get_by_label("Record type")).to_have_value("new_hire")
    start.get_by_label("Type", exact=True).select_option("autolaunched")
    expect(start.get_by_label("On", exact=True)).to_be_hidden()  # a record-triggered start's
    start.get_by_label("Type", exact=True).select_option("record")
    expect(start.get_by_label("On", exact=True)).to_have_value("create")

    # IT's screen flow: two screens, the first one's field renamed, the second's added.
    add_flow(page, "screen_flow", "it_setup")
    page.locator("#new-screen-key").fill("accounts")
    changed(page, lambda: page.locator("#add-screen").get_by_role("button", name="Add screen").click())
    expect(page.locator("#screen-list > li")).to_have_count(2)
    choose(page, "#screen-list", "accounts")
    new_field = page.locator("#add-field")
    new_field.get_by_label("Name").fill("email_address")
    new_field.get_by_label("Label").fill("Email address")
    new_field.get_by_label("Required").check()
    changed(page, lambda: new_field.get_by_role("button", name="Add field").click())
    choose(page, "#flow-list", "accounts")
    new_field.get_by_label("Name").fill("laptop")
    new_field.get_by_label("Type").select_option("choice")
    new_field.get_by_label("Choices").fill("Laptop\nDesktop")
    changed(page, lambda: new_field.get_by_role("button", name="Add field").click())
    expect(page.locator("#element-form").get_by_label("Choices")).to_have_value("Laptop\nDesktop")
    choose(page, "#flow-list", "accounts")
    changed(page, lambda: page.get_by_role("button", name="Remove field field_1").click())
    choose(page, "#flow-list", "screen_1")
    choose(page, "#field-list", "Done")
    field = page.locator("#element-form")
    field.get_by_label("Name").fill("accounts_created")
    field.get_by_label("Label").fill("Accounts created")
    field.get_by_label("Required").check()
    save(page)
    # A checklist screen flow as it comes, and the welcome pack's autolaunched flow.
    add_flow(page, "screen_flow", "checklist")
    add_flow(page, "autolaunched_flow", "welcome_pack")
    page.locator("#outputs-form").get_by_label("Outputs (name: type, one a line)").fill("pack: text")
    changed(page, lambda: page.locator("#outputs-form").get_by_role("button", name="Save outputs").click())
    choose(page, "#action-list", "set_outputs")
    expect(page.locator("#element-form").get_by_label("Type")).to_have_value("set_outputs")
    page.locator("#element-form").get_by_label("Values (name: expression, one a line)").fill(
        "pack: 'standard'"
    )
    save(page)

    # Stage 1 becomes Prepare: its placeholder wait becomes IT's step, Facilities' beside it.
    choose(page, "#stage-list", "1. Stage 1")
    stage_form = page.locator("#element-form")
    stage_form.get_by_label("Key").fill("prepare")
    stage_form.get_by_label("Label").fill("Prepare")
    save(page)
    choose(page, "#stage-list", "step_1")
    step = page.locator("#element-form")
    expect(step.get_by_label("Wait for")).to_be_visible()
    step.get_by_label("Key").fill("it_accounts")
    step.get_by_label("Label").fill("IT accounts")
    step.get_by_label("Kind").select_option("interactive")
    expect(step.get_by_label("Wait for")).to_be_hidden()  # the form shows the kind's fields
    assign(step, "it_setup", "IT")
    save(page)
    choose(page, "#stage-list", "1. Prepare")
    step = add_step(page, "desk", "interactive")
    step.get_by_label("Label").fill("Set up the desk")
    assign(step, "checklist", "Facilities")
    save(page)

    # Two more stages, their placeholders replaced.
    for key in ("first_week", "wrap_up"):
        page.locator("#new-stage-key").fill(key)
        changed(page, lambda: page.locator("#add-stage").get_by_role("button", name="Add stage").click())
    assert outline(page) == ["prepare", "first_week", "wrap_up"]
    choose(page, "#stage-list", "2. First week")
    step = add_step(page, "buddy", "interactive")
    step.get_by_label("Label").fill("Assign a buddy")
    assign(step, "checklist", "managers")
    save(page)
    choose(page, "#stage-list", "first_week_step_1")
    changed(page, lambda: page.get_by_role("button", name="Remove step first_week_step_1").click())
    choose(page, "#stage-list", "3. Wrap up")
    step = add_step(page, "paperwork", "interactive")
    step.get_by_label("Label").fill("Confirm the paperwork")
    assign(step, "checklist", "HR")
    save(page)
    choose(page, "#stage-list", "wrap_up_step_1")
    changed(page, lambda: page.get_by_role("button", name="Remove step wrap_up_step_1").click())

    # After Prepare, a decision: remote hires skip the first week at the office.
    choose(page, "#stage-list", "1. Prepare")
    route = page.locator("#route-form")
    expect(route.get_by_label("Otherwise go to")).to_have_value("end")
    route.get_by_label("Then").select_option("decision")
    route.get_by_label("Outcome 1").fill("Remote")
    route.get_by_label("When").first.fill("record.remote")
    route.get_by_label("Go to").first.select_option("wrap_up")
    route.get_by_label("Otherwise go to").select_option("first_week")
    changed(page, lambda: route.get_by_role("button", name="Save the route").click())
    expect(page.locator(".run-graph-svg")).to_contain_text("Remote")

    # The welcome pack in the background, kept in a variable not declared yet: a problem, on
    # the field, counted in the outline and at the top; Activate waits.
    choose(page, "#stage-list", "2. First week")
    step = add_step(page, "welcome", "background")
    step.get_by_label("Flow", exact=True).fill("welcome_pack")
    step.get_by_label("Outputs kept in variables (variable: flow output, one a line)").fill("pack: pack")
    save(page)
    expect(page.locator('[data-problem="outputs"]')).to_contain_text(
        "'pack' is not a declared orchestration variable"
    )
    expect(page.locator("#problem-count")).to_contain_text("1 problem")
    expect(page.locator("#activate")).to_be_disabled()
    screenshot(page, "builder-desktop", full_page=True)
    choose(page, ".builder-outline", "Variables (0)")
    variable = page.locator("#add-variable")
    variable.get_by_label("Name").fill("pack")
    variable.get_by_label("Description").fill("The welcome pack the new hire gets")
    changed(page, lambda: variable.get_by_role("button", name="Save variable").click())
    expect(page.locator("#problem-count")).to_contain_text("No problems")
    assert outline(page) == ["prepare", "first_week", "wrap_up"]

    page.locator("#activate").click()
    page.wait_for_url(f"{live_server.url}/monitor/orchestrations/employee_onboarding/v1/")

    # A new hire is created on the records pages: the orchestration starts on it.
    page.goto(f"{live_server.url}/records/new_hire/new/")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New hire: Ada Lovelace")

    record = Record.objects.get(name="Ada Lovelace")
    run = Run.objects.get(record_id=record.pk)
    assert (run.orchestration.api_name, run.version.number) == ("employee_onboarding", 1)
    assert run.current_stage == "prepare"
    assert list(run.stage_runs.values_list("key", "status")) == [("prepare", StageStatus.IN_PROGRESS)]
    items = run.work_items.order_by("label").values_list("label", "assignee_group__name")
    assert list(items) == [("IT accounts", "IT"), ("Set up the desk", "Facilities")]


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement ? document.activeElement.id : ''"))


def tab_to(page: Page, element_id: str, key: str = "Tab", limit: int = 80) -> None:
    """Press Tab (or Shift+Tab) until the control `element_id` has the focus."""
    for _ in range(limit):
        if focused(page) == element_id:
            return
        page.keyboard.press(key)
    raise AssertionError(f"{key} never reached #{element_id} (the focus is on #{focused(page)})")


def test_stages_are_added_and_reordered_with_the_keyboard_alone(
    page: Page, live_server: Any, personas: Any
) -> None:
    grant(personas.bob, "orchestration.change_orchestration")
    draft = draft_new(api_name="onboarding", actor=personas.bob)
    login(page, live_server, "bob")
    page.goto(f"{live_server.url}/builder/{draft.pk}/")
    stages = page.locator("#stage-list > li")

    tab_to(page, "new-stage-key")
    page.keyboard.type("it")
    page.keyboard.press("Enter")
    expect(page.locator("#stage-item-it")).to_be_visible()
    assert focused(page) == "new-stage-key"  # typing the next one goes on from there
    expect(page.locator("#new-stage-key")).to_have_value("")
    page.keyboard.type("facilities")
    page.keyboard.press("Enter")
    expect(page.locator("#stage-item-facilities")).to_be_visible()
    assert outline(page) == ["stage_1", "it", "facilities"]

    tab_to(page, "stage-up-facilities", "Shift+Tab")
    page.keyboard.press("Enter")
    expect(stages.nth(1)).to_have_attribute("data-key", "facilities")
    assert focused(page) == "stage-up-facilities"  # still on the button, in its new place
    page.keyboard.press("Space")
    expect(stages.first).to_have_attribute("data-key", "facilities")
    # At the top its "up" button is disabled: the focus is on its "down" one, next to it.
    assert focused(page) == "stage-down-facilities"
    page.keyboard.press("Enter")
    expect(stages.nth(1)).to_have_attribute("data-key", "facilities")
    assert focused(page) == "stage-down-facilities"
    assert outline(page) == ["stage_1", "facilities", "it"]
    assert stage_keys(draft) == ["stage_1", "facilities", "it"]

    # Undo from the keyboard, as far as it goes: then the focus is on Redo, beside it.
    tab_to(page, "undo", "Shift+Tab")
    for revision in (5, 4, 3, 2, 1):
        page.keyboard.press("Enter")
        expect(page.locator("#builder")).to_have_attribute("data-revision", str(revision))
    expect(page.locator("#undo")).to_be_disabled()
    assert focused(page) == "redo" and outline(page) == ["stage_1"]
    for revision in (2, 3, 4, 5, 6):
        page.keyboard.press("Enter")
        expect(page.locator("#builder")).to_have_attribute("data-revision", str(revision))
    assert focused(page) == "undo"  # nothing left to redo
    assert outline(page) == ["stage_1", "facilities", "it"]

    # Opening a stage from the outline puts the focus on the stage's form, not the page's top.
    tab_to(page, "stage-up-facilities", "Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.locator(":focus")).to_have_text("2. Facilities")
    page.keyboard.press("Enter")
    expect(page.locator("#h-element")).to_be_focused()
    expect(page.locator("#h-element")).to_have_text("Stage facilities")


ONBOARDING = """
kind: orchestration
api_name: employee_onboarding
label: Employee onboarding
start: {type: record, record_type: case, on: create}
variables: [{name: pack, type: text}]
stages:
- key: prepare
  label: Prepare
  next:
    outcomes: [{label: Urgent, when: "record.severity == 'High'", goto: wrap_up}]
    default: first_week
  steps:
  - {key: it_accounts, label: IT accounts, kind: interactive, flow: it_setup, assignee: {group: IT}}
  - {key: desk, label: Set up the desk, kind: interactive, flow: checklist, assignee: {group: support}}
- key: first_week
  label: First week
  steps:
  - {key: welcome, kind: background, flow: welcome_pack, outputs: {pack: pack}}
  - {key: buddy, label: Assign a buddy, kind: interactive, flow: checklist, assignee: {group: managers}}
- key: wrap_up
  label: Wrap up
  steps:
  - key: paperwork
    label: Confirm the paperwork
    kind: interactive
    flow: checklist
    assignee: {user: charlie}
---
kind: screen_flow
api_name: it_setup
screens:
- key: screen_1
  fields: [{name: accounts_created, type: boolean, label: Accounts created, required: true}]
- key: accounts
  fields:
  - {name: email_address, type: text, label: Email address, required: true}
  - {name: laptop, type: choice, choices: [Laptop, Desktop]}
---
kind: screen_flow
api_name: checklist
screens:
- key: screen_1
  fields: [{name: done, type: boolean, label: Done}]
---
kind: autolaunched_flow
api_name: welcome_pack
outputs: [{name: pack, type: text}]
actions: [{type: set_outputs, values: {pack: "'standard'"}}]
"""

ELEMENTS = [
    "settings",
    "start",
    "variables",
    "stage:prepare",
    "step:prepare/it_accounts",
    "step:first_week/welcome",
    "flow:it_setup",
    "flow:welcome_pack",
    "screen:it_setup/accounts",
    "field:it_setup/accounts/laptop",
    "action:welcome_pack/0",
    "yaml",
]


def onboarding_draft(actor: Any) -> Draft:
    """The onboarding of the first test, from its YAML (group IT does not exist: one problem)."""
    return draft_set_yaml(
        draft=draft_new(api_name="employee_onboarding", actor=actor), text=ONBOARDING, actor=actor
    )


def test_every_element_fits_a_phone(page: Page, live_server: Any, personas: Any) -> None:
    grant(personas.bob, "orchestration.change_orchestration")
    draft = onboarding_draft(personas.bob)
    login(page, live_server, "bob")
    page.set_viewport_size({"width": 375, "height": 740})
    for el in ELEMENTS:
        page.goto(f"{live_server.url}/builder/{draft.pk}/?el={el}")
        expect(page.locator("#h-element")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{el} is {width}px wide"
    page.goto(f"{live_server.url}/builder/{draft.pk}/?el=step:prepare/it_accounts")
    expect(page.locator("#problem-count")).to_contain_text("1 problem")
    screenshot(page, "builder-phone", full_page=True)

    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="YAML").click()
    expect(page.locator("#yaml-text")).to_contain_text("api_name: employee_onboarding")
    page.evaluate("window.scrollTo(0, 0)")  # htmx scrolled the swapped region to the top
    screenshot(page, "builder-yaml")


def test_a_stage_is_dragged_into_place(page: Page, live_server: Any, personas: Any) -> None:
    grant(personas.bob, "orchestration.change_orchestration")
    draft = onboarding_draft(personas.bob)
    login(page, live_server, "bob")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/builder/{draft.pk}/")
    assert outline(page) == ["prepare", "first_week", "wrap_up"]

    # Dropped on a stage, the dragged one takes its place (the others move down).
    changed(page, lambda: page.locator("#stage-item-wrap_up").drag_to(page.locator("#stage-item-first_week")))
    assert outline(page) == ["prepare", "wrap_up", "first_week"]
    expect(page.locator("#stage-item-wrap_up")).to_contain_text("2. Wrap up")
    changed(page, lambda: page.locator("#stage-item-prepare").drag_to(page.locator("#stage-item-first_week")))
    assert outline(page) == ["wrap_up", "first_week", "prepare"]
    assert stage_keys(draft) == ["wrap_up", "first_week", "prepare"]
