"""Admin actions on a run: cancel, suspend, resume, re-check; refused when the run's state does
not allow them, and refused to users without the permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied

from orchestration.models import RunEvent, RunStatus, StepStatus
from orchestration.services import (
    ActionNotAllowed,
    background_step_execute,
    run_actions_available,
    run_cancel,
    run_recheck,
    run_resume,
    run_suspend,
)
from records.models import Record
from records.services import record_update
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import WorkItemClosed, workitem_complete

from .engine_support import bg, events, fresh, launch, lost_messages, open_item, stage, stages, step, task


def _two_step_run(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a"), task("b", start={"after": ["a"]}))]),
    )
    return launch(record=make_case())


@pytest.mark.django_db
def test_cancel_discontinues_open_steps_and_cancels_their_work_items(personas):
    run = _two_step_run(personas)
    item = open_item(run, "a")
    run_cancel(run_id=run.pk, actor=personas.admin)
    run = fresh(run)
    assert run.status == RunStatus.CANCELED
    assert run.ended_at is not None
    assert run.current_stage == ""
    assert stages(run) == [("s", "canceled")]
    assert step(run, "a").status == step(run, "b").status == StepStatus.DISCONTINUED
    item.refresh_from_db()
    assert item.status == WorkItemStatus.CANCELED
    with pytest.raises(WorkItemClosed, match="canceled"):
        workitem_complete(item=item, user=personas.alice, data={})
    assert run_actions_available(run) == []


@pytest.mark.django_db
@pytest.mark.parametrize("action", [run_cancel, run_suspend, run_resume, run_recheck])
def test_nothing_can_be_done_to_a_finished_run(personas, action):
    run = _two_step_run(personas)
    run_cancel(run_id=run.pk, actor=personas.admin)
    before = events(run)
    with pytest.raises(ActionNotAllowed, match="canceled"):
        action(run_id=run.pk, actor=personas.admin)
    assert events(run) == before


@pytest.mark.django_db
def test_suspend_pauses_the_run_until_it_is_resumed(personas):
    run = _two_step_run(personas)
    run_suspend(run_id=run.pk, actor=personas.admin, reason="waiting for legal")
    run = fresh(run)
    assert run.status == RunStatus.SUSPENDED
    assert run_actions_available(run) == ["cancel", "resume"]
    # Open work stays open, but cannot be completed while the run is paused.
    item = open_item(run, "a")
    with pytest.raises(WorkItemClosed, match="suspended"):
        workitem_complete(item=item, user=personas.alice, data={})
    with pytest.raises(ActionNotAllowed, match="cannot suspend a run that is suspended"):
        run_suspend(run_id=run.pk, actor=personas.admin)

    run_resume(run_id=run.pk, actor=personas.admin)
    assert fresh(run).status == RunStatus.IN_PROGRESS
    with pytest.raises(ActionNotAllowed, match="cannot resume a run that is in progress"):
        run_resume(run_id=run.pk, actor=personas.admin)
    workitem_complete(item=open_item(run, "a"), user=personas.alice, data={})
    assert step(run, "b").status == StepStatus.IN_PROGRESS
    names = events(run)
    assert names.index("run.suspended") < names.index("run.resumed")
    assert RunEvent.objects.get(run=run, name="orchestration.run.suspended").payload == {
        "reason": "waiting for legal"
    }


@pytest.mark.django_db(transaction=True)
def test_a_suspended_run_does_not_start_steps_on_a_record_change_until_resumed(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("go", start={"condition": "record.status == 'go'"}))]),
    )
    case = make_case()
    run = launch(record=case)
    run_suspend(run_id=run.pk, actor=personas.admin)
    record_update(record=case, values={"status": "go"})
    assert step(run, "go").status == StepStatus.NOT_STARTED
    run_resume(run_id=run.pk, actor=personas.admin)
    assert step(run, "go").status == StepStatus.IN_PROGRESS


@pytest.mark.django_db(transaction=True)
def test_a_background_result_arriving_while_suspended_is_kept_and_used_on_resume(personas):
    load(auto_flow("noop"), orchestration(stages=[stage("s", bg("b", "noop"))]))
    with lost_messages() as sent:
        run = launch(record=make_case())
    run_suspend(run_id=run.pk, actor=personas.admin)
    [(step_run_id, attempt)] = sent
    assert background_step_execute(step_run_id=step_run_id, attempt=attempt) == "completed"
    run = fresh(run)
    assert step(run, "b").status == StepStatus.COMPLETED
    assert run.status == RunStatus.SUSPENDED  # nothing routes while paused
    assert stages(run) == [("s", "in_progress")]
    run_resume(run_id=run.pk, actor=personas.admin)
    assert fresh(run).status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_recheck_sees_a_change_made_behind_the_engines_back(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("go", start={"condition": "record.status == 'go'"}))]),
    )
    case = make_case()
    run = launch(record=case)
    # A bulk fix straight in the database: no record service, so no automatic re-check.
    Record.objects.filter(pk=case.pk).update(data={**case.data, "status": "go"})
    assert step(run, "go").status == StepStatus.NOT_STARTED
    run_recheck(run_id=run.pk, actor=personas.admin, reason="data fixed")
    assert step(run, "go").status == StepStatus.IN_PROGRESS
    assert RunEvent.objects.get(run=run, name="orchestration.run.rechecked").actor == personas.admin


@pytest.mark.django_db
def test_recheck_gives_a_run_stuck_on_a_failed_condition_another_go(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a"), exit={"condition": "record.amount > 10"})]),
    )
    case = make_case()  # amount empty: the exit condition cannot be evaluated
    run = launch(record=case)
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert "stage 's'" in run.error
    assert run_actions_available(run) == ["cancel", "recheck"]
    Record.objects.filter(pk=case.pk).update(data={**case.data, "amount": "50"})
    run_recheck(run_id=run.pk, actor=personas.admin)
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    assert run.error == ""
    assert step(run, "a").status == StepStatus.DISCONTINUED


@pytest.mark.django_db
def test_recheck_leaves_a_run_with_a_failed_step_in_error(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a", assignee={"expression": "record.status"}))]),
    )
    run = launch(record=make_case())  # status empty: nobody to assign
    assert fresh(run).status == RunStatus.ERROR
    run_recheck(run_id=run.pk, actor=personas.admin)
    run = fresh(run)
    assert run.status == RunStatus.ERROR  # the failed step needs a retry or a skip
    assert step(run, "a").status == StepStatus.ERROR


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "status"),
    [
        (run_cancel, RunStatus.IN_PROGRESS),
        (run_suspend, RunStatus.IN_PROGRESS),
        (run_recheck, RunStatus.IN_PROGRESS),
        (run_resume, RunStatus.SUSPENDED),
    ],
)
def test_admin_actions_need_the_permission(personas, action, status):
    run = _two_step_run(personas)
    if status == RunStatus.SUSPENDED:
        run_suspend(run_id=run.pk, actor=personas.admin)
    before = events(run)
    for user in (personas.alice, personas.bob):
        with pytest.raises(PermissionDenied):
            action(run_id=run.pk, actor=user)
    assert fresh(run).status == status
    assert events(run) == before
    # The permission, not being a superuser, is what counts.
    codename = {
        run_cancel: "cancel_run",
        run_suspend: "suspend_run",
        run_resume: "suspend_run",
        run_recheck: "retry_step",
    }[action]
    personas.charlie.user_permissions.add(Permission.objects.get(codename=codename))
    from django.contrib.auth import get_user_model

    charlie = get_user_model().objects.get(pk=personas.charlie.pk)
    action(run_id=run.pk, actor=charlie)
    assert events(run) != before


@pytest.mark.django_db
def test_anonymous_users_are_refused(personas):
    from django.contrib.auth.models import AnonymousUser

    run = _two_step_run(personas)
    with pytest.raises(PermissionDenied):
        run_cancel(run_id=run.pk, actor=AnonymousUser())
    assert WorkItem.objects.filter(run=run, status="assigned").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_task_delivered_after_its_run_was_canceled_runs_nothing(personas):
    load(auto_flow("noop"), orchestration(stages=[stage("s", bg("b", "noop"))]))
    with lost_messages() as sent:
        run = launch(record=make_case())
    run_cancel(run_id=run.pk, actor=personas.admin)
    [(step_run_id, attempt)] = sent
    assert background_step_execute(step_run_id=step_run_id, attempt=attempt) == "duplicate"
    sr = step(run, "b")
    assert (sr.status, sr.outputs) == (StepStatus.DISCONTINUED, {})
    assert fresh(run).status == RunStatus.CANCELED
