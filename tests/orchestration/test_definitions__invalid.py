"""Invalid definitions are refused with the file, the path inside the document and what is
wrong; one bad document rejects the whole batch."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from orchestration.models import Flow, FlowVersion, Orchestration, OrchestrationVersion
from orchestration.services import DefinitionsInvalid, definitions_import, definitions_import_paths
from orchestration.validation import load_text, validate_documents
from tests.factories import auto_flow, eval_flow, orchestration, screen_flow

pytestmark = pytest.mark.django_db

Doc = dict[str, Any]


def valid_batch() -> list[Doc]:
    return [
        screen_flow("review"),
        auto_flow("calc", outputs={"score": "42"}),
        eval_flow("is_ok", "true"),
        orchestration(
            start={"type": "autolaunched", "record_type": "case"},
            variables=[{"name": "score", "type": "number"}],
            stages=[
                {
                    "key": "first",
                    "steps": [
                        {"key": "a", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}},
                        {"key": "b", "kind": "background", "flow": "calc", "outputs": {"score": "score"}},
                    ],
                },
                {"key": "second", "steps": [{"key": "c", "kind": "background", "flow": "calc"}]},
            ],
        ),
    ]


def errors_of(docs: list[Doc]) -> list[tuple[str, str, str]]:
    result = validate_documents([(f"file{i}.yaml", d) for i, d in enumerate(docs)])
    return [(e.source, e.path, e.message) for e in result.errors]


def test_the_valid_batch_is_valid(personas):
    assert errors_of(valid_batch()) == []


def _orch(docs: list[Doc]) -> Doc:
    return docs[3]


def _step(docs: list[Doc], si: int = 0, ti: int = 0) -> Doc:
    return docs[3]["stages"][si]["steps"][ti]


def _set(**changes: Any) -> Callable[[list[Doc]], None]:
    """Set keys on step stages[0].steps[0]."""

    def apply(docs: list[Doc]) -> None:
        _step(docs).update(changes)

    return apply


def _map_input(docs: list[Doc], expression: str) -> None:
    docs[1]["inputs"] = [{"name": "base", "type": "number"}]
    _step(docs, 0, 1)["inputs"] = {"base": expression}


def _wait(**fields: Any) -> Callable[[list[Doc]], None]:
    """Make stages[0].steps[0] a wait step with these fields (besides key and kind)."""

    def apply(docs: list[Doc]) -> None:
        step = _step(docs)
        step.clear()
        step.update(key="a", kind="wait", **fields)

    return apply


CASES: list[tuple[str, Callable[[list[Doc]], object], str, str]] = [
    # --- wait steps
    ("wait without wait", _wait(), "stages[0].steps[0]", "wait step 'a' needs 'wait'"),
    (
        "wait with two things to wait for",
        _wait(wait={"for": "2h", "condition": "true"}),
        "stages[0].steps[0].wait",
        "exactly one of for, until or condition",
    ),
    ("wait for nothing", _wait(wait={}), "stages[0].steps[0].wait", "exactly one of for, until or condition"),
    (
        "wait for a bad duration",
        _wait(wait={"for": "soon"}),
        "stages[0].steps[0].wait",
        "'soon' is not a duration",
    ),
    (
        "wait timeout without a condition",
        _wait(wait={"for": "2h", "timeout": "3d"}),
        "stages[0].steps[0].wait",
        "timeout is for condition waits",
    ),
    (
        "wait with a flow",
        _wait(wait={"for": "2h"}, flow="calc"),
        "stages[0].steps[0]",
        "wait step 'a' runs no flow: no flow",
    ),
    (
        "wait with outputs and an assignee",
        _wait(wait={"for": "2h"}, outputs={"score": "x"}, assignee={"user": "alice"}),
        "stages[0].steps[0]",
        "no outputs, assignee",
    ),
    (
        "wait on a bad condition",
        _wait(wait={"condition": "record.status =="}),
        "stages[0].steps[0].wait.condition",
        "",
    ),
    (
        "wait until with an unknown name",
        _wait(wait={"until": "nobody.knows"}),
        "stages[0].steps[0].wait.until",
        "",
    ),
    (
        "wait on an unknown calendar",
        _wait(wait={"for": "1 business hour", "calendar": "nope"}),
        "stages[0].steps[0].wait.calendar",
        "unknown business calendar 'nope'",
    ),
    (
        "a background step without a flow",
        lambda d: _step(d, 0, 1).pop("flow"),
        "stages[0].steps[1]",
        "needs a flow",
    ),
    (
        "a background step that waits",
        lambda d: _step(d, 0, 1).update(wait={"for": "2h"}),
        "stages[0].steps[1]",
        "'wait' is for kind: wait",
    ),
    # --- references
    ("unknown flow", _set(flow="nope"), "stages[0].steps[0].flow", "unknown flow 'nope'"),
    (
        "unknown stage in next",
        lambda d: _orch(d)["stages"][0].update(next="nowhere"),
        "stages[0].next",
        "unknown stage 'nowhere' (use a stage key or 'end')",
    ),
    (
        "unknown stage in a decision outcome",
        lambda d: _orch(d)["stages"][0].update(
            next={"outcomes": [{"when": "true", "goto": "nowhere"}], "default": "end"}
        ),
        "stages[0].next.outcomes[0].goto",
        "unknown stage 'nowhere'",
    ),
    (
        "unknown stage as decision default",
        lambda d: _orch(d)["stages"][0].update(
            next={"outcomes": [{"when": "true", "goto": "second"}], "default": "nowhere"}
        ),
        "stages[0].next.default",
        "unknown stage 'nowhere'",
    ),
    (
        "unknown fault path",
        lambda d: _orch(d)["stages"][0].update(fault_path="nowhere"),
        "stages[0].fault_path",
        "unknown stage 'nowhere'",
    ),
    (
        "own fault path",
        lambda d: _orch(d)["stages"][0].update(fault_path="first"),
        "stages[0].fault_path",
        "a stage cannot be its own fault path",
    ),
    (
        "unknown step in after",
        lambda d: _step(d, 0, 1).update(start={"after": ["a", "ghost"]}),
        "stages[0].steps[1].start.after[1]",
        "unknown step 'ghost' (steps in this stage: a, b)",
    ),
    (
        "after a step of another stage",
        lambda d: _step(d, 1, 0).update(start={"after": ["a"]}),
        "stages[1].steps[0].start.after[0]",
        "unknown step 'a'",
    ),
    (
        "cycle in after",
        lambda d: (
            _step(d, 0, 0).update(start={"after": ["b"]}),
            _step(d, 0, 1).update(start={"after": ["a"]}),
        ),
        "stages[0].steps",
        "cycle in 'after' dependencies: a -> b -> a",
    ),
    (
        "step after itself",
        lambda d: _step(d, 0, 1).update(start={"after": ["b"]}),
        "stages[0].steps",
        "cycle in 'after' dependencies: b -> b",
    ),
    (
        "evaluation gate naming another kind of flow",
        lambda d: _step(d, 0, 1).update(start={"evaluation_flow": "calc"}),
        "stages[0].steps[1].start.evaluation_flow",
        "'calc' is of kind autolaunched_flow; an evaluation_flow is needed here",
    ),
    (
        "unknown evaluation flow",
        lambda d: _orch(d)["stages"][0].update(exit={"evaluation_flow": "ghost"}),
        "stages[0].exit.evaluation_flow",
        "unknown flow 'ghost'",
    ),
    (
        "background step running a screen flow",
        lambda d: _step(d, 0, 1).update(flow="review", outputs={}),
        "stages[0].steps[1].flow",
        "background steps need a flow of kind autolaunched_flow; 'review' is of kind screen_flow",
    ),
    (
        "interactive step running an autolaunched flow",
        _set(flow="calc"),
        "stages[0].steps[0].flow",
        "interactive steps need a flow of kind screen_flow; 'calc' is of kind autolaunched_flow",
    ),
    (
        "outputs into an undeclared variable",
        lambda d: _step(d, 0, 1).update(outputs={"nope": "score"}),
        "stages[0].steps[1].outputs.nope",
        "'nope' is not a declared orchestration variable",
    ),
    (
        "outputs from a missing output",
        lambda d: _step(d, 0, 1).update(outputs={"score": "ghost"}),
        "stages[0].steps[1].outputs.score",
        "flow 'calc' has no output 'ghost'",
    ),
    (
        "input the flow does not declare",
        lambda d: _step(d, 0, 1).update(inputs={"colour": "'red'"}),
        "stages[0].steps[1].inputs.colour",
        "'colour' is not an input of flow 'calc'",
    ),
    (
        "required flow input not given",
        lambda d: d[1].update(inputs=[{"name": "base", "type": "number", "required": True}]),
        "stages[0].steps[1].inputs",
        "flow 'calc' needs input 'base'",
    ),
    (
        "unknown user",
        _set(assignee={"user": "ghost"}),
        "stages[0].steps[0].assignee.user",
        "no user 'ghost'",
    ),
    (
        "unknown queue",
        _set(assignee={"queue": "nowhere"}),
        "stages[0].steps[0].assignee.queue",
        "no queue 'nowhere'",
    ),
    (
        "unknown record type",
        lambda d: _orch(d)["start"].update(record_type="invoice"),
        "start.record_type",
        "unknown record type 'invoice'",
    ),
    # --- step rules
    (
        "interactive step without assignee",
        lambda d: _step(d).pop("assignee"),
        "stages[0].steps[0]",
        "interactive step 'a' needs an assignee",
    ),
    (
        "assignee with two targets",
        _set(assignee={"user": "alice", "group": "support"}),
        "stages[0].steps[0].assignee",
        "give exactly one of user, group, queue or expression",
    ),
    (
        "background step assigned to a person",
        lambda d: _step(d, 0, 1).update(assignee={"user": "alice"}),
        "stages[0].steps[1]",
        "background step 'b' runs without a person: no assignee",
    ),
    (
        "background step with a completion condition",
        lambda d: _step(d, 0, 1).update(completion={"condition": "true"}),
        "stages[0].steps[1]",
        "background steps complete when their flow finishes",
    ),
    (
        "completion after",
        _set(completion={"after": ["b"]}),
        "stages[0].steps[0]",
        "completion cannot use 'after'",
    ),
    (
        "stage exit after",
        lambda d: _orch(d)["stages"][0].update(exit={"after": ["a"]}),
        "stages[0].exit",
        "a stage exit cannot use 'after'",
    ),
    (
        "two start gates",
        _set(start={"after": ["b"], "condition": "true"}),
        "stages[0].steps[0].start",
        "give at most one of after, condition or evaluation_flow",
    ),
    (
        "decision without a default",
        lambda d: _orch(d)["stages"][0].update(next={"outcomes": [{"when": "true", "goto": "end"}]}),
        "stages[0].next.default",
        "required field is missing",
    ),
    (
        "decision without outcomes",
        lambda d: _orch(d)["stages"][0].update(next={"outcomes": [], "default": "end"}),
        "stages[0].next.outcomes",
        "List should have at least 1 item",
    ),
    (
        "next that is neither a key nor a decision",
        lambda d: _orch(d)["stages"][0].update(next=7),
        "stages[0].next",
        "must be a stage key, 'end', or a decision",
    ),
    (
        "changed_to_meet without a condition",
        lambda d: _orch(d).update(start={"type": "record", "record_type": "case", "run": "changed_to_meet"}),
        "start.run",
        "changed_to_meet needs a start condition",
    ),
    # --- expressions
    (
        "malformed expression",
        _set(start={"condition": "record.amount >"}),
        "stages[0].steps[0].start.condition",
        "invalid expression: unexpected ')'",
    ),
    (
        "unsafe expression",
        _set(start={"condition": "record.__class__"}),
        "stages[0].steps[0].start.condition",
        "unsafe expression: access to '__' attributes is not allowed",
    ),
    (
        "unknown name in an expression",
        lambda d: _orch(d)["stages"][0].update(exit={"condition": "customer.vip"}),
        "stages[0].exit.condition",
        "unknown name customer (use assignee, inputs, outputs, record, run, step, steps, vars)",
    ),
    (
        "unknown filter in an expression",
        lambda d: _orch(d)["variables"][0].update(default="record.amount | money"),
        "variables[0].default",
        "invalid expression: No filter named 'money'.",
    ),
    (
        "bad expression in a decision",
        lambda d: _orch(d)["stages"][0].update(
            next={"outcomes": [{"when": "1 +", "goto": "end"}], "default": "end"}
        ),
        "stages[0].next.outcomes[0].when",
        "invalid expression",
    ),
    (
        "bad expression in an input mapping",
        lambda d: _map_input(d, "vars.__dict__"),
        "stages[0].steps[1].inputs.base",
        "unsafe expression",
    ),
    (
        "bad assignee expression",
        _set(assignee={"expression": "record.owner )"}),
        "stages[0].steps[0].assignee.expression",
        "invalid expression",
    ),
    (
        "bad email template",
        _set(email={"subject": "{{ record.name "}),
        "stages[0].steps[0].email.subject",
        "invalid expression",
    ),
    (
        "bad expression in a flow action",
        lambda d: d[1]["actions"][0]["values"].update(score="1 +"),
        "actions[0].values.score",
        "invalid expression",
    ),
    # --- types and structure
    ("max_attempts not a number", _set(max_attempts="x"), "stages[0].steps[0].max_attempts", "valid integer"),
    (
        "max_attempts too small",
        _set(max_attempts=0),
        "stages[0].steps[0].max_attempts",
        "greater than or equal to 1",
    ),
    ("stages as a mapping", lambda d: _orch(d).update(stages={}), "stages", "Input should be a valid list"),
    ("no stages", lambda d: _orch(d).update(stages=[]), "stages", "List should have at least 1 item"),
    (
        "stage without steps",
        lambda d: _orch(d)["stages"][1].update(steps=[]),
        "stages[1].steps",
        "at least 1 item",
    ),
    (
        "unknown step kind",
        _set(kind="robot"),
        "stages[0].steps[0].kind",
        "'interactive', 'background' or 'wait'",
    ),
    ("misspelled field", _set(asignee={"user": "alice"}), "stages[0].steps[0].asignee", "unknown field"),
    ("bad key", _set(key="Step One"), "stages[0].steps[0].key", "must be lower_snake_case"),
    ("missing start", lambda d: _orch(d).pop("start"), "start", "required field is missing"),
    (
        "unknown start type",
        lambda d: _orch(d).update(start={"type": "cron"}),
        "start",
        "'record', 'autolaunched'",
    ),
    (
        "unknown variable type",
        lambda d: _orch(d)["variables"][0].update(type="money"),
        "variables[0].type",
        "Input should be",
    ),
    (
        "unknown kind",
        lambda d: d[0].update(kind="workflow"),
        "kind",
        "must be one of orchestration, screen_flow",
    ),
    ("kind not a string", lambda d: d[0].update(kind=["screen_flow"]), "kind", "must be one of"),
    (
        "choice field without choices",
        lambda d: d[0]["screens"][0]["fields"].append({"name": "pick", "type": "choice"}),
        "screens[0].fields[2]",
        "field 'pick' of type choice needs a list of choices",
    ),
    (
        "unknown action type",
        lambda d: d[1]["actions"].append({"type": "teleport"}),
        "actions[1]",
        "does not match any of the expected tags",
    ),
    (
        "set_outputs of an undeclared output",
        lambda d: d[1]["actions"][0]["values"].update(extra="1"),
        "actions[0].values.extra",
        "'extra' is not a declared output of this flow",
    ),
    (
        "evaluation flow that never decides",
        lambda d: d[2].update(actions=[{"type": "send_email", "to": "'a@b.c'", "subject": "s", "body": "b"}]),
        "actions",
        "an evaluation flow must set the output 'is_condition_met'",
    ),
    (
        "unregistered python flow",
        lambda d: d[1]["actions"].append({"type": "call", "name": "no_such_python_flow"}),
        "actions[1].name",
        "no Python flow registered as 'no_such_python_flow'",
    ),
    (
        "NUL character (PostgreSQL cannot store it)",
        lambda d: _step(d).update(label="bad\x00label"),
        "stages[0].steps[0].label",
        "text cannot contain NUL",
    ),
    (
        "label too long for its column",
        lambda d: _orch(d).update(label="x" * 201),
        "label",
        "at most 200 characters",
    ),
    # --- duplicates
    (
        "duplicate stage key",
        lambda d: _orch(d)["stages"][1].update(key="first"),
        "stages[1]",
        "duplicate stage key 'first'",
    ),
    (
        "duplicate step key in a stage",
        lambda d: _step(d, 0, 1).update(key="a"),
        "stages[0].steps[1].key",
        "duplicate step key 'a'",
    ),
    (
        "duplicate step key across stages",
        lambda d: _step(d, 1, 0).update(key="a"),
        "stages[1].steps[0].key",
        "duplicate step key 'a' (step keys are unique in an orchestration)",
    ),
    (
        "duplicate variable",
        lambda d: _orch(d)["variables"].append({"name": "score"}),
        "variables[1]",
        "duplicate variable 'score'",
    ),
    (
        "duplicate screen field across screens",
        lambda d: d[0]["screens"].append({"key": "more", "fields": [{"name": "comment"}]}),
        "screens[1].fields[0].name",
        "duplicate field name 'comment'",
    ),
    (
        "duplicate screen key",
        lambda d: d[0]["screens"].append({"key": "main", "fields": [{"name": "other"}]}),
        "screens[1]",
        "duplicate screen key 'main'",
    ),
    (
        "duplicate flow output",
        lambda d: d[1]["outputs"].append({"name": "score"}),
        "outputs[1]",
        "duplicate output 'score'",
    ),
    (
        "duplicate launch input",
        lambda d: _orch(d)["start"].update(inputs=[{"name": "x"}, {"name": "x"}]),
        "start.inputs[1]",
        "duplicate input 'x'",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_invalid_document_is_reported_with_its_path(personas, mutate, path, message):
    docs = copy.deepcopy(valid_batch())
    mutate(docs)
    errors = errors_of(docs)
    matching = [e for e in errors if e[1] == path and message in e[2]]
    assert matching, errors
    # The same problem is reported once, not once per check that noticed it.
    assert len([e for e in errors if e[1] == path]) == 1, errors


def test_errors_name_the_file_they_come_from(personas):
    docs = valid_batch()
    _step(docs).update(flow="nope")
    assert errors_of(docs) == [
        (
            "file3.yaml",
            "stages[0].steps[0].flow",
            "unknown flow 'nope' (import it in the same batch or first)",
        )
    ]


def test_every_error_of_a_document_is_reported_at_once(personas):
    docs = valid_batch()
    _step(docs).update(flow="nope", start={"condition": "x >"})
    _orch(docs)["stages"][1].update(next="nowhere")
    paths = {e[1] for e in errors_of(docs)}
    assert {"stages[0].steps[0].flow", "stages[0].steps[0].start.condition", "stages[1].next"} <= paths


def test_duplicate_api_names_in_one_batch(personas):
    docs = [*valid_batch(), auto_flow("calc")]
    assert ("file4.yaml", "api_name", "duplicate flow 'calc' (also in file1.yaml)") in errors_of(docs)


# --- text ------------------------------------------------------------------------------------


def test_yaml_duplicate_mapping_keys_are_refused():
    text = "kind: screen_flow\napi_name: a\napi_name: b\nscreens: []\n"
    docs, errors = load_text(text, "dup.yaml")
    assert docs == []
    [err] = errors
    assert (err.source, err.path) == ("dup.yaml", "")
    assert "duplicate key 'api_name'" in err.message
    assert "line 3" in err.message


def test_nested_duplicate_keys_are_refused_too():
    text = "kind: orchestration\nstages:\n  - key: a\n    key: b\n"
    _, errors = load_text(text, "nested.yaml")
    assert "duplicate key 'key'" in errors[0].message


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        ("kind: [unclosed", "bad.yaml", "cannot parse"),
        ("kind: a\n  - nope: [", "bad.yaml", "cannot parse"),
        ('{"kind": ', "bad.json", "cannot parse"),
        ("- just\n- a list\n", "list.yaml", "must be a mapping"),
    ],
)
def test_text_that_does_not_parse(text, source, message):
    docs, errors = load_text(text, source)
    assert docs == []
    assert errors and errors[0].source == source
    assert message in errors[0].message


def test_several_documents_in_one_yaml_file():
    docs, errors = load_text(
        "kind: screen_flow\napi_name: a\n---\nkind: screen_flow\napi_name: b\n", "two.yaml"
    )
    assert errors == []
    assert [d["api_name"] for d in docs] == ["a", "b"]


# --- importing -------------------------------------------------------------------------------


def test_one_invalid_document_rejects_the_whole_batch(personas):
    docs = valid_batch()
    broken = screen_flow("broken", fields=[{"name": "x", "type": "choice"}])
    with pytest.raises(DefinitionsInvalid) as exc:
        definitions_import(items=[(f"f{i}.yaml", d) for i, d in enumerate([*docs, broken])])
    assert [str(e) for e in exc.value.errors] == [
        "f4.yaml: screens[0].fields[0]: field 'x' of type choice needs a list of choices"
    ]
    assert Flow.objects.count() == FlowVersion.objects.count() == 0
    assert Orchestration.objects.count() == OrchestrationVersion.objects.count() == 0


def test_importing_files_reports_the_file_that_does_not_parse(personas, tmp_path):
    (tmp_path / "good.yaml").write_text(
        "kind: screen_flow\napi_name: fine\nscreens:\n  - key: s\n    fields: [{name: a}]\n"
    )
    (tmp_path / "bad.yaml").write_text("kind: screen_flow\napi_name: [oops\n")
    with pytest.raises(DefinitionsInvalid) as exc:
        definitions_import_paths(paths=[str(tmp_path)])
    [err] = exc.value.errors
    assert err.source.endswith("bad.yaml")
    assert "cannot parse" in err.message
    assert Flow.objects.count() == 0


def test_a_flow_cannot_change_kind_under_the_same_name(personas):
    definitions_import(items=[("a.yaml", screen_flow("thing"))])
    with pytest.raises(DefinitionsInvalid, match="already exists as a screen_flow"):
        definitions_import(items=[("b.yaml", auto_flow("thing"))])
    assert FlowVersion.objects.count() == 1


def test_an_orchestration_may_use_flows_imported_earlier(personas):
    flows, orch = valid_batch()[:3], valid_batch()[3]
    definitions_import(items=[(f"f{i}.yaml", d) for i, d in enumerate(flows)])
    definitions_import(items=[("o.yaml", orch)])
    assert OrchestrationVersion.objects.filter(is_active=True).count() == 1
    # ... but not flows nobody imported.
    _step([None, None, None, orch]).update(flow="missing_flow")  # type: ignore[list-item]
    with pytest.raises(DefinitionsInvalid, match="unknown flow 'missing_flow'"):
        definitions_import(items=[("o.yaml", orch)])
