"""The builder's pages (orchestration/builder/views.py): creating drafts, every element's form,
edits through plain POSTs and through htmx, problems shown on the element and the field, the
YAML view both ways, undo, activation, who may use them, and the page's query count."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.builder import ops
from orchestration.builder.drafts import draft_edit, draft_new
from orchestration.models import Draft, Orchestration, OrchestrationVersion
from tests.factories import auto_flow, grant, load, orchestration, screen_flow
from tests.orchestration.engine_support import bg, stage, task

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def bob(client: Any, personas: SimpleNamespace) -> Any:
    grant(personas.bob, "orchestration.change_orchestration", "orchestration.import_definitions")
    client.force_login(personas.bob)
    return personas.bob


def url(draft: Draft, what: str = "") -> str:
    return f"/builder/{draft.pk}/{what + '/' if what else ''}"


def edit(client: Any, draft: Draft, op: str, htmx: bool = False, **fields: Any) -> Any:
    draft.refresh_from_db()
    data = {"op": op, "revision": draft.revision, **fields}
    return client.post(url(draft, "edit"), data, **(HX if htmx else {}))


def test_the_list_creates_drafts_three_ways(client: Any, bob: Any) -> None:
    load(
        screen_flow("review"), auto_flow("calc"), orchestration(stages=[stage("intake", bg("calc", "calc"))])
    )
    page = client.get("/builder/").content.decode()
    assert "New orchestration" in page and "Edit v1 as a draft" in page and "Clone" in page
    response = client.post("/builder/new/", {"api_name": "onboarding", "label": "Onboarding"})
    draft = Draft.objects.get(api_name="onboarding")
    assert response.status_code == 302 and response["Location"] == f"/builder/{draft.pk}/"
    v1 = OrchestrationVersion.objects.get(orchestration__api_name="proc")
    client.post("/builder/new/", {"from_version": v1.pk})
    client.post("/builder/new/", {"clone": "proc", "api_name": "proc_two"})
    assert sorted(Draft.objects.values_list("api_name", flat=True)) == ["onboarding", "proc", "proc_two"]
    bad = client.post("/builder/new/", {"api_name": "Bad Name"}, follow=True).content.decode()
    assert "lower_snake_case" in bad and Draft.objects.count() == 3


def test_every_element_has_its_form(client: Any, bob: Any) -> None:
    draft = draft_new(api_name="onboarding", record_type="", actor=bob)
    docs = draft.documents
    docs["flows"] = {
        "welcome": {
            "kind": "screen_flow",
            "api_name": "welcome",
            "screens": [{"key": "s1", "fields": [{"name": "ok", "type": "boolean"}]}],
        },
        "calc": {
            "kind": "autolaunched_flow",
            "api_name": "calc",
            "actions": [{"type": "set_outputs", "values": {"x": "1"}}],
            "outputs": [{"name": "x", "type": "number"}],
        },
    }
    Draft.objects.filter(pk=draft.pk).update(documents=docs)
    for el, expect in [
        ("settings", 'name="api_name"'),
        ("start", 'name="record_type"'),
        ("variables", 'id="add-variable"'),
        ("stage:stage_1", 'id="route-form"'),
        ("step:stage_1/step_1", 'name="wait_for"'),
        ("flow:welcome", 'id="add-screen"'),
        ("flow:calc", 'id="add-action"'),
        ("screen:welcome/s1", 'id="add-field"'),
        ("field:welcome/s1/ok", 'name="choices"'),
        ("action:calc/0", 'name="values"'),
        ("yaml", 'id="yaml-text"'),
    ]:
        body = client.get(f"{url(draft)}?el={el}").content.decode()
        assert expect in body, el
    assert "no stage &#x27;ghost&#x27;" in client.get(f"{url(draft)}?el=stage:ghost").content.decode()


def test_edits_plain_and_with_htmx(client: Any, bob: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=bob)
    response = edit(client, draft, "stage_add", new_key="it")
    assert response.status_code == 302 and response["Location"].endswith("?el=stage%3Ait")
    response = edit(client, draft, "stage_move", htmx=True, key="it", dir="up")
    assert response.status_code == 200 and response["HX-Push-Url"].endswith("?el=stage%3Ait")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="builder"') and "<html" not in body  # the region alone
    draft.refresh_from_db()
    assert [s["key"] for s in draft.documents["orchestration"]["stages"]] == ["it", "stage_1"]
    edit(client, draft, "step_add", stage_key="it", key="laptop", kind="background")
    response = edit(
        client,
        draft,
        "step_save",
        stage_key="it",
        key="laptop",
        new_key="laptop",
        kind="interactive",
        flow="ghost_form",
        assignee_kind="group",
        assignee="IT",
        due="2 business days",
        email_enabled="on",
    )
    draft.refresh_from_db()
    laptop = ops.step(draft.documents, "it", "laptop")
    assert laptop == {
        "key": "laptop",
        "kind": "interactive",
        "flow": "ghost_form",
        "assignee": {"group": "IT"},
        "sla": {"due": "2 business days"},
    }
    # Its problems, on the fields they concern, with the validator's words.
    page = client.get(f"{url(draft)}?el=step:it/laptop").content.decode()
    assert 'data-problem="flow"' in page and "unknown flow &#x27;ghost_form&#x27;" in page
    assert "problem" in page and 'id="activate" disabled' in page


def test_a_bad_form_or_a_stale_page_loses_nothing_and_says_why(client: Any, bob: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=bob)
    response = edit(
        client,
        draft,
        "step_save",
        stage_key="stage_1",
        key="step_1",
        new_key="",
        kind="wait",
        el="step:stage_1/step_1",
    )
    assert response.status_code == 200 and "Check the fields marked below." in response.content.decode()
    stale = client.post(url(draft, "edit"), {"op": "stage_add", "revision": 0, "new_key": "x"})
    assert "the draft changed since this page was shown" in stale.content.decode()
    draft.refresh_from_db()
    assert draft.revision == 1


def test_yaml_view_and_undo(client: Any, bob: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=bob)
    text = client.get(f"{url(draft)}?el=yaml").context["yaml"]
    client.post(url(draft, "yaml"), {"yaml": text.replace("Stage 1", "Paperwork"), "revision": 1})
    draft.refresh_from_db()
    assert draft.documents["orchestration"]["stages"][0]["label"] == "Paperwork"
    broken = client.post(url(draft, "yaml"), {"yaml": "kind: [", "revision": draft.revision})
    body = broken.content.decode()
    assert "cannot parse" in body and "kind: [" in body  # what was typed is still there
    client.post(url(draft, "undo"), {"revision": draft.revision})
    draft.refresh_from_db()
    assert draft.documents["orchestration"]["stages"][0]["label"] == "Stage 1" and draft.revision == 1
    download = client.get(url(draft, "download"))
    assert download["Content-Disposition"].startswith('attachment; filename="onboarding-draft-')
    assert download.content.decode().startswith("kind: orchestration\napi_name: onboarding\n")


def test_activation_from_the_page(client: Any, bob: Any) -> None:
    grant(bob, "orchestration.view_orchestration")  # to be shown the version page
    draft = draft_new(api_name="onboarding", actor=bob)
    response = client.post(url(draft, "activate"), {"revision": 1})
    assert response.status_code == 302 and response["Location"] == "/monitor/orchestrations/onboarding/v1/"
    assert Orchestration.objects.get(api_name="onboarding").versions.get().is_active
    closed = client.get(url(draft)).content.decode()
    assert "this draft is closed" in closed and 'id="activate" disabled' in closed


def test_who_may_use_it(client: Any, personas: SimpleNamespace) -> None:
    draft = draft_new(api_name="onboarding", actor=grant(personas.bob, "orchestration.change_orchestration"))
    assert client.get("/builder/").status_code == 302  # to the login page
    client.force_login(personas.alice)
    for path in ("/builder/", url(draft), url(draft, "download")):
        assert client.get(path).status_code == 403, path
    for path in (
        "/builder/new/",
        url(draft, "edit"),
        url(draft, "yaml"),
        url(draft, "undo"),
        url(draft, "activate"),
    ):
        assert client.post(path, {"op": "stage_add", "revision": 1}).status_code == 403, path
    draft.refresh_from_db()
    assert draft.revision == 1


def test_the_page_takes_the_same_queries_whatever_the_draft_holds(client: Any, bob: Any) -> None:
    load(
        screen_flow("review"),
        auto_flow("calc"),
        orchestration(
            stages=[
                stage("intake", bg("calc", "calc")),
                stage("review", task("check", assignee={"user": "alice"})),
            ]
        ),
    )
    small = draft_new(api_name="small", actor=bob)
    one = small.documents
    one["orchestration"]["stages"][0]["steps"] = [
        {"key": "check", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}}
    ]
    Draft.objects.filter(pk=small.pk).update(documents=one)
    big = draft_new(api_name="big", actor=bob)
    docs = big.documents
    docs["orchestration"]["stages"] = [
        {
            "key": f"s{i}",
            "steps": [
                *({"key": f"s{i}_w{j}", "kind": "wait", "wait": {"for": "1h"}} for j in range(4)),
                # A named assignee is looked up once per name, not once per step naming it.
                {
                    "key": f"s{i}_check",
                    "kind": "interactive",
                    "flow": "review",
                    "assignee": {"user": "alice"},
                },
            ],
        }
        for i in range(20)
    ]
    Draft.objects.filter(pk=big.pk).update(documents=docs)
    client.get(url(small))
    with CaptureQueriesContext(connection) as few:
        assert client.get(url(small)).status_code == 200
    with CaptureQueriesContext(connection) as many:
        assert client.get(url(big)).status_code == 200
    assert len(many) == len(few)
    assert len(few) <= 14


def test_activation_says_first_what_changes(client: Any, bob: Any) -> None:
    load(
        screen_flow("review"),
        auto_flow("calc"),
        orchestration(stages=[stage("intake", bg("calc", "calc"))]),
    )
    v1 = OrchestrationVersion.objects.get(orchestration__api_name="proc")
    client.post("/builder/new/", {"from_version": v1.pk})
    draft = Draft.objects.get(api_name="proc")
    edit(client, draft, "stage_add", new_key="wrap_up")
    page = client.get(url(draft, "activate/confirm")).content.decode()
    assert 'id="what-changes"' in page and "instead of version 1" in page
    assert 'data-path="stages[wrap_up]"' in page and "added" in page
    assert Orchestration.objects.get(api_name="proc").versions.count() == 1  # nothing done yet
    fresh = draft_new(api_name="brand_new", actor=bob)
    assert "is new: this creates its version 1" in client.get(url(fresh, "activate/confirm")).content.decode()
    draft_edit(
        draft=fresh,
        op="stage_save",
        params={"key": "stage_1", "new_key": "stage_1", "fault_path": "ghost"},
        actor=bob,
    )
    blocked = client.get(url(fresh, "activate/confirm")).content.decode()
    assert 'id="activate-problems"' in blocked and 'id="activate-now"' not in blocked


def test_an_interactive_step_completes_on_a_condition(client: Any, bob: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=bob)
    edit(client, draft, "flow_add", kind="screen_flow", api_name="form")
    edit(client, draft, "step_add", stage_key="stage_1", key="sign", kind="interactive")
    fields: dict[str, Any] = {"stage_key": "stage_1", "key": "sign", "new_key": "sign", "kind": "interactive"}
    fields.update(flow="form", assignee_kind="user", assignee="alice")
    edit(client, draft, "step_save", completion_condition="record.signed == true", **fields)
    draft.refresh_from_db()
    assert ops.step(draft.documents, "stage_1", "sign")["completion"] == {
        "condition": "record.signed == true"
    }
    page = client.get(f"{url(draft)}?el=step:stage_1/sign").content.decode()
    assert 'value="record.signed == true"' in page
    edit(client, draft, "step_save", completion_condition="1 +", **fields)
    shown = client.get(f"{url(draft)}?el=step:stage_1/sign").content.decode()
    assert 'data-problem="completion_condition"' in shown and "invalid expression" in shown
