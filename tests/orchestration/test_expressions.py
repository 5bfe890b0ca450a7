"""Expressions: checked at import (syntax, known names, no dunder access), evaluated in Jinja's
sandbox at run time, and failures become readable ExpressionErrors that the engine stores on
the step or run — never an exception for whoever triggered the run."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from orchestration import expressions
from orchestration.expressions import ExpressionError, check, evaluate, render
from orchestration.models import RunStatus, StepStatus

CTX = {
    "record": {"name": "ACME", "amount": Decimal("12.5"), "severity": "High", "tags": ["a", "b"]},
    "vars": {"approved": True, "limit": 10},
    "steps": {"review": {"score": 7}},
    "inputs": {},
    "run": {"id": 1},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("record.amount > 10", True),
        ("record.amount * 2", Decimal("25.0")),
        ("vars.approved and steps.review.score >= 7", True),
        ("record.name ~ '/' ~ record.severity", "ACME/High"),
        ("record.tags | length", 2),
        ("'b' in record.tags", True),
        ("record.missing", None),
        ("record.missing.deeper", None),
        ("steps.not_run_yet.score", None),
        ("'big' if record.amount > 100 else 'small'", "small"),
        ("days(2)", dt.timedelta(days=2)),
    ],
)
def test_expressions_evaluate_over_the_run_context(source, expected):
    assert check(source) is None
    assert evaluate(source, CTX) == expected


def test_time_helpers():
    assert isinstance(evaluate("now()", {}), dt.datetime)
    assert evaluate("today() - days(1) < today()", {}) is True


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("record.amount >", "invalid expression"),
        ("(record.amount", "invalid expression"),
        ("record.amount }} {{ vars.x", "invalid expression"),
        ("record.amount|no_such_filter", "No filter named 'no_such_filter'"),
        ("record.amount is no_such_test", "No test named 'no_such_test'"),
        ("customer.amount > 1", "unknown name customer"),
        ("range(10)", "unknown name range"),
        ("record.__class__", "unsafe expression"),
        ("().__class__.__bases__", "unsafe expression"),
        ("record.mro", "unsafe expression"),
        ("", "non-empty"),
        ("   ", "non-empty"),
    ],
)
def test_bad_expressions_are_refused_at_import_and_at_run_time(source, reason):
    assert reason in (check(source) or "")
    with pytest.raises(ExpressionError, match=reason):
        evaluate(source, CTX)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("1 / 0", "ZeroDivisionError: division by zero"),
        ("record.amount / 0", "ZeroDivisionError: division by zero"),
        ("record.missing > 3", "UndefinedError"),
        ("record.amount > 'x'", "TypeError"),
        ("record.name.nope()", "UndefinedError"),
        ("record.name + 1", "TypeError"),
        ("record.tags[5]", None),  # out of range is undefined, not an error
        ("[1, 2].append(3)", "SecurityError"),  # no mutation of values in the sandbox
        ("'a' * 1000000", "SecurityError"),
        ("7 ** 99999999", "SecurityError"),
        ("days(10 ** 12)", "OverflowError"),
    ],
)
def test_runtime_failures_are_expression_errors_with_a_reason(source, reason):
    assert check(source) is None  # all of these are well-formed
    start = time.monotonic()
    if reason is None:
        assert evaluate(source, CTX) is None
        return
    with pytest.raises(ExpressionError) as exc:
        evaluate(source, CTX)
    assert reason in str(exc.value)
    assert source in str(exc.value)  # the message says which expression failed
    assert time.monotonic() - start < 2  # refused, not computed


def test_the_sandbox_blocks_attribute_escapes_spelled_to_dodge_the_import_check():
    sneaky = "record | attr('_' ~ '_class_' ~ '_')"
    assert check(sneaky) is None  # no literal "__" to see at import
    assert evaluate(sneaky, CTX) is None  # but the sandbox gives nothing back
    with pytest.raises(ExpressionError, match=r"SecurityError|UndefinedError"):
        evaluate("(record | attr('_' ~ '_class_' ~ '_'))()", CTX)
    # str.format goes through the sandbox's formatter: the unsafe attribute formats as nothing.
    assert evaluate("('{0._' ~ '_class_' ~ '_}').format(record)", CTX) == ""
    assert evaluate("('{0.real}').format(5)", CTX) == "5"


def test_templates_render_in_the_sandbox():
    assert render("Hello {{ record.name }}, {{ vars.limit * 2 }}", CTX) == "Hello ACME, 20"
    assert render("{{ record.name }}", {"record": {"name": "<b>"}}, html=True) == "&lt;b&gt;"
    assert check("{{ record.__class__ }}", template=True).startswith("unsafe")
    with pytest.raises(ExpressionError, match="template: ZeroDivisionError"):
        render("{{ 1 / 0 }}", {})


def test_compiled_expressions_are_cached():
    expressions._compiled.cache_clear()
    evaluate("vars.limit + 1", CTX)
    evaluate("vars.limit + 1", {"vars": {"limit": 1}})
    assert expressions._compiled.cache_info().hits == 1


# --- in the engine -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("record.amount / 0 > 1", "division by zero"),
        ("record.name.nope()", "UndefinedError"),
        ("record.amount > 'x'", "TypeError"),
    ],
)
def test_a_failing_start_condition_is_stored_on_the_step_not_raised(personas, condition, reason):
    from tests.factories import load, make_case, orchestration, screen_flow

    from .engine_support import fresh, launch, stage, step, task

    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("ok"), task("bad", start={"condition": condition}))]),
    )
    run = launch(record=make_case(amount="5"))  # does not raise
    bad = step(run, "bad")
    assert bad.status == StepStatus.ERROR
    assert reason in bad.error and condition in bad.error
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert run.error.startswith("bad: ")
    assert step(run, "ok").status == StepStatus.IN_PROGRESS  # other work is not lost


@pytest.mark.django_db(transaction=True)
def test_a_failing_expression_inside_a_background_flow_is_stored_on_the_step(personas):
    from tests.factories import load, make_case, orchestration

    from .engine_support import bg, fresh, launch, stage, step

    load(
        {
            "kind": "autolaunched_flow",
            "api_name": "calc",
            "outputs": [{"name": "x", "type": "text"}],
            "actions": [{"type": "set_outputs", "values": {"x": "record.name.nope()"}}],
        },
        orchestration(stages=[stage("s", bg("b", "calc", max_attempts=1))]),
    )
    run = launch(record=make_case())
    assert step(run, "b").error.startswith("actions[0] (set_outputs): 'record.name.nope()': UndefinedError")
    assert fresh(run).status == RunStatus.ERROR
