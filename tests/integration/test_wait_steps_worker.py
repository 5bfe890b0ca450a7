"""A wait step outlives the worker: its resume time is on its step run, not in a worker's memory,
so a worker killed while the step waits and a new one started later complete it, once."""

from __future__ import annotations

import datetime as dt
import time

from django.utils import timezone

from orchestration.models import Run, RunEvent, RunStatus, StepRun, StepStatus
from orchestration.services import run_launch
from tests.factories import auto_flow, load, make_case, orchestration

from .conftest import WorkerControl, wait_for


def test_a_wait_step_completes_once_after_the_worker_is_killed_and_restarted(
    personas, celery_worker_control: WorkerControl
):
    from orchestration.tasks import sweep

    load(
        auto_flow("calc", outputs={"x": "1"}),
        orchestration(
            "pause",
            stages=[
                {
                    "key": "s",
                    "steps": [
                        {"key": "before", "kind": "background", "flow": "calc"},
                        {"key": "w", "kind": "wait", "wait": {"for": "1m"}, "start": {"after": ["before"]}},
                        {"key": "after", "kind": "background", "flow": "calc", "start": {"after": ["w"]}},
                    ],
                }
            ],
        ),
    )
    celery_worker_control.start()
    run = run_launch(orchestration="pause", record=make_case())
    # The worker ran the first step; the wait began and stored when it resumes.
    w = wait_for(lambda: StepRun.objects.filter(run=run, key="w", status=StepStatus.IN_PROGRESS).first())
    assert w.wake_at is not None

    celery_worker_control.stop(kill=True)  # a crash while the step waits
    # Its minute passes while no worker is up (moved, rather than waited for).
    StepRun.objects.filter(pk=w.pk).update(wake_at=timezone.now() - dt.timedelta(seconds=1))
    time.sleep(0.5)
    assert StepRun.objects.get(pk=w.pk).status == StepStatus.IN_PROGRESS  # nobody was there

    celery_worker_control.start()
    # The beat's sweep, sent three times at once (two beats, a slow sweep): the lock lets one
    # sweep through at a time, and the run lock lets one completion through.
    for _ in range(3):
        sweep.delay()
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.COMPLETED)
    for _ in range(2):
        sweep.delay()
    time.sleep(1.0)  # let the late sweeps finish: they must find nothing to do
    completed = RunEvent.objects.filter(run=run, name="orchestration.step.completed")
    assert completed.filter(step="w").count() == 1
    assert completed.filter(step="after").count() == 1
    assert RunEvent.objects.filter(run=run, name="orchestration.step.started", step="w").count() == 1
