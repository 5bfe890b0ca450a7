from __future__ import annotations

import pytest

from orchestration.models import RunStatus, StepRun
from orchestration.services import background_step_execute, run_launch, run_resume, run_suspend
from records.models import Record
from records.services import record_update
from tests.factories import auto_flow, load, make_case, orchestration
from tests.orchestration.engine_support import lost_messages as hold_dispatch

pytestmark = pytest.mark.django_db(transaction=True)


def _failing(fault_path: bool) -> None:
    stages = [
        {"key": "work", "steps": [{"key": "a", "kind": "background", "flow": "boom", "max_attempts": 1}]},
        {"key": "manual", "steps": [{"key": "m", "kind": "background", "flow": "ok"}]},
    ]
    if fault_path:
        stages[0]["fault_path"] = "manual"
        stages[0]["next"] = "end"
    load(auto_flow("boom", outputs={"x": "1 / 0"}), auto_flow("ok"), orchestration("p", stages=stages))


@pytest.mark.parametrize("fault_path", [False, True])
def test_a_step_failing_while_suspended_is_routed_on_resume(personas, fault_path):
    _failing(fault_path)
    with hold_dispatch() as held:
        run = run_launch(orchestration="p", record=make_case())
    run_suspend(run_id=run.pk)
    ((step_run_id, attempt),) = held
    assert background_step_execute(step_run_id=step_run_id, attempt=attempt) == "error"
    run.refresh_from_db()
    assert run.status == RunStatus.SUSPENDED  # nothing routed while suspended
    assert run.current_stage == "work"
    assert StepRun.objects.get(pk=step_run_id).status == "error"

    run_resume(run_id=run.pk)
    run.refresh_from_db()
    if fault_path:
        assert run.status == RunStatus.COMPLETED
        assert StepRun.objects.get(run=run, key="m").status == "completed"
    else:
        assert run.status == RunStatus.ERROR
        assert "division by zero" in run.error


def test_record_triggered_run_records_who_saved(personas):
    load(
        auto_flow("ok"),
        orchestration(
            "p",
            start={"type": "record", "record_type": "case", "on": "update"},
            stages=[{"key": "s", "steps": [{"key": "a", "kind": "background", "flow": "ok"}]}],
        ),
    )
    from tests.factories import grant

    grant(personas.alice, "records.change_record")
    case = make_case()
    record_update(record=case, values={"status": "x"}, actor=personas.alice)
    run = case_runs(case)[0]
    assert run.started_by == personas.alice


def case_runs(case: Record):  # type: ignore[no-untyped-def]
    from django.contrib.contenttypes.models import ContentType

    from orchestration.models import Run

    return list(Run.objects.filter(record_type=ContentType.objects.get_for_model(Record), record_id=case.pk))


def test_an_update_triggered_orchestration_does_not_relaunch_itself(personas):
    """Its own background step updates the record: that save must not launch it again."""
    load(
        auto_flow(
            "touch", actions=[{"type": "update_record", "values": {"status": "'touched'"}}], outputs={}
        ),
        auto_flow("other"),
        orchestration(
            "selfie",
            start={"type": "record", "record_type": "case", "on": "update"},
            stages=[{"key": "s", "steps": [{"key": "a", "kind": "background", "flow": "touch"}]}],
        ),
        orchestration(
            "watcher",
            start={
                "type": "record",
                "record_type": "case",
                "on": "update",
                "condition": "record.status == 'touched'",
            },
            stages=[{"key": "s", "steps": [{"key": "a", "kind": "background", "flow": "other"}]}],
        ),
    )
    case = make_case()
    record_update(record=case, values={"description": "go"})
    runs = case_runs(case)
    by_name = sorted(r.orchestration.api_name for r in runs)
    # selfie once (from the person's save); watcher once (another orchestration may react).
    assert by_name == ["selfie", "watcher"]
    assert all(r.status == RunStatus.COMPLETED for r in runs)
