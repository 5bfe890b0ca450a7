"""The builder's pages, details the browser test (tests/browser/test_builder.py) ran into: every
id once on a page (a label names one input), a choice field's choices kept one a line, a step's
outputs labelled the way the document reads them, a step's fields marked with the kinds that use
them (the page hides the others) and the start's with the type, the record types offered, an
input's "required" shown, the diagram kept while a new step is filled in, a refused form kept as
typed and the others as they were, screens, fields and actions moved down as well as up, the
settings' "API name", a new decision's default the end, and an activation by someone who may not
see the monitoring pages ending on the draft's page."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from orchestration.builder import ops
from orchestration.builder.drafts import draft_new, draft_problems, draft_set_yaml
from orchestration.models import Draft
from tests.builder.test_pages import edit, url
from tests.factories import grant

pytestmark = pytest.mark.django_db

DOCS = """
kind: orchestration
api_name: onboarding
start: {type: autolaunched}
variables: [{name: pack, type: text}]
stages:
- key: prepare
  steps:
  - {key: welcome, kind: background, flow: welcome_pack}
- key: wrap_up
  steps:
  - {key: paperwork, kind: interactive, flow: it_setup, assignee: {user: alice}}
---
kind: screen_flow
api_name: it_setup
screens:
- key: accounts
  label: Accounts
  help: What IT set up
  fields:
  - {name: laptop, type: choice, label: Laptop, choices: [Laptop, Desktop]}
---
kind: autolaunched_flow
api_name: welcome_pack
outputs: [{name: pack, type: text}]
actions: [{type: set_outputs, values: {pack: "'standard'"}}]
"""


@pytest.fixture
def bob(client: Any, personas: SimpleNamespace) -> Any:
    grant(personas.bob, "orchestration.change_orchestration", "orchestration.import_definitions")
    client.force_login(personas.bob)
    return personas.bob


@pytest.fixture
def draft(bob: Any) -> Draft:
    return draft_set_yaml(draft=draft_new(api_name="onboarding", actor=bob), text=DOCS, actor=bob)


@pytest.mark.parametrize(
    "el",
    [
        "settings",
        "start",
        "variables",
        "stage:prepare",
        "step:prepare/welcome",
        "flow:it_setup",
        "flow:welcome_pack",
        "screen:it_setup/accounts",
        "field:it_setup/accounts/laptop",
        "action:welcome_pack/0",
        "yaml",
    ],
)
def test_no_id_is_on_an_element_page_twice(client: Any, draft: Draft, el: str) -> None:
    # The screen's form and its "Add a field" form both have a label and a help: the second
    # form's labels named the first form's inputs.
    body = client.get(f"{url(draft)}?el={el}").content.decode()
    twice = [i for i, n in Counter(re.findall(r'\bid="([^"]+)"', body)).items() if n > 1]
    assert twice == []


def test_a_choice_fields_choices_stay_one_a_line(client: Any, draft: Draft) -> None:
    body = client.get(f"{url(draft)}?el=field:it_setup/accounts/laptop").content.decode()
    assert re.search(r'<textarea name="choices"[^>]*>\s*Laptop\nDesktop</textarea>', body)
    # Saved again as shown, it keeps both (an <input> showed "LaptopDesktop" and saved that).
    edit(
        client,
        draft,
        "field_save",
        flow_name="it_setup",
        screen_key="accounts",
        old_name="laptop",
        name="laptop",
        type="choice",
        label="Laptop",
        choices="Laptop\nDesktop",
    )
    draft.refresh_from_db()
    field = ops.screen(draft.documents, "it_setup", "accounts")["fields"][0]
    assert field["choices"] == ["Laptop", "Desktop"]


def test_a_steps_outputs_read_variable_then_flow_output(client: Any, draft: Draft) -> None:
    body = client.get(f"{url(draft)}?el=step:prepare/welcome").content.decode()
    assert "Outputs kept in variables (variable: flow output, one a line)" in body
    edit(
        client,
        draft,
        "step_save",
        stage_key="prepare",
        key="welcome",
        new_key="welcome",
        kind="background",
        flow="welcome_pack",
        outputs="pack: pack",
    )
    draft.refresh_from_db()
    assert ops.step(draft.documents, "prepare", "welcome")["outputs"] == {"pack": "pack"}
    assert draft_problems(draft.documents) == []


def test_a_steps_fields_say_which_kinds_use_them(client: Any, draft: Draft) -> None:
    body = client.get(f"{url(draft)}?el=step:prepare/welcome").content.decode()

    def kinds(name: str) -> str | None:
        wrapper = r'<div class="col-12[^"]*"(?: data-kinds="([^"]*)")?>\s*'
        m = re.search(rf'{wrapper}<div[^>]*data-field="{name}"', body)
        assert m, name
        return m.group(1)

    assert kinds("wait_for") == "wait" and kinds("assignee") == "interactive"
    assert kinds("flow") == "interactive background" and kinds("max_attempts") == "background"
    assert kinds("label") is None and kinds("after") is None  # every kind's


def test_the_starts_record_fields_say_so_and_its_inputs_say_required(client: Any, draft: Draft) -> None:
    body = client.get(f"{url(draft)}?el=start").content.decode()
    for name in ("on", "condition", "run"):
        assert re.search(rf'data-kinds="record">\s*<div[^>]*data-field="{name}"', body), name
    assert not re.search(r'data-kinds="[^"]*">\s*<div[^>]*data-field="record_type"', body)
    # The record type is typed with the record types offered, as the list page's select does.
    assert re.search(r'<input[^>]*name="record_type"[^>]*list="record-types"', body)
    assert '<datalist id="record-types"><option value="case"></option></datalist>' in body
    for name, required in (("who", ""), ("why", "on")):
        fields: dict[str, Any] = {"input-where": "inputs", "input-name": name, "input-type": "text"}
        if required:
            fields["input-required"] = required
        edit(client, draft, "variable_save", **fields)
    body = client.get(f"{url(draft)}?el=start").content.decode()
    assert '<code>who</code> <span class="text-body-secondary">text</span>' in body
    assert '<code>why</code> <span class="text-body-secondary">text, required</span>' in body


def test_screens_fields_and_actions_move_down_too(client: Any, draft: Draft) -> None:
    draft = draft_set_yaml(
        draft=draft,
        text=DOCS.replace(
            "actions: [{type: set_outputs, values: {pack: \"'standard'\"}}]",
            "actions: [{type: set_outputs, values: {pack: \"'standard'\"}}, {type: call, name: tidy}]",
        ),
        actor=draft.created_by,
    )
    flow = client.get(f"{url(draft)}?el=flow:welcome_pack").content.decode()
    assert 'aria-label="Move action 1 down"' in flow and 'aria-label="Move action 2 down" disabled' in flow
    edit(client, draft, "action_move", flow_name="welcome_pack", index="0", dir="down")
    edit(client, draft, "screen_add", flow_name="it_setup", new_key="desk")
    screens = client.get(f"{url(draft)}?el=flow:it_setup").content.decode()
    assert re.search(r'id="screen-down-accounts"[^>]*">', screens)
    assert re.search(r'id="screen-down-desk"[^>]*disabled>', screens)
    edit(client, draft, "screen_move", flow_name="it_setup", key="accounts", dir="down")
    edit(client, draft, "field_save", flow_name="it_setup", screen_key="accounts", name="bag", type="text")
    fields = client.get(f"{url(draft)}?el=screen:it_setup/accounts").content.decode()
    assert re.search(r'id="field-down-laptop"[^>]*">', fields)
    assert re.search(r'id="field-down-bag"[^>]*disabled>', fields)
    edit(client, draft, "field_move", flow_name="it_setup", screen_key="accounts", name="laptop", dir="down")
    draft.refresh_from_db()
    flows = draft.documents["flows"]
    assert [a["type"] for a in flows["welcome_pack"]["actions"]] == ["call", "set_outputs"]
    assert [s["key"] for s in flows["it_setup"]["screens"]] == ["desk", "accounts"]
    assert [f["name"] for f in ops.screen(draft.documents, "it_setup", "accounts")["fields"]] == [
        "bag",
        "laptop",
    ]
    assert "API name" in client.get(url(draft)).content.decode()  # not "Api name"


def test_the_diagram_stays_while_a_new_step_is_filled_in(client: Any, draft: Draft) -> None:
    edit(client, draft, "step_add", stage_key="wrap_up", key="hr_call", kind="interactive")
    edit(client, draft, "step_add", stage_key="wrap_up", key="badge", kind="background")
    body = client.get(f"{url(draft)}?el=step:wrap_up/hr_call").content.decode()
    # The problem, still, on the field to fill in.
    assert re.search(
        r'data-problem="flow"><span aria-hidden="true">⚠</span> interactive step &#x27;hr_call', body
    )
    assert 'id="no-diagram"' not in body and "run-graph-svg" in body
    graph = body[body.index("run-graph-svg") : body.index("</svg>")]
    assert "hr_call" in graph and "badge" in graph and "draft_stand_in" not in body
    edit(
        client,
        draft,
        "step_save",
        stage_key="wrap_up",
        key="hr_call",
        new_key="hr_call",
        kind="interactive",
        flow="it_setup",
    )
    body = client.get(f"{url(draft)}?el=step:wrap_up/hr_call").content.decode()
    assert re.search(r'data-problem="assignee_kind"><span aria-hidden="true">⚠</span> interactive', body)
    # A stage the model refuses has no stand-in: the page says why there is no diagram.
    edit(
        client,
        draft,
        "stage_save",
        key="wrap_up",
        new_key="wrap_up",
        exit_condition="true",
        exit_after="paperwork",
    )
    assert 'id="no-diagram"' in client.get(url(draft)).content.decode()


def test_a_refused_form_keeps_what_was_typed_and_leaves_the_other_forms_alone(
    client: Any, draft: Draft
) -> None:
    # A decision without an outcome: the route form as typed, the stage's own form untouched.
    body = edit(
        client,
        draft,
        "stage_route",
        key="prepare",
        next="decision",
        label_0="Remote",
        default="wrap_up",
        el="stage:prepare",
    ).content.decode()
    assert "a decision needs at least one outcome" in body and "This field is required." not in body
    assert re.search(r'<input type="text" name="new_key" value="prepare"', body)
    assert re.search(r'<input type="text" name="label_0" value="Remote"', body)
    assert re.search(r'<select name="default".*?<option value="wrap_up" selected>', body, re.S)
    # Outputs that do not parse: shown again with the line's error, the flow's label as it is.
    body = edit(
        client, draft, "flow_outputs", flow_name="welcome_pack", outputs="pack text", el="flow:welcome_pack"
    ).content.decode()
    assert "line 1: write name: value" in body and "pack text</textarea>" in body
    assert "This field is required." not in body
    # A field without a name: the Add a field form as typed, the screen's key still there.
    body = edit(
        client,
        draft,
        "field_save",
        flow_name="it_setup",
        screen_key="accounts",
        label="Badge number",
        type="text",
        el="screen:it_setup/accounts",
    ).content.decode()
    assert re.search(r'<input type="text" name="new_key" value="accounts"', body)
    assert re.search(r'name="label" value="Badge number"[^>]*id="new-field-label"', body)
    assert body.count("This field is required.") == 1  # the new field's name


def test_a_new_decision_goes_to_the_end_otherwise(client: Any, draft: Draft) -> None:
    body = client.get(f"{url(draft)}?el=stage:prepare").content.decode()
    default = re.search(r'<select name="default".*?</select>', body, re.S)
    assert default and '<option value="end" selected>the end</option>' in default.group(0)


def test_activating_without_the_monitoring_pages_ends_on_the_draft(
    client: Any, bob: Any, draft: Draft
) -> None:
    response = client.post(url(draft, "activate"), {"revision": draft.revision})
    assert response.status_code == 302 and response["Location"] == url(draft)
    assert "this draft is closed" in client.get(response["Location"]).content.decode()
    grant(bob, "orchestration.view_orchestration")
    again = draft_new(api_name="offboarding", actor=bob)
    response = client.post(url(again, "activate"), {"revision": 1})
    assert response["Location"] == "/monitor/orchestrations/offboarding/v1/"
