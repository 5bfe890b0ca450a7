from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from demo.flows import risk_score
from orchestration.models import RunStatus, StageStatus, StepRun
from orchestration.registry import PYTHON_FLOWS
from workitems.services import workitem_complete

from .helpers import open_items, run_of, stage_path

pytestmark = pytest.mark.django_db(transaction=True)


def apply(demo, amount: str, name: str = "LA-1"):
    return demo.create(
        "loan_application",
        name,
        by=demo.grace,
        amount=amount,
        applicant_email="applicant@example.com",
        purpose="Car purchase",
        term_months=48,
        status="Submitted",
    )


def test_a_small_loan_goes_straight_to_approval(demo, mailoutbox):
    loan = apply(demo, "12000")
    run = run_of(loan, "loan_approval")
    assert run.current_stage == "approval"
    assert run.variables["risk_score"] == risk_score(Decimal(12000), "Car purchase", 48) == 25
    assert run.variables["risk_band"] == "low"
    loan.refresh_from_db()
    assert loan.data["risk_score"] == 25 and loan.data["status"] == "In review"
    [item] = open_items(run).values()
    assert item.assignee_label == "queue Loan review"
    # The applicant is notified only after the review: sequential steps.
    notify = StepRun.objects.get(run=run, key="notify_applicant")
    assert notify.status == StageStatus.NOT_STARTED
    mailoutbox.clear()

    workitem_complete(item=item, user=demo.grace, data={"decision": "Approve", "comment": "Welcome!"})

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert stage_path(run) == [("intake", StageStatus.COMPLETED), ("approval", StageStatus.COMPLETED)]
    loan.refresh_from_db()
    assert loan.data["status"] == "Approved"
    [email] = mailoutbox
    assert email.to == ["applicant@example.com"]
    assert email.subject == "Your loan application LA-1: approved"
    assert "Comment from our loan officer: Welcome!" in email.body


def test_a_large_loan_is_escalated_to_the_committee_first(demo):
    loan = apply(demo, "85000")
    run = run_of(loan, "loan_approval")
    assert run.current_stage == "escalation"
    [committee] = open_items(run).values()
    assert committee.assignee_user == demo.henry
    with pytest.raises(PermissionDenied):
        workitem_complete(item=committee, user=demo.grace, data={"recommendation": "Proceed"})

    workitem_complete(
        item=committee,
        user=demo.henry,
        data={"recommendation": "Proceed", "conditions": "Require collateral."},
    )

    run.refresh_from_db()
    assert run.current_stage == "approval"
    [review] = open_items(run).values()
    # The committee's remark reached the loan officer's screen flow through a variable.
    assert review.step_run.inputs["committee_note"] == "Require collateral."
    workitem_complete(item=review, user=demo.grace, data={"decision": "Decline"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert [k for k, _ in stage_path(run)] == ["intake", "escalation", "approval"]
    loan.refresh_from_db()
    assert loan.data["status"] == "Declined"


def test_the_threshold_is_strictly_over_50000(demo):
    run = run_of(apply(demo, "50000"), "loan_approval")
    assert run.current_stage == "approval"


def test_a_scoring_failure_takes_the_fault_path_to_manual_review(demo, monkeypatch):
    calls = []

    def broken(ctx):
        calls.append(ctx.inputs["amount"])
        raise ConnectionError("scoring service unavailable")

    monkeypatch.setitem(PYTHON_FLOWS, "score_loan", broken)
    loan = apply(demo, "12000")
    run = run_of(loan, "loan_approval")

    assert len(calls) == 2  # max_attempts: 2
    assert run.status == RunStatus.IN_PROGRESS
    assert run.current_stage == "manual_review"
    score = StepRun.objects.get(run=run, key="score")
    assert score.status == StageStatus.ERROR
    assert "ConnectionError: scoring service unavailable" in score.error
    [item] = open_items(run).values()
    assert item.assignee_label == "queue Loan review"

    workitem_complete(item=item, user=demo.grace, data={"risk_score": "60", "note": "Scored by hand."})

    run.refresh_from_db()
    assert run.variables["risk_score"] == 60
    assert run.current_stage == "approval"  # 12,000 is not a large loan
    assert stage_path(run)[:3] == [
        ("intake", StageStatus.ERROR),
        ("manual_review", StageStatus.COMPLETED),
        ("approval", StageStatus.IN_PROGRESS),
    ]


def test_after_manual_review_a_large_loan_still_goes_to_the_committee(demo, monkeypatch):
    monkeypatch.setitem(PYTHON_FLOWS, "score_loan", lambda ctx: 1 / 0)
    run = run_of(apply(demo, "85000"), "loan_approval")
    [item] = open_items(run).values()
    workitem_complete(item=item, user=demo.grace, data={"risk_score": "80"})
    run.refresh_from_db()
    assert run.current_stage == "escalation"
