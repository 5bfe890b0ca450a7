"""Small builders and readers shared by the engine tests (test_engine__*.py).

Definitions are written as plain dicts, the way an admin writes YAML; the readers return what a
user would look at on the run page: statuses, event names, variables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from orchestration.models import Run, RunEvent, StageRun, StepRun
from orchestration.services import run_launch
from workitems.models import WorkItem, WorkItemStatus


def bg(key: str, flow: str, **extra: Any) -> dict[str, Any]:
    """A background step."""
    return {"key": key, "kind": "background", "flow": flow, **extra}


def task(key: str, flow: str = "review", *, user: str = "alice", **extra: Any) -> dict[str, Any]:
    """An interactive step assigned to `user` (override with assignee=...)."""
    extra.setdefault("assignee", {"user": user})
    return {"key": key, "kind": "interactive", "flow": flow, **extra}


def stage(key: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": key, "steps": list(steps), **extra}


def failing_flow(api_name: str = "broken") -> dict[str, Any]:
    """An autolaunched flow that always fails at run time (division by zero)."""
    return {
        "kind": "autolaunched_flow",
        "api_name": api_name,
        "outputs": [{"name": "x", "type": "number"}],
        "actions": [{"type": "set_outputs", "values": {"x": "1 / 0"}}],
    }


def launch(name: str = "proc", *, record: Any = None, **kwargs: Any) -> Run:
    run = run_launch(orchestration=name, record=record, **kwargs)
    run.refresh_from_db()
    return run


def fresh(run: Run) -> Run:
    run.refresh_from_db()
    return run


def events(run: Run, *, prefix: str = "orchestration.") -> list[str]:
    """Event names in order, without the `orchestration.` prefix."""
    return [
        n.removeprefix(prefix)
        for n in RunEvent.objects.filter(run=run).order_by("id").values_list("name", flat=True)
    ]


def stages(run: Run) -> list[tuple[str, str]]:
    return list(StageRun.objects.filter(run=run).order_by("id").values_list("key", "status"))


def step(run: Run, key: str) -> StepRun:
    """The latest run of step `key` (a rework loop runs a step more than once)."""
    return StepRun.objects.filter(run=run, key=key).order_by("-id").first()  # type: ignore[return-value]


def step_status(run: Run) -> dict[str, str]:
    """Status of the latest run of every step started so far."""
    out: dict[str, str] = {}
    for key, status in StepRun.objects.filter(run=run).order_by("id").values_list("key", "status"):
        out[key] = status
    return out


def open_item(run: Run, step_key: str) -> WorkItem:
    return WorkItem.objects.get(run=run, step_run__key=step_key, status=WorkItemStatus.ASSIGNED)


@contextmanager
def lost_messages() -> Iterator[list[tuple[int, int]]]:
    """Background-step messages are swallowed, as if the broker lost them; yields what was sent."""
    sent: list[tuple[int, int]] = []

    def swallow(step_run_id: int, attempt: int, *, countdown: float = 0) -> None:
        sent.append((step_run_id, attempt))

    with mock.patch("orchestration.services.background.dispatch_step", swallow):
        yield sent
