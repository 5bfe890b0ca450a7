"""Property tests: whatever an admin (or a fuzzer) writes, validation answers with errors and
never crashes; expressions fail only with ExpressionError; and every valid orchestration built
from steps, after-dependencies, decisions and background flows runs to completion."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestration import expressions
from orchestration.definitions import DataType
from orchestration.models import RunStatus, StageRun, StepRun
from orchestration.services import DefinitionsInvalid, definitions_import, run_launch
from orchestration.validation import DefinitionError, validate_documents
from orchestration.values import TypeCoercionError, to_json
from tests.factories import auto_flow, eval_flow, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- random documents ------------------------------------------------------------------------

FIELD_NAMES = [
    "kind", "api_name", "label", "start", "type", "record_type", "on", "condition", "run", "inputs",
    "variables", "name", "default", "stages", "key", "steps", "flow", "after", "evaluation_flow",
    "completion", "outputs", "assignee", "user", "group", "queue", "expression", "exit", "next",
    "outcomes", "when", "goto", "fault_path", "max_attempts", "screens", "fields", "choices",
    "actions", "values", "required", "email", "subject", "body", "json", "url",
]  # fmt: skip
WORDS = [
    "orchestration", "screen_flow", "autolaunched_flow", "evaluation_flow", "interactive",
    "background", "record", "autolaunched", "end", "case", "alice", "set_outputs", "call", "http",
    "update_record", "choice", "number", "true", "record.amount > 1", "x }} {{ y", "__class__",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=15)
    | st.sampled_from(WORDS)
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
documents = st.tuples(
    st.dictionaries(keys, json_values, max_size=7),
    st.sampled_from(["orchestration", "screen_flow", "autolaunched_flow", "evaluation_flow", None]),
).map(lambda pair: {**pair[0], "kind": pair[1]} if pair[1] else pair[0])


def _assert_clean(result: Any) -> None:
    for err in result.errors:
        assert isinstance(err, DefinitionError)
        assert isinstance(err.path, str) and isinstance(err.message, str) and err.message
    if result.ok:
        assert result.documents


@pytest.mark.django_db
@FAST
@given(batch=st.lists(documents, min_size=1, max_size=3))
def test_random_documents_never_crash_validation(personas, batch):
    _assert_clean(validate_documents([(f"doc{i}.yaml", d) for i, d in enumerate(batch)]))


def valid_batch() -> list[dict[str, Any]]:
    return [
        screen_flow("review", fields=[{"name": "ok", "type": "boolean"}, {"name": "n", "type": "number"}]),
        auto_flow("calc", outputs={"score": "inputs.base * 2"}, inputs=[{"name": "base", "type": "number"}]),
        eval_flow("is_ok", "record.amount > 1"),
        orchestration(
            variables=[{"name": "score", "type": "number", "default": "1"}],
            stages=[
                {
                    "key": "first",
                    "steps": [
                        {"key": "a", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}},
                        {
                            "key": "b",
                            "kind": "background",
                            "flow": "calc",
                            "start": {"after": ["a"]},
                            "inputs": {"base": "steps.a.n"},
                            "outputs": {"score": "score"},
                        },
                    ],
                    "exit": {"evaluation_flow": "is_ok"},
                    "next": {"outcomes": [{"when": "vars.score > 3", "goto": "second"}], "default": "end"},
                    "fault_path": "second",
                },
                {"key": "second", "steps": [{"key": "c", "kind": "background", "flow": "calc"}]},
            ],
        ),
    ]


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a JSON tree."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_nodes(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_nodes(v, (*path, i)))
    return out


VOCABULARY = [
    "a", "b", "c", "first", "second", "end", "calc", "review", "is_ok", "score", "base", "n", "ok",
    "alice", "bob", "engineering", "triage", "case", "interactive", "background", "true",
    "vars.score > 1", "record.amount * 2", "steps.a.n", "inputs.base", "record.owner", "'queue:triage'",
    "number", "text", "boolean", "decimal", "screen_flow", "autolaunched_flow", "evaluation_flow",
]  # fmt: skip


@st.composite
def mutated_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    batch = valid_batch()
    for doc in batch:
        if draw(st.booleans()):  # a harmless change: the import then stores a new version
            doc["label"] = draw(st.text(max_size=20))
    for _ in range(draw(st.integers(0, 3))):
        doc = draw(st.sampled_from(batch))
        path = draw(st.sampled_from(_nodes(doc)[1:]))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["like", "like", "replace", "delete", "duplicate"]))
        current = parent[last]
        if action == "like" and isinstance(current, bool):
            parent[last] = not current
        elif action == "like" and isinstance(current, int):
            parent[last] = draw(st.integers(-1, 25))
        elif action == "like" and isinstance(current, str):
            # A value of the same kind: often still valid, or a near miss (a wrong reference).
            parent[last] = draw(st.sampled_from(VOCABULARY))
        elif action in ("like", "replace"):
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[last] = copy.deepcopy(draw(st.sampled_from(list(parent.values()))))
    return batch


@pytest.mark.django_db
def test_the_unmutated_batch_is_valid(personas):
    assert validate_documents([("x.yaml", d) for d in valid_batch()]).ok


@pytest.mark.django_db
@FAST
@given(batch=mutated_batches())
def test_mutated_orchestrations_never_crash_validation_or_import(personas, batch):
    items = [(f"doc{i}.yaml", d) for i, d in enumerate(batch)]
    result = validate_documents(items)
    _assert_clean(result)
    event("still valid" if result.ok else "invalid")
    if result.ok:
        try:
            definitions_import(items=items)
        except DefinitionsInvalid as exc:  # e.g. a flow whose kind changed under its name
            assert exc.errors


# --- expressions -----------------------------------------------------------------------------

TOKENS = [
    "record", "vars", "steps", "inputs", "run", "outputs", ".", "amount", "name", "tags", "missing",
    "(", ")", "[", "]", "+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "not", "if", "else",
    "in", "is", "==", "!=", "<", ">=", "|", "length", "int", "float", "upper", "lower", "join",
    "default", "first", "round", "string", "attr", "center", "batch", "'a'", "'_'", "1", "0", "9",
    "99999", "2.5", "-1", "none", "true", "false", "{{", "}}", "{%", "%}", ",", ":", "_", "days",
    "now()", "today()", "format", "replace", "ljust", "mro", "items", "keys", "divisibleby",
]  # fmt: skip
expression_text = (
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map("".join)
    | st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join)
    | st.text(max_size=30)
)

CTX = {
    "record": {"name": "ACME", "amount": Decimal("12.5"), "tags": ["a", "b"], "missing": None},
    "vars": {"n": 3, "flag": True},
    "steps": {"a": {"n": 2}},
    "inputs": {},
    "outputs": {},
    "run": {"id": 1},
}


@FAST
@given(source=expression_text)
def test_expressions_fail_only_with_expression_error(source):
    reason = expressions.check(source)
    assert reason is None or isinstance(reason, str)
    for attempt in (
        lambda: expressions.evaluate(source, CTX),
        lambda: expressions.render(source, CTX),
        lambda: expressions.render(source, CTX, html=True),
    ):
        try:
            attempt()
        except expressions.ExpressionError as exc:
            assert str(exc)
    if reason is not None:
        with pytest.raises(expressions.ExpressionError):
            expressions.evaluate(source, CTX)


@FAST
@given(type_=st.sampled_from([t.value for t in DataType]), value=json_values)
def test_typed_values_fail_only_with_type_coercion_error(type_, value):
    import json

    try:
        out = to_json(type_, value)
    except TypeCoercionError:
        return
    # Whatever is accepted can be stored (PostgreSQL's jsonb refuses NaN and Infinity).
    json.dumps(out, allow_nan=False)


# --- generated orchestrations run to completion ----------------------------------------------


@st.composite
def small_orchestrations(draw: st.DrawFn) -> dict[str, Any]:
    stage_count = draw(st.integers(1, 3))
    stage_keys = [f"st{i}" for i in range(stage_count)]
    stages = []
    for si, skey in enumerate(stage_keys):
        step_count = draw(st.integers(1, 4))
        steps: list[dict[str, Any]] = []
        for ti in range(step_count):
            key = f"s{si}_{ti}"
            earlier = [s["key"] for s in steps]
            after = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2)) if earlier else []
            interactive = draw(st.integers(0, 3)) == 0
            step: dict[str, Any] = (
                {"key": key, "kind": "interactive", "flow": "answer", "assignee": {"user": "alice"}}
                if interactive
                else {"key": key, "kind": "background", "flow": "emit"}
            )
            gate = draw(st.sampled_from(["with_stage", "after", "condition"]))
            n = str(draw(st.integers(0, 50)))
            if gate == "after" and after:
                step["start"] = {"after": after}
                # Reading a dependency's output is safe: it has completed (a background
                # dependency gives `doubled`, an interactive one the `n` its assignee entered).
                n = f"(steps.{after[0]}.doubled or steps.{after[0]}.n or 0) + {ti}"
            elif gate == "condition":
                step["start"] = {
                    "condition": draw(st.sampled_from(["true", "run.id > 0", "vars.total >= 0"]))
                }
            if not interactive:
                step["inputs"] = {"n": n}
            if draw(st.booleans()):
                step["outputs"] = {"total": "n" if interactive else "doubled"}
            steps.append(step)
        stage: dict[str, Any] = {"key": skey, "steps": steps}
        if draw(st.integers(0, 4)) == 0:
            stage["exit"] = {"condition": "true"}
        later = [*stage_keys[si + 1 :], "end"]
        if draw(st.booleans()):
            stage["next"] = {
                "outcomes": [
                    {
                        "when": f"vars.total > {draw(st.integers(0, 100))}",
                        "goto": draw(st.sampled_from(later)),
                    }
                    for _ in range(draw(st.integers(1, 2)))
                ],
                "default": draw(st.sampled_from(later)),
            }
        stages.append(stage)
    return orchestration(
        "generated",
        start={"type": "autolaunched"},
        variables=[{"name": "total", "type": "number", "default": "0"}],
        stages=stages,
    )


ANSWER = screen_flow("answer", fields=[{"name": "n", "type": "number", "required": True}])
EMIT = {
    "kind": "autolaunched_flow",
    "api_name": "emit",
    "inputs": [{"name": "n", "type": "number", "required": True}],
    "outputs": [{"name": "doubled", "type": "number"}],
    "actions": [{"type": "set_outputs", "values": {"doubled": "inputs.n * 2"}}],
}


@pytest.mark.django_db(transaction=True)
@settings(FAST, max_examples=40)
@given(doc=small_orchestrations())
def test_generated_orchestrations_run_to_completion(personas, doc):
    items = [("answer.yaml", ANSWER), ("emit.yaml", EMIT), ("generated.yaml", doc)]
    result = validate_documents(items)
    assert result.ok, [str(e) for e in result.errors]
    definitions_import(items=items)
    run = run_launch(orchestration="generated")
    # alice does whatever is assigned to her, until nothing is left.
    for _ in range(50):
        item = WorkItem.objects.filter(run=run, status=WorkItemStatus.ASSIGNED).first()
        if item is None:
            break
        workitem_complete(item=item, user=personas.alice, data={"n": str(len(item.step_run.key))})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, (run.error, doc)
    assert set(StageRun.objects.filter(run=run).values_list("status", flat=True)) == {"completed"}
    steps = {s.key: s for s in StepRun.objects.filter(run=run)}
    by_key = {t["key"]: (st_, t) for st_ in doc["stages"] for t in st_["steps"]}
    for key, sr in steps.items():
        stage_def, step_def = by_key[key]
        if sr.status == "discontinued":
            assert "exit" in stage_def  # only an exit condition cuts steps short
            continue
        assert sr.status == "completed", (key, sr.status, sr.error)
        if step_def["kind"] == "background":
            assert sr.outputs["doubled"] == 2 * sr.inputs["n"]
        else:
            assert sr.outputs == {"n": len(key)}
        for dep in step_def.get("start", {}).get("after", []):
            assert steps[dep].status == "completed"
            assert steps[dep].ended_at <= sr.started_at
