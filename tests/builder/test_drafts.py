"""Drafts (orchestration/builder/drafts.py, ops.py): created from nothing, from a version and as a
clone; every edit a revision, undone and redone; YAML both ways; a stale edit refused; problems
on the element they concern (table-driven, the CLI's messages); activation through the importer
with its audit event; who may do it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from orchestration.builder import ops
from orchestration.builder.drafts import (
    BuilderError,
    DraftConflict,
    can_redo,
    draft_activate,
    draft_clone,
    draft_edit,
    draft_from_version,
    draft_new,
    draft_problems,
    draft_redo,
    draft_set_yaml,
    draft_undo,
    draft_yaml,
    parse_yaml,
)
from orchestration.models import DefinitionEvent, Draft, DraftRevision, Orchestration, OrchestrationVersion
from orchestration.validation import validate_documents
from tests.factories import auto_flow, grant, load, orchestration, screen_flow
from tests.orchestration.engine_support import bg, stage, task

pytestmark = pytest.mark.django_db


@pytest.fixture
def builder(personas: SimpleNamespace) -> Any:
    return grant(personas.bob, "orchestration.change_orchestration", "orchestration.import_definitions")


def test_a_new_draft_is_valid_and_every_edit_is_a_revision(builder: Any) -> None:
    draft = draft_new(api_name="onboarding", label="Onboarding", record_type="case", actor=builder)
    assert draft_problems(draft.documents) == []
    draft, summary = draft_edit(draft=draft, op="stage_add", params={"key": "it"}, actor=builder, revision=1)
    assert summary == "Added stage 'it'" and draft.revision == 2
    draft, _ = draft_edit(draft=draft, op="stage_move", params={"key": "it", "to": 0}, actor=builder)
    assert [s["key"] for s in draft.documents["orchestration"]["stages"]] == ["it", "stage_1"]
    assert list(DraftRevision.objects.filter(draft=draft).values_list("number", "summary")) == [
        (1, "Created"),
        (2, "Added stage 'it'"),
        (3, "Moved stage 'it' to position 1"),
    ]
    draft = draft_undo(draft=draft, actor=builder)
    assert [s["key"] for s in draft.documents["orchestration"]["stages"]] == ["stage_1", "it"]
    assert draft.revision == 2 and can_redo(draft)
    draft = draft_redo(draft=draft, actor=builder)
    assert draft.revision == 3 and not can_redo(draft)
    draft = draft_undo(draft=draft, actor=builder)
    draft, _ = draft_edit(draft=draft, op="stage_remove", params={"key": "it"}, actor=builder)
    assert not can_redo(draft)  # a new edit after an undo drops what could be redone
    assert DraftRevision.objects.filter(draft=draft).count() == 3
    with pytest.raises(BuilderError, match="nothing to redo"):
        draft_redo(draft=draft, actor=builder)


def test_a_stale_edit_is_refused_and_loses_nothing(builder: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=builder)
    draft_edit(draft=draft, op="stage_add", params={"key": "a"}, actor=builder, revision=1)
    with pytest.raises(DraftConflict, match="reload"):
        draft_edit(draft=draft, op="stage_add", params={"key": "b"}, actor=builder, revision=1)
    draft.refresh_from_db()
    assert [s["key"] for s in draft.documents["orchestration"]["stages"]] == ["stage_1", "a"]


def test_renaming_a_stage_or_step_rewrites_what_points_at_it(builder: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=builder)
    for params in ({"key": "a"}, {"key": "b"}):
        draft, _ = draft_edit(draft=draft, op="stage_add", params=params, actor=builder)
    draft, _ = draft_edit(
        draft=draft,
        op="stage_route",
        params={"key": "stage_1", "outcomes": [{"label": "go", "when": "true", "goto": "b"}], "default": "a"},
        actor=builder,
    )
    draft, _ = draft_edit(
        draft=draft, op="stage_save", params={"key": "a", "new_key": "x", "fault_path": "b"}, actor=builder
    )
    draft, _ = draft_edit(draft=draft, op="stage_save", params={"key": "b", "new_key": "y"}, actor=builder)
    first, x = draft.documents["orchestration"]["stages"][:2]
    assert first["next"] == {"outcomes": [{"label": "go", "when": "true", "goto": "y"}], "default": "x"}
    assert x["fault_path"] == "y"
    draft, _ = draft_edit(
        draft=draft, op="step_add", params={"stage_key": "x", "key": "later"}, actor=builder
    )
    draft, _ = draft_edit(
        draft=draft,
        op="step_save",
        params={
            "stage_key": "x",
            "key": "later",
            "new_key": "later",
            "fields": {"kind": "wait", "wait": {"for": "2h"}, "start": {"after": ["a_step_1"]}},
        },
        actor=builder,
    )
    draft, _ = draft_edit(
        draft=draft,
        op="step_save",
        params={"stage_key": "x", "key": "a_step_1", "new_key": "first", "fields": {}},
        actor=builder,
    )
    assert draft.documents["orchestration"]["stages"][1]["steps"][1]["start"] == {"after": ["first"]}
    assert draft_problems(draft.documents) == []


def test_bad_edits_say_why(builder: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=builder)
    for op, params, message in [
        ("stage_add", {"key": "stage_1"}, "already a stage 'stage_1'"),
        ("stage_remove", {"key": "stage_1"}, "at least one stage"),
        ("stage_save", {"key": "ghost", "new_key": "g"}, "no stage 'ghost'"),
        ("step_remove", {"stage_key": "stage_1", "key": "step_1"}, "at least one step"),
        ("step_add", {"stage_key": "stage_1", "kind": "magic"}, "a step is interactive"),
        ("flow_add", {"kind": "evaluation_flow", "api_name": "f"}, "screen flow or an autolaunched"),
        ("nonsense", {}, "unknown edit"),
    ]:
        with pytest.raises(BuilderError, match=message):
            draft_edit(draft=draft, op=op, params=params, actor=builder)
    draft.refresh_from_db()
    assert draft.revision == 1


def test_yaml_both_ways(builder: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=builder)
    draft, _ = draft_edit(
        draft=draft, op="flow_add", params={"kind": "screen_flow", "api_name": "welcome"}, actor=builder
    )
    text = draft_yaml(draft.documents)
    assert (
        text.startswith("kind: orchestration\napi_name: onboarding\n")
        and "\n---\nkind: screen_flow\n" in text
    )
    assert parse_yaml(text) == draft.documents
    edited = text.replace("label: Onboarding", "label: Welcome aboard")
    draft = draft_set_yaml(draft=draft, text=edited, actor=builder, revision=draft.revision)
    assert draft.documents["orchestration"]["label"] == "Welcome aboard"
    assert DraftRevision.objects.get(draft=draft, number=draft.revision).summary == "Edited the YAML"
    for bad, message in [
        ("kind: orchestration\n  bad: [", "cannot parse"),
        ("kind: screen_flow\napi_name: a\n", "one orchestration document"),
        (text + "---\nkind: orchestration\napi_name: other\n", "holds 2"),
        (text + "---\nkind: business_calendar\napi_name: cal\n", "flows only"),
    ]:
        with pytest.raises(BuilderError, match=message):
            draft_set_yaml(draft=draft, text=bad, actor=builder)
    draft.refresh_from_db()
    assert draft.documents["orchestration"]["label"] == "Welcome aboard"  # nothing lost


# --- problems on their element ------------------------------------------------------------------


def _world() -> dict[str, Any]:
    docs = ops.new_documents("onb", record_type="case")
    docs["flows"] = {
        "form": {
            "kind": "screen_flow",
            "api_name": "form",
            "screens": [{"key": "s1", "fields": [{"name": "ok", "type": "boolean"}]}],
        },
        "calc": {
            "kind": "autolaunched_flow",
            "api_name": "calc",
            "outputs": [{"name": "x", "type": "number"}],
            "actions": [{"type": "set_outputs", "values": {"x": "1"}}],
        },
    }
    docs["orchestration"]["stages"] = [
        {
            "key": "a",
            "steps": [
                {"key": "t", "kind": "interactive", "flow": "form", "assignee": {"user": "alice"}},
                {"key": "b", "kind": "background", "flow": "calc"},
            ],
        },
        {"key": "z", "steps": [{"key": "w", "kind": "wait", "wait": {"for": "1h"}}]},
    ]
    return docs


def _stage(d: dict[str, Any], i: int) -> dict[str, Any]:
    return d["orchestration"]["stages"][i]


def _step(d: dict[str, Any], i: int, j: int) -> dict[str, Any]:
    return _stage(d, i)["steps"][j]


PROBLEMS: list[tuple[str, Callable[[dict[str, Any]], Any], str, str, str]] = [
    (
        "route to nowhere",
        lambda d: _stage(d, 0).update(next="nowhere"),
        "stage:a",
        "next",
        "unknown stage 'nowhere'",
    ),
    ("step without flow", lambda d: _step(d, 0, 0).pop("flow"), "step:a/t", "", "needs a flow"),
    ("unknown flow", lambda d: _step(d, 0, 1).update(flow="nope"), "step:a/b", "flow", "unknown flow 'nope'"),
    (
        "after a ghost",
        lambda d: _step(d, 0, 1).update(start={"after": ["ghost"]}),
        "step:a/b",
        "start.after[0]",
        "unknown step 'ghost'",
    ),
    (
        "cycle",
        lambda d: (
            _step(d, 0, 1).update(start={"after": ["t"]}),
            _step(d, 0, 0).update(start={"after": ["b"]}),
        ),
        "stage:a",
        "steps",
        "cycle in 'after' dependencies",
    ),
    (
        "bad condition",
        lambda d: _step(d, 0, 1).update(start={"condition": "1 +"}),
        "step:a/b",
        "start.condition",
        "invalid expression",
    ),
    ("duplicate stage", lambda d: _stage(d, 1).update(key="a"), "stage:a", "", "duplicate stage key 'a'"),
    (
        "decision to nowhere",
        lambda d: _stage(d, 0).update(
            next={"outcomes": [{"when": "true", "goto": "ghost"}], "default": "end"}
        ),
        "stage:a",
        "next.outcomes[0].goto",
        "unknown stage 'ghost'",
    ),
    (
        "fault path to nowhere",
        lambda d: _stage(d, 0).update(fault_path="ghost"),
        "stage:a",
        "fault_path",
        "unknown stage 'ghost'",
    ),
    (
        "unknown record type",
        lambda d: d["orchestration"]["start"].update(record_type="ghost"),
        "start",
        "record_type",
        "unknown record type",
    ),
    (
        "bad variable default",
        lambda d: d["orchestration"].update(variables=[{"name": "v", "type": "number", "default": "1 +"}]),
        "variables",
        "variables[0].default",
        "invalid expression",
    ),
    (
        "choice without choices",
        lambda d: d["flows"]["form"]["screens"][0]["fields"].append({"name": "c", "type": "choice"}),
        "field:form/s1/c",
        "",
        "needs a list of choices",
    ),
    (
        "undeclared output",
        lambda d: d["flows"]["calc"]["actions"][0]["values"].update(y="2"),
        "action:calc/0",
        "values.y",
        "not a declared output",
    ),
    (
        "unknown user",
        lambda d: _step(d, 0, 0).update(assignee={"user": "nobody_here"}),
        "step:a/t",
        "assignee.user",
        "no user 'nobody_here'",
    ),
    (
        "bad api name",
        lambda d: d["orchestration"].update(api_name="Bad Name"),
        "settings",
        "api_name",
        "lower_snake_case",
    ),
    (
        "empty wait",
        lambda d: _step(d, 1, 0).update(wait={}),
        "step:z/w",
        "wait",
        "exactly one of for, until or condition",
    ),
    ("misspelt field", lambda d: _step(d, 0, 0).update(colour="red"), "step:a/t", "colour", "unknown field"),
]


@pytest.mark.parametrize(
    ("name", "change", "element", "field", "message"), PROBLEMS, ids=[p[0] for p in PROBLEMS]
)
def test_each_problem_is_on_its_element_with_the_cli_message(
    personas: SimpleNamespace, name: str, change: Any, element: str, field: str, message: str
) -> None:
    from records.services import record_type_upsert

    record_type_upsert(api_name="case", label="Case", fields=[{"name": "title", "type": "text"}])
    docs = _world()
    assert draft_problems(docs) == []
    change(docs)
    found = [(p.element, p.field) for p in draft_problems(docs) if message in p.message]
    assert found == [(element, field)]
    # The same messages as the CLI's validation of the same documents (no flows are active here).
    cli = validate_documents(
        [("orchestration", docs["orchestration"]), *((f"flow:{n}", f) for n, f in docs["flows"].items())]
    )
    assert sorted(p.text for p in draft_problems(docs)) == sorted(str(e) for e in cli.errors)


# --- from versions, clones, activation -------------------------------------------------------------


def _two_stage() -> None:
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


def test_a_draft_from_a_version_holds_it_and_its_flows_and_activates_as_the_next_version(
    builder: Any,
) -> None:
    _two_stage()
    v1 = OrchestrationVersion.objects.get(orchestration__api_name="proc")
    draft = draft_from_version(version=v1, actor=builder)
    assert set(draft.documents["flows"]) == {"calc", "review"}
    assert draft.base_version == v1 and draft_problems(draft.documents) == []
    draft, _ = draft_edit(draft=draft, op="stage_add", params={"key": "wrap_up"}, actor=builder)
    report = draft_activate(draft=draft, actor=builder)
    assert report.created == ["orchestration proc v2"]
    assert sorted(report.unchanged) == ["autolaunched_flow calc v1", "screen_flow review v1"]
    v2 = OrchestrationVersion.objects.get(orchestration__api_name="proc", is_active=True)
    assert v2.number == 2 and [s["key"] for s in v2.document["stages"]] == ["intake", "review", "wrap_up"]
    event = DefinitionEvent.objects.get(name="definitions.draft.activated")
    assert (event.version_number, event.actor, event.payload["draft"]) == (2, builder, draft.pk)
    with pytest.raises(BuilderError, match="was activated"):
        draft_edit(draft=draft, op="stage_add", params={}, actor=builder)


def test_a_draft_with_problems_cannot_be_activated(builder: Any) -> None:
    draft = draft_new(api_name="onboarding", actor=builder)
    draft, _ = draft_edit(
        draft=draft,
        op="stage_save",
        params={"key": "stage_1", "new_key": "stage_1", "fault_path": "ghost"},
        actor=builder,
    )
    with pytest.raises(BuilderError, match="1 problem"):
        draft_activate(draft=draft, actor=builder)
    assert not Orchestration.objects.filter(api_name="onboarding").exists()


def test_clone(builder: Any) -> None:
    _two_stage()
    original = Orchestration.objects.get(api_name="proc")
    draft = draft_clone(orchestration=original, api_name="proc_copy", actor=builder)
    assert draft.documents["orchestration"]["api_name"] == "proc_copy"
    assert draft.documents["orchestration"]["label"] == f"{original} (copy)"
    draft_activate(draft=draft, actor=builder)
    copy_doc = OrchestrationVersion.objects.get(orchestration__api_name="proc_copy").document
    source = copy.deepcopy(OrchestrationVersion.objects.get(orchestration__api_name="proc").document)
    source.update(api_name="proc_copy", label=copy_doc["label"])
    assert copy_doc == source
    with pytest.raises(BuilderError, match="already an orchestration 'proc'"):
        draft_clone(orchestration=original, api_name="proc", actor=builder)


def test_who_may_build(personas: SimpleNamespace) -> None:
    with pytest.raises(PermissionDenied, match="change_orchestration"):
        draft_new(api_name="onboarding", actor=personas.alice)
    grant(personas.alice, "orchestration.change_orchestration")
    draft = draft_new(api_name="onboarding", actor=personas.alice)
    with pytest.raises(PermissionDenied, match="import_definitions"):
        draft_activate(draft=draft, actor=personas.alice)
    assert Draft.objects.count() == 1
