"""The engine with neither records nor workitems installed, and a fake step kind in place of
the interactive one: what `orchestration` promises to stand alone (registry.py)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction

from orchestration import engine, registry
from orchestration.models import Run, RunEvent, RunStatus, StageRun, StepRun
from orchestration.services import definitions_import, run_cancel, run_launch, step_complete_locked

pytestmark = pytest.mark.django_db


class FakeKind:
    """Work done outside the engine: a list of started and stopped step runs."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.stopped: list[tuple[int, str]] = []

    def start(self, *, run: Run, step_run: StepRun, step: Any, context: dict[str, Any]) -> None:
        self.started.append(step_run.pk)

    def stop(self, *, run: Run, step_runs: list[StepRun], reason: str) -> None:
        self.stopped.extend((s.pk, reason) for s in step_runs)


@pytest.fixture
def kind(monkeypatch: pytest.MonkeyPatch) -> FakeKind:
    fake = FakeKind()
    monkeypatch.setitem(registry.STEP_KINDS, "interactive", fake)
    return fake


def _load() -> None:
    definitions_import(
        items=[
            (
                "form.yaml",
                {
                    "kind": "screen_flow",
                    "api_name": "form",
                    "screens": [{"key": "s", "fields": [{"name": "ok", "type": "boolean"}]}],
                },
            ),
            (
                "compute.yaml",
                {
                    "kind": "autolaunched_flow",
                    "api_name": "compute",
                    "outputs": [{"name": "n", "type": "number"}],
                    "actions": [{"type": "set_outputs", "values": {"n": "inputs.base * 2"}}],
                    "inputs": [{"name": "base", "type": "number"}],
                },
            ),
            (
                "alone.yaml",
                {
                    "kind": "orchestration",
                    "api_name": "alone",
                    "start": {"type": "autolaunched", "inputs": [{"name": "base", "type": "number"}]},
                    "variables": [{"name": "n", "type": "number"}],
                    "stages": [
                        {
                            "key": "work",
                            "steps": [
                                {
                                    "key": "ask",
                                    "kind": "interactive",
                                    "flow": "form",
                                    "assignee": {"user": "x"},
                                }
                            ],
                        },
                        {
                            "key": "compute",
                            "steps": [
                                {
                                    "key": "double",
                                    "kind": "background",
                                    "flow": "compute",
                                    "run": "inline",
                                    "inputs": {"base": "inputs.base"},
                                    "outputs": {"n": "n"},
                                }
                            ],
                        },
                    ],
                },
            ),
        ]
    )


def _complete(run: Run, key: str) -> None:
    with transaction.atomic():
        locked = engine.lock_run(run.pk)
        sr = StepRun.objects.get(run=run, key=key)
        step_complete_locked(run=locked, step_run=sr, outputs={}, actor_id=None)


def test_neither_records_nor_workitems_is_installed_or_imported() -> None:
    assert not apps.is_installed("records") and not apps.is_installed("workitems")
    assert not {"records", "workitems"} & {name.split(".")[0] for name in sys.modules}


def test_a_run_goes_through_a_fake_step_kind_and_an_inline_step_to_the_end(kind: FakeKind) -> None:
    _load()
    run = run_launch(orchestration="alone", inputs={"base": 21})
    ask = StepRun.objects.get(run=run, key="ask")
    assert kind.started == [ask.pk]
    _complete(run, "ask")
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.variables["n"] == 42
    assert list(StageRun.objects.filter(run=run).order_by("id").values_list("key", "status")) == [
        ("work", "completed"),
        ("compute", "completed"),
    ]
    names = list(RunEvent.objects.filter(run=run).order_by("id").values_list("name", flat=True))
    assert names == [
        "orchestration.run.started",
        "orchestration.stage.started",
        "orchestration.step.started",
        "orchestration.step.completed",
        "orchestration.stage.completed",
        "orchestration.stage.started",
        "orchestration.step.started",
        "orchestration.step.completed",
        "orchestration.stage.completed",
        "orchestration.run.completed",
    ]


def test_canceling_stops_the_fake_kinds_work(kind: FakeKind) -> None:
    _load()
    run = run_launch(orchestration="alone", inputs={"base": 1})
    run_cancel(run_id=run.pk, reason="not needed")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    ask = StepRun.objects.get(run=run, key="ask")
    assert ask.status == "discontinued"
    assert kind.stopped == [(ask.pk, "stage canceled")]


def test_the_run_pages_selectors_work_without_work_holders(kind: FakeKind) -> None:
    from orchestration import selectors

    _load()
    run = run_launch(orchestration="alone", inputs={"base": 1})
    assert registry.WORK_HOLDERS == []
    assert selectors.step_assignees(run) == {}
    assert registry.record_model_label() is None
