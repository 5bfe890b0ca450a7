"""What the engine state machine (test_engine_state_machine.py) drives: its definitions, the
Python flow that fails on demand, who belongs to which group and queue, and a race helper.

The definitions cover parallel and sequential steps, user, group and queue assignees,
background steps that fail while their record's status is 'fail' (retried once, then in error),
a decision that routes back to an earlier stage (a rework loop), a fault path, a stage that exits
on a condition, and a record-triggered start."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from django.db import connection

from orchestration.registry import FlowContext, register_flow
from tests.factories import UserFactory, load, make_personas, orchestration, screen_flow

FLAKY = "sm_flaky"
REVIEW = "sm_review"


@register_flow(FLAKY)
def flaky(ctx: FlowContext) -> dict[str, Any]:
    """A registered Python flow that raises when its input says so (the step's input mapping
    reads the record's status, so an admin can fix the record and retry)."""
    if ctx.inputs.get("fail"):
        raise RuntimeError("asked to fail")
    return {"score": 7}


def _task(key: str, **extra: Any) -> dict[str, Any]:
    # No assignment emails: they are not what this machine checks, and they cost a file each.
    return {"key": key, "kind": "interactive", "flow": REVIEW, "email": {"enabled": False}, **extra}


def _bg(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "background",
        "flow": FLAKY,
        "inputs": {"fail": "record.status == 'fail'"},
        **extra,
    }


DEFINITIONS: list[dict[str, Any]] = [
    screen_flow(REVIEW),  # approved (boolean), comment (text)
    {
        "kind": "autolaunched_flow",
        "api_name": FLAKY,
        "inputs": [{"name": "fail", "type": "boolean"}],
        "outputs": [{"name": "score", "type": "number"}],
        "actions": [{"type": "call", "name": FLAKY}],
    },
    orchestration(
        "sm_par",
        start={"type": "autolaunched", "record_type": "case", "inputs": [{"name": "note", "type": "text"}]},
        variables=[{"name": "score", "type": "number"}, {"name": "verdict", "type": "boolean"}],
        stages=[
            {
                # Parallel: a user, a group and a background step; a failure takes the fault path.
                "key": "work",
                "steps": [
                    _task("a", assignee={"user": "alice"}),
                    _task("g", assignee={"group": "engineering"}),
                    _bg("b", outputs={"score": "score"}, max_attempts=2),
                ],
                "fault_path": "recover",
            },
            {
                # Sequential: a queue item, then the user who decides.
                "key": "review",
                "steps": [
                    _task("q", assignee={"queue": "eng_queue"}),
                    _task(
                        "u", assignee={"user": "bob"}, start={"after": ["q"]}, outputs={"verdict": "approved"}
                    ),
                ],
                "next": {
                    "outcomes": [{"label": "approved", "when": "vars.verdict", "goto": "end"}],
                    "default": "work",
                },
            },
            {"key": "recover", "steps": [_task("fix", assignee={"user": "alice"})], "next": "review"},
        ],
    ),
    orchestration(
        "sm_rec",
        start={
            "type": "record",
            "record_type": "case",
            "on": "create_or_update",
            "condition": "record.severity == 'High'",
            "run": "changed_to_meet",
        },
        stages=[
            # No fault path: a failed background step puts the run in error (retry / skip).
            {"key": "triage", "steps": [_task("t", assignee={"queue": "triage"}), _bg("c", max_attempts=1)]},
            {
                "key": "wait",
                "steps": [
                    _task("w", assignee={"group": "support"}, start={"condition": "record.status == 'go'"})
                ],
                "exit": {"condition": "record.status == 'closed'"},
            },
        ],
    ),
]

# The assignee each step's work item starts with (reassignment moves it).
INITIAL_ASSIGNEE: dict[str, tuple[str, str]] = {
    "a": ("user", "alice"),
    "g": ("group", "engineering"),
    "q": ("queue", "eng_queue"),
    "u": ("user", "bob"),
    "fix": ("user", "alice"),
    "t": ("queue", "triage"),
    "w": ("group", "support"),
}
# Declared names, for the "variables only from declared outputs" invariant.
VARIABLES = {"sm_par": {"score", "verdict", "note"}, "sm_rec": set()}
FLOW_OUTPUTS = {REVIEW: {"approved", "comment"}, FLAKY: {"score"}}
STEP_FLOWS = {
    "a": REVIEW,
    "g": REVIEW,
    "b": FLAKY,
    "q": REVIEW,
    "u": REVIEW,
    "fix": REVIEW,
    "t": REVIEW,
    "c": FLAKY,
    "w": REVIEW,
}
# Stage keys in order, and where each stage may lead (its routing and its fault path).
STAGES = {"sm_par": ["work", "review", "recover"], "sm_rec": ["triage", "wait"]}
ROUTES: dict[tuple[str, str], dict[str, set[str]]] = {
    ("sm_par", "work"): {"completed": {"review"}, "error": {"recover"}},
    ("sm_par", "review"): {"completed": {"end", "work"}, "error": set()},
    ("sm_par", "recover"): {"completed": {"review"}, "error": set()},
    ("sm_rec", "triage"): {"completed": {"wait"}, "error": set()},
    ("sm_rec", "wait"): {"completed": {"end"}, "error": set()},
}

# Membership as make_personas() and setup() make it: who may act on an item of each assignee.
GROUPS = {"engineering": {"alice", "dave"}, "support": {"bob"}, "managers": {"charlie"}}
QUEUES = {"triage": {"bob"}, "eng_queue": {"alice", "dave"}}
ASSIGNEES: list[tuple[str, str]] = [
    ("user", "alice"),
    ("user", "bob"),
    ("user", "dave"),
    ("group", "engineering"),
    ("group", "support"),
    ("queue", "triage"),
    ("queue", "eng_queue"),
]
WORKERS = ["alice", "bob", "dave", "charlie"]


def may_act(assignee: tuple[str, str], username: str) -> bool:
    kind, name = assignee
    if kind == "user":
        return name == username
    return username in (GROUPS if kind == "group" else QUEUES)[name]


def setup() -> dict[str, Any]:
    """Personas (plus dave, a second engineer, so that two people can race on a group item)
    and the definitions. Returns the users by name."""
    p = make_personas()
    dave: Any = UserFactory(username="dave")
    dave.groups.add(p.engineering)
    load(*DEFINITIONS)
    return {"alice": p.alice, "bob": p.bob, "charlie": p.charlie, "dave": dave, "admin": p.admin}


def race(*fns: Callable[[], Any]) -> list[Any]:
    """Call each function in its own thread (its own database connection), released together;
    return their results or the exceptions they raised (with the traceback kept)."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)

    def worker(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = fns[i]()
        except Exception as exc:
            exc.add_note("".join(traceback.format_exception(exc)))
            results[i] = exc
        finally:
            # Each thread opened its own connection: close it, or the test database cannot be
            # dropped at the end of the session.
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a racing thread is stuck (a lock never released?)"
    return results
