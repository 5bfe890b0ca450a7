"""Idempotency keys are per logical effect: `step:<step run id>:a<action index>`, the same on
every attempt of the step run (and after an admin's retry of it), different for two actions of
one flow. A retry after a failure repeats the HTTP call under the first try's key."""

# ruff: noqa: F811  (the receiver fixture is imported from tests/faults/support_effects.py)
from __future__ import annotations

from typing import Any

import pytest

from orchestration.models import StepStatus
from orchestration.registry import FlowContext, register_flow
from orchestration.services import step_retry
from tests.factories import auto_flow, load, make_case, orchestration
from tests.faults.support_effects import receiver  # noqa: F401

from .engine_support import bg, launch, stage, step

pytestmark = pytest.mark.django_db(transaction=True)

SEEN: list[tuple[str, str]] = []  # (idempotency_key, action_key) of each `remember_key` call
FAILURES: list[int] = [0]  # how many more times `fail_while_asked` fails


@register_flow("remember_key")
def remember_key(ctx: FlowContext) -> dict[str, Any]:
    SEEN.append((ctx.idempotency_key, ctx.action_key))
    return {}


@register_flow("fail_while_asked")
def fail_while_asked(ctx: FlowContext) -> dict[str, Any]:
    if FAILURES[0] > 0:
        FAILURES[0] -= 1
        raise RuntimeError("the system on the other side is down")
    return {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    SEEN.clear()
    FAILURES[0] = 0


def keys_flow() -> dict[str, Any]:
    call = {"type": "call", "name": "remember_key"}
    return auto_flow(
        "keys", actions=[call, call, {"type": "call", "name": "fail_while_asked"}, *auto_flow("x")["actions"]]
    )


def test_every_attempt_of_a_step_run_has_the_same_keys_and_two_actions_differ(personas):
    FAILURES[0] = 2
    load(keys_flow(), orchestration(stages=[stage("s", bg("b", "keys", max_attempts=3))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    assert (sr.status, sr.attempts) == (StepStatus.COMPLETED, 3)
    first, second = (f"step:{sr.pk}", f"step:{sr.pk}:a0"), (f"step:{sr.pk}", f"step:{sr.pk}:a1")
    assert [first, second] * 3 == SEEN


def test_an_admins_retry_of_a_failed_step_keeps_its_keys(personas):
    """Same step run, same effect: a receiver that already applied the call drops the retry's.
    (A stage entered again, e.g. by a rework loop, has new step runs and new keys.)"""
    FAILURES[0] = 1
    load(keys_flow(), orchestration(stages=[stage("s", bg("b", "keys", max_attempts=1))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    assert sr.status == StepStatus.ERROR
    step_retry(step_run_id=sr.pk, actor=personas.admin)
    sr.refresh_from_db()
    assert (sr.status, sr.attempts) == (StepStatus.COMPLETED, 2)
    assert {k for k, _ in SEEN} == {f"step:{sr.pk}"}
    assert [a for _, a in SEEN] == [f"step:{sr.pk}:a0", f"step:{sr.pk}:a1"] * 2


def test_a_retried_http_call_carries_the_first_tries_key(personas, receiver):
    FAILURES[0] = 1
    flow = auto_flow(
        "notify",
        actions=[
            {"type": "http", "url": f"'{receiver.url}/hook'", "json": {"run": "run.id"}},
            {"type": "http", "url": f"'{receiver.url}/other'", "json": {"run": "run.id"}},
            {"type": "call", "name": "fail_while_asked"},
            *auto_flow("x")["actions"],
        ],
    )
    load(flow, orchestration(stages=[stage("s", bg("b", "notify", max_attempts=2))]))
    run = launch(record=make_case())
    sr = step(run, "b")
    assert (sr.status, sr.attempts) == (StepStatus.COMPLETED, 2)
    assert [(r["path"], r["key"]) for r in receiver.requests] == [
        ("/hook", f"step:{sr.pk}:a0"),
        ("/other", f"step:{sr.pk}:a1"),
    ] * 2
    assert sorted(receiver.applied) == [f"step:{sr.pk}:a0", f"step:{sr.pk}:a1"]
