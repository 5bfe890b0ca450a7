from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from orchestration.models import Run, RunStatus, StageStatus, StepStatus
from orchestration.services import run_launch, sweep
from records.services import record_update
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

from .helpers import open_items, run_of, stage_path

pytestmark = pytest.mark.django_db(transaction=True)


def escalations() -> int:
    return Run.objects.filter(orchestration__api_name="case_escalation").count()


def new_case(demo, severity="Low"):
    return demo.create(
        "case",
        "Checkout fails",
        by=demo.frank,
        owner=demo.frank,
        severity=severity,
        account="ACME Corp",
        description="Errors at checkout.",
        status="New",
    )


def after_the_settling_hour(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Close the loop waits a business hour (step settle) before resolving: a week later, the
    sweep finds it due and the run goes on."""
    run.refresh_from_db()
    assert (run.current_stage, run.status) == ("close_the_loop", RunStatus.IN_PROGRESS)
    assert run.step_runs.get(key="settle").status == StepStatus.IN_PROGRESS
    later = timezone.now() + dt.timedelta(days=7)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert sweep().woken == 1


def test_launches_only_when_severity_becomes_high(demo):
    case = new_case(demo)
    record_update(record=case, values={"status": "Investigating"}, actor=demo.frank)
    record_update(record=case, values={"severity": "Medium"}, actor=demo.frank)
    assert escalations() == 0

    record_update(record=case, values={"severity": "High"}, actor=demo.frank)
    assert escalations() == 1

    # Saved again while already High: no second escalation.
    record_update(record=case, values={"description": "Errors at checkout, all regions."}, actor=demo.frank)
    record_update(record=case, values={"status": "Waiting on customer"}, actor=demo.erin)
    assert escalations() == 1


def test_a_case_created_high_does_not_escalate(demo):
    # The trigger is on update: the escalation is for cases whose severity is raised.
    new_case(demo, severity="High")
    assert escalations() == 0


def test_engineering_and_the_account_owner_work_in_parallel(demo):
    case = new_case(demo, severity="Medium")
    record_update(record=case, values={"severity": "High"}, actor=demo.frank)
    run = run_of(case, "case_escalation")
    items = open_items(run)
    assert {k: i.assignee_label for k, i in items.items()} == {
        "investigate": "group Engineering",
        "reach_out": "Frank Rossi",  # assignee expression record.owner
    }


def test_both_done_closes_the_loop(demo, mailoutbox, monkeypatch):
    case = new_case(demo, severity="Medium")
    record_update(record=case, values={"severity": "High"}, actor=demo.frank)
    run = run_of(case, "case_escalation")
    items = open_items(run)
    workitem_complete(
        item=items["investigate"],
        user=demo.erin,
        data={"root_cause": "Expired TLS certificate on the payment gateway", "fix_planned": "true"},
    )
    run.refresh_from_db()
    assert run.current_stage == "investigate"  # the exit flow waits for the owner too
    mailoutbox.clear()
    workitem_complete(
        item=items["reach_out"],
        user=demo.frank,
        data={"customer_contacted": "true", "channel": "Phone", "notes": "Called their CTO."},
    )
    after_the_settling_hour(run, monkeypatch)

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert stage_path(run) == [
        ("investigate", StageStatus.COMPLETED),
        ("close_the_loop", StageStatus.COMPLETED),
    ]
    case.refresh_from_db()
    assert case.data["status"] == "Resolved"
    assert case.data["description"] == (
        "Errors at checkout.\n\n[Escalation] Root cause: Expired TLS certificate on the payment gateway"
        "\nCustomer contacted: yes"
    )
    [email] = mailoutbox
    assert email.to == ["frank@example.com"]
    assert email.subject == "Escalated case Checkout fails is resolved"
    assert "Notes: Called their CTO." in email.body
    # Resolving the (still High) case launched no second escalation.
    assert escalations() == 1


def test_resolving_by_hand_ends_the_investigation_early(demo, monkeypatch):
    case = new_case(demo, severity="Medium")
    record_update(record=case, values={"severity": "High"}, actor=demo.frank)
    run = run_of(case, "case_escalation")
    items = open_items(run)
    workitem_complete(
        item=items["reach_out"], user=demo.frank, data={"notes": "Customer found a workaround."}
    )

    record_update(record=case, values={"status": "Resolved"}, actor=demo.frank)
    after_the_settling_hour(run, monkeypatch)

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    items["investigate"].refresh_from_db()
    assert items["investigate"].status == WorkItemStatus.CANCELED
    case.refresh_from_db()
    assert "Root cause: not recorded" in case.data["description"]
    assert "Customer contacted: no" in case.data["description"]
    assert not WorkItem.objects.filter(run=run, status=WorkItemStatus.ASSIGNED).exists()


def test_the_follow_up_is_launched_on_demand_for_the_owner(demo):
    case = new_case(demo)
    with pytest.raises(PermissionDenied):
        run_launch(orchestration="customer_follow_up", record=case, actor=demo.frank)
    run = run_launch(
        orchestration="customer_follow_up", record=case, inputs={"reason": "Renewal is due"}, actor=demo.bob
    )
    [item] = open_items(run).values()
    assert item.assignee_user == demo.frank
    assert item.step_run.inputs == {"reason": "Renewal is due"}
    workitem_complete(item=item, user=demo.frank, data={"outcome": "Happy"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_the_follow_up_reason_has_a_default(demo):
    run = run_launch(orchestration="customer_follow_up", record=new_case(demo), actor=demo.bob)
    assert run.variables["reason"] == "Routine check-in"
