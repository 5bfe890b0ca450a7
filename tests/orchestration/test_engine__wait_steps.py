"""Wait steps (`kind: wait`): a step that waits for a duration, until a date, or until the record
meets a condition, then completes through the engine like any other step (orchestration/waits.py).
The clock is the test's (timezone.now monkeypatched), so "not before" and "when" are exact."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from orchestration import transitions
from orchestration.models import RunEvent, RunStatus, StepRun, StepStatus
from orchestration.services import ActionNotAllowed, step_resume, sweep
from orchestration.validation import validate_documents
from records.services import record_update
from tests.clock import Clock
from tests.factories import auto_flow, grant, load, make_case, orchestration

from .engine_support import bg, events, fresh, launch, stage, step, step_status

pytestmark = pytest.mark.django_db(transaction=True)

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "kind": "business_calendar",
    "api_name": "office",
    "time_zone": "Europe/Berlin",
    "working_days": ["mon", "tue", "wed", "thu", "fri"],
    "hours": {"start": "09:00", "end": "17:00"},
    "holidays": ["2026-12-25"],
}


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def wait(key: str, **what: str) -> dict:
    return {"key": key, "kind": "wait", "wait": what}


def _load(*steps: dict, calendar: str | None = None, fault_path: str | None = None) -> None:
    doc = orchestration(
        stages=[
            stage("hold", *steps, **({"fault_path": fault_path} if fault_path else {})),
            stage("next", bg("b", "calc", run="inline")),
            *([stage(fault_path, bg("f", "calc", run="inline"), next="end")] if fault_path else []),
        ]
    )
    if calendar:
        doc["calendar"] = calendar
    load(OFFICE, auto_flow("calc", outputs={"x": "1"}), doc)


def completed(run, key: str) -> int:  # type: ignore[no-untyped-def]
    return RunEvent.objects.filter(run=run, step=key, name="orchestration.step.completed").count()


def test_a_duration_wait_resumes_when_the_clock_passes_and_not_before(personas, monkeypatch):
    clock = Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", **{"for": "2h"}))
    run = launch(record=make_case())
    sr = step(run, "w")
    assert (sr.status, sr.wake_at) == (StepStatus.IN_PROGRESS, berlin(2026, 12, 28, 12, 0))
    assert step_status(run) == {"w": StepStatus.IN_PROGRESS}

    clock.at(berlin(2026, 12, 28, 11, 59))
    assert sweep().woken == 0
    assert step(run, "w").status == StepStatus.IN_PROGRESS

    clock.at(berlin(2026, 12, 28, 12, 0))
    assert sweep().woken == 1
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert step_status(run) == {"w": StepStatus.COMPLETED, "b": StepStatus.COMPLETED}
    assert completed(run, "w") == 1
    # Woken once: the next sweeps find nothing due.
    assert sweep().woken == 0
    assert completed(run, "w") == 1


def test_a_business_duration_counts_on_the_orchestrations_calendar(personas, monkeypatch):
    # Friday 16:30: half an hour that day, the other half on Monday (Christmas is a holiday).
    clock = Clock(monkeypatch, berlin(2026, 12, 24, 16, 30))
    _load(wait("w", **{"for": "1 business hour"}), calendar="office")
    run = launch(record=make_case())
    assert step(run, "w").wake_at == berlin(2026, 12, 28, 9, 30)
    clock.at(berlin(2026, 12, 27, 12, 0))
    assert sweep().woken == 0
    clock.at(berlin(2026, 12, 28, 9, 30))
    assert sweep().woken == 1
    assert fresh(run).status == RunStatus.COMPLETED


def test_a_wait_until_a_date_resumes_at_midnight_of_that_day_in_the_calendars_zone(personas, monkeypatch):
    clock = Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", until="'2026-12-30'", calendar="office"))
    run = launch(record=make_case())
    assert step(run, "w").wake_at == berlin(2026, 12, 30, 0, 0)
    clock.at(berlin(2026, 12, 29, 23, 59))
    assert sweep().woken == 0
    clock.at(berlin(2026, 12, 30, 0, 0))
    assert sweep().woken == 1
    assert fresh(run).status == RunStatus.COMPLETED


def test_a_wait_until_a_time_already_past_completes_as_it_starts(personas, monkeypatch):
    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", until="'2026-12-28T09:00:00+01:00'"))
    run = launch(record=make_case())
    assert run.status == RunStatus.COMPLETED
    assert events(run).count("step.completed") == 2  # the wait, then b


def test_a_wait_until_an_empty_value_fails_the_step(personas, monkeypatch):
    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", until="record.description"))
    run = launch(record=make_case())
    assert run.status == RunStatus.ERROR
    assert "wait until gave no date" in step(run, "w").error


def test_a_condition_is_rechecked_when_the_record_is_saved_without_any_sweep(personas, monkeypatch):
    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", condition="record.status == 'Approved'"))
    case = make_case(status="New")
    run = launch(record=case)
    assert step(run, "w").status == StepStatus.IN_PROGRESS
    assert fresh(run).recheck  # the sweep's re-check looks at it too (a safety net)

    record_update(record=case, values={"status": "Pending"})
    assert step(run, "w").status == StepStatus.IN_PROGRESS

    record_update(record=case, values={"status": "Approved"})
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert completed(run, "w") == 1
    assert not run.recheck


def test_a_condition_met_behind_the_engines_back_is_seen_by_the_sweep(personas, monkeypatch):
    from records.models import Record

    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", condition="record.status == 'Approved'"))
    case = make_case(status="New")
    run = launch(record=case)
    # A change that sent no signal (a data fix in SQL): only the sweep's re-check sees it.
    Record.objects.filter(pk=case.pk).update(data={**case.data, "status": "Approved"})
    assert step(run, "w").status == StepStatus.IN_PROGRESS
    report = sweep()
    assert report.rechecked == 1
    assert fresh(run).status == RunStatus.COMPLETED
    assert completed(run, "w") == 1


def test_a_condition_that_times_out_fails_the_step_and_takes_the_fault_path(personas, monkeypatch):
    clock = Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", condition="record.status == 'Approved'", timeout="3d"), fault_path="chase")
    run = launch(record=make_case(status="New"))
    assert step(run, "w").wake_at == berlin(2026, 12, 31, 10, 0)
    clock.at(berlin(2026, 12, 31, 9, 59))
    sweep()
    assert step(run, "w").status == StepStatus.IN_PROGRESS
    clock.at(berlin(2026, 12, 31, 10, 0))
    sweep()  # (its re-check of the condition sees the timeout first: the wake finds it done)
    run = fresh(run)
    w = step(run, "w")
    assert w.status == StepStatus.ERROR
    assert w.error == "timed out: 'record.status == 'Approved'' did not hold within 3d"
    assert step_status(run) == {"w": StepStatus.ERROR, "f": StepStatus.COMPLETED}
    assert run.status == RunStatus.COMPLETED  # through the fault path's stage
    assert "stage.error" in events(run)


def test_a_condition_timeout_without_a_fault_path_puts_the_run_in_error(personas, monkeypatch):
    clock = Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", condition="record.status == 'Approved'", timeout="1h"))
    run = launch(record=make_case(status="New"))
    clock.at(berlin(2026, 12, 28, 11, 0))
    sweep()
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert run.error.startswith("w: timed out")


def test_an_admin_resumes_a_waiting_step_now_and_others_may_not(personas, monkeypatch):
    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", **{"for": "3d"}))
    run = launch(record=make_case())
    sr = step(run, "w")
    assert transitions.actions_available(run, sr) == ["resume"]

    with pytest.raises(PermissionDenied):
        step_resume(step_run_id=sr.pk, actor=personas.alice, reason="impatient")
    assert step(run, "w").status == StepStatus.IN_PROGRESS

    grant(personas.charlie, "orchestration.retry_step")
    step_resume(step_run_id=sr.pk, actor=personas.charlie, reason="customer called")
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    requested = RunEvent.objects.get(run=run, name="orchestration.step.resume_requested")
    assert (requested.step, requested.actor_id, requested.payload["reason"]) == (
        "w",
        personas.charlie.pk,
        "customer called",
    )
    assert completed(run, "w") == 1
    # Done: not again, and the sweep has nothing to wake.
    with pytest.raises(ActionNotAllowed, match="only a wait step that is waiting can be resumed"):
        step_resume(step_run_id=sr.pk, actor=personas.charlie)
    assert sweep().woken == 0
    assert completed(run, "w") == 1


def test_the_run_page_shows_the_wait_and_resumes_it(personas, monkeypatch, client):
    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", **{"for": "2d"}))
    run = launch(record=make_case())
    sr = step(run, "w")
    grant(personas.charlie, "orchestration.view_run", "orchestration.retry_step")
    client.force_login(personas.charlie)
    page = client.get(reverse("monitor:run", args=[run.pk])).content.decode()
    # The step's card, and the graph's node (its words and its tooltip), in the site's zone (UTC).
    assert '<dd class="step-waiting">resumes 2026-12-30 09:00</dd>' in page
    assert "◷ resumes 2026-12-30 09:00</text>" in page
    assert page.count("resumes 2026-12-30 09:00") == 3
    assert reverse("monitor:step_action", args=[sr.pk, "resume"]) in page

    response = client.post(reverse("monitor:step_action", args=[sr.pk, "resume"]), {"reason": "now"})
    assert response.status_code == 302
    assert fresh(run).status == RunStatus.COMPLETED

    grant(personas.alice, "orchestration.view_run")
    client.force_login(personas.alice)
    assert client.post(reverse("monitor:step_action", args=[sr.pk, "resume"])).status_code == 403


def test_a_suspended_run_is_not_woken_until_it_is_resumed(personas, monkeypatch):
    from orchestration.services import run_resume, run_suspend

    clock = Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", **{"for": "1h"}))
    run = launch(record=make_case())
    run_suspend(run_id=run.pk)
    clock.at(berlin(2026, 12, 28, 12, 0))
    assert sweep().woken == 0
    assert step(run, "w").status == StepStatus.IN_PROGRESS
    run_resume(run_id=run.pk)  # its pass sees the time has come
    assert fresh(run).status == RunStatus.COMPLETED
    assert completed(run, "w") == 1


def test_a_wait_step_after_another_step_and_a_stage_ending_first(personas, monkeypatch):
    """`start: {after: …}` works for wait steps, and a stage that exits first discontinues it."""
    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    load(
        auto_flow("calc", outputs={"x": "1"}),
        orchestration(
            stages=[
                stage(
                    "hold",
                    bg("a", "calc", run="inline"),
                    {**wait("w", **{"for": "1d"}), "start": {"after": ["a"]}},
                    exit={"condition": "record.status == 'Closed'"},
                ),
            ]
        ),
    )
    case = make_case(status="New")
    run = launch(record=case)
    assert step_status(run) == {"a": StepStatus.COMPLETED, "w": StepStatus.IN_PROGRESS}
    record_update(record=case, values={"status": "Closed"})
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert step(run, "w").status == StepStatus.DISCONTINUED
    assert StepRun.objects.filter(run=run, kind="wait", status=StepStatus.IN_PROGRESS).count() == 0


def test_valid_wait_definitions_are_accepted(personas):
    doc = orchestration(
        stages=[
            stage(
                "s",
                wait("a", **{"for": "2h"}),
                wait("b", until="record.description", calendar="office"),
                {
                    **wait("c", condition="record.status == 'Approved'", timeout="3d"),
                    "start": {"after": ["a"]},
                },
            )
        ]
    )
    result = validate_documents([("cal.yaml", OFFICE), ("o.yaml", doc)])
    assert result.errors == []


def test_sweeps_and_admins_resuming_one_wait_at_once_complete_it_once(personas):
    """Threads, each with its own connection: five passes that see the wait due (sweeps, record
    saves) and five admins pressing "Resume now", released together."""
    import threading

    from django.db import connection, transaction

    from orchestration import engine

    _load(wait("w", **{"for": "1h"}))
    run = launch(record=make_case())
    sr = step(run, "w")
    StepRun.objects.filter(pk=sr.pk).update(wake_at=timezone.now() - dt.timedelta(seconds=1))
    grant(personas.charlie, "orchestration.retry_step")
    barrier = threading.Barrier(10)
    results: list[object] = [None] * 10

    def worker(i: int) -> None:
        try:
            barrier.wait()
            if i % 2:
                with transaction.atomic():
                    engine.advance(run.pk)
                results[i] = "advanced"
            else:
                step_resume(step_run_id=sr.pk, actor=personas.charlie)
                results[i] = "resumed"
        except Exception as exc:  # counted below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    resumed = results.count("resumed")
    refused = [r for r in results if isinstance(r, ActionNotAllowed)]
    assert results.count("advanced") == 5
    assert resumed + len(refused) == 5 and resumed <= 1, results
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert completed(run, "w") == 1
    assert completed(run, "b") == 1
    assert RunEvent.objects.filter(run=run, name="orchestration.step.resume_requested").count() == resumed


def test_the_api_gives_a_waiting_steps_resume_time(personas, monkeypatch):
    from django.test import Client

    from orchestration.services import api_token_create

    Clock(monkeypatch, berlin(2026, 12, 28, 10, 0))
    _load(wait("w", **{"for": "2h"}))
    run = launch(record=make_case())
    raw = api_token_create(user=personas.admin, name="test")[1]
    body = Client().get(f"/api/runs/{run.pk}", headers={"Authorization": f"Bearer {raw}"}).json()
    [w] = [s for stage in body["stages"] for s in stage["steps"] if s["key"] == "w"]
    assert (w["kind"], w["status"], w["wake_at"]) == ("wait", "in_progress", "2026-12-28T11:00:00Z")
