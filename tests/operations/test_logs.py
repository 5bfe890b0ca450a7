"""Every engine log line names the run (and the step, work item and task) it is about; with
LOG_FORMAT=json each line is one JSON object with those fields."""

from __future__ import annotations

import json
import logging

import pytest

from config.logformat import JsonFormatter
from orchestration import logcontext
from orchestration.models import StepRun
from orchestration.registry import register_flow
from tests.factories import load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, launch, open_item, stage, task
from workitems.services import workitem_complete

pytestmark = pytest.mark.django_db


@register_flow("ops_explodes")
def _explodes(ctx):  # type: ignore[no-untyped-def]
    raise RuntimeError("the ledger is closed")


def _python_flow(name: str) -> dict:
    return {
        "kind": "autolaunched_flow",
        "api_name": name,
        "outputs": [],
        "actions": [{"type": "call", "name": "ops_explodes"}],
    }


@pytest.fixture
def records(caplog):
    """The records logged, with the context filter the console handler has (settings.LOGGING)."""
    caplog.handler.addFilter(logcontext.ContextFilter())
    caplog.set_level(logging.DEBUG, logger="orchestration")
    caplog.set_level(logging.DEBUG, logger="workitems")
    return caplog


def test_the_console_handler_has_the_context_filter_and_the_chosen_format():
    from django.conf import settings

    handler = settings.LOGGING["handlers"]["console"]
    assert handler["filters"] == ["context"]
    assert settings.LOGGING["filters"]["context"]["()"] == "orchestration.logcontext.ContextFilter"
    assert handler["formatter"] in {"text", "json"}


@pytest.mark.django_db(transaction=True)  # background tasks run on commit
def test_a_failing_background_step_logs_with_its_run_step_and_task(personas, records):
    load(_python_flow("boom"), orchestration(stages=[stage("s", bg("b", "boom", max_attempts=2))]))
    run = launch(record=make_case())
    sr = StepRun.objects.get(run=run, key="b")
    engine_lines = [r for r in records.records if r.name.startswith("orchestration")]
    # The exception (twice: two attempts), the retry, the step's error and the run's error.
    failures = [r for r in engine_lines if r.name.startswith("orchestration.services")]
    assert len(failures) == 2
    assert all(r.exc_info and "the ledger is closed" in str(r.exc_info[1]) for r in failures)
    names = [r.event for r in engine_lines if r.name == "orchestration.events"]
    assert names == [
        "orchestration.run.started",
        "orchestration.stage.started",
        "orchestration.step.started",
        "orchestration.step.retry_scheduled",
        "orchestration.step.error",
        "orchestration.run.error",
    ]
    assert {r.run_id for r in engine_lines} == {run.pk}
    assert {r.step_run_id for r in failures} == {sr.pk}
    assert all(r.task_id for r in failures), "the Celery task's id is on every line of the task"
    levels = {r.event: r.levelname for r in engine_lines if r.name == "orchestration.events"}
    assert levels["orchestration.run.started"] == "INFO"
    assert levels["orchestration.step.retry_scheduled"] == "WARNING"
    assert levels["orchestration.run.error"] == "WARNING"


def test_completing_a_work_item_logs_with_the_item_and_its_run(personas, records):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("t", "review", user="alice"))]))
    run = launch(record=make_case())
    item = open_item(run, "t")
    records.clear()
    workitem_complete(item=item, user=personas.alice, data={"approved": "on", "comment": "fine"})
    lines = [r for r in records.records if r.name == "orchestration.events"]
    assert [r.event for r in lines] == [
        "orchestration.step.completed",
        "orchestration.stage.completed",
        "orchestration.run.completed",
    ]
    assert {(r.run_id, r.work_item_id) for r in lines} == {(run.pk, item.pk)}
    assert logcontext.current() == {}, "nothing stays bound after the service returns"


def test_json_lines_carry_the_fields():
    formatter = JsonFormatter()
    flt = logcontext.ContextFilter()
    with logcontext.bind(run_id=7, step="review", work_item_id=3):
        record = logging.LogRecord(
            "orchestration.events", logging.INFO, __file__, 1, "step %s", ("done",), None
        )
        flt.filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "step done"
    assert (line["level"], line["logger"]) == ("INFO", "orchestration.events")
    assert (line["run_id"], line["step"], line["work_item_id"]) == (7, "review", 3)
    assert "step_run_id" not in line and "task_id" not in line
    assert record.context == " [run=7 step=review work_item=3]"


def test_bindings_nest_and_unwind():
    with logcontext.bind(run_id=1):
        with logcontext.bind(step="a", run_id=None):
            assert logcontext.current() == {"run_id": 1, "step": "a"}
        assert logcontext.current() == {"run_id": 1}
    assert logcontext.current() == {}


def test_log_format_json_writes_json_lines(tmp_path):
    """The real settings with LOG_FORMAT=json, in a fresh process: a warning becomes one JSON line."""
    import os
    import subprocess
    import sys

    code = (
        "import django, logging; django.setup();"
        "from orchestration import logcontext;"
        "ctx = logcontext.bind(run_id=42); ctx.__enter__();"
        "logging.getLogger('orchestration.engine').warning('stuck at %s', 'review')"
    )
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out.stderr
    assert lines[0]["message"] == "stuck at review"
    assert lines[0]["run_id"] == 42
    assert lines[0]["level"] == "WARNING"


@pytest.mark.parametrize(
    ("logger", "message"),
    [
        ("celery.beat", "Scheduler: Sending due task orchestration-sweep (orchestration.tasks.sweep)"),
        ("celery.worker.strategy", "Task orchestration.tasks.sweep[1f2e] received"),
        ("celery.app.trace", "Task orchestration.tasks.sweep[1f2e] succeeded in 0.01s: {'skipped': False}"),
    ],
)
def test_the_sweeps_routine_celery_lines_are_debug(logger, message, settings, caplog):
    """Three INFO lines every 30 s said nothing: they are at DEBUG unless asked for."""
    import logging

    from orchestration.logcontext import RoutineSweepFilter

    def passes(record_message: str, level: int = logging.INFO) -> bool:
        record = logging.LogRecord(logger, level, __file__, 1, record_message, None, None)
        return RoutineSweepFilter().filter(record)

    root = logging.getLogger()
    old = root.level
    try:
        root.setLevel(logging.INFO)
        settings.ORCHESTRATION_LOG_SWEEP_TASKS = False
        assert not passes(message)
        assert passes("Task orchestration.tasks.run_background_step[9] succeeded in 0.01s: 'completed'")
        assert passes(message, logging.WARNING)
        root.setLevel(logging.DEBUG)
        assert passes(message)
        root.setLevel(logging.INFO)
        settings.ORCHESTRATION_LOG_SWEEP_TASKS = True
        assert passes(message)
    finally:
        root.setLevel(old)
