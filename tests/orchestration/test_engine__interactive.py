"""Interactive steps: who gets the work item (a user, a group, a queue, an expression), who may
complete it, and what completing it checks."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from orchestration.models import RunStatus, StepStatus
from tests.factories import load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import WorkItemClosed, may_act, workitem_claim, workitem_complete

from .engine_support import events, fresh, launch, open_item, stage, step, task

pytestmark = pytest.mark.django_db

TWO_SCREENS = [
    {
        "key": "facts",
        "fields": [
            {"name": "amount", "type": "decimal", "required": True, "min_value": 1},
            {"name": "kind", "type": "choice", "choices": ["repair", "replace"], "required": True},
        ],
    },
    {
        "key": "decision",
        "fields": [
            {"name": "approved", "type": "boolean"},
            {"name": "reason", "type": "text", "required": True, "max_length": 10},
        ],
    },
]


def _one_task(assignee: dict, flow: str = "review") -> None:
    load(screen_flow("review"), orchestration(stages=[stage("s", task("t", flow=flow, assignee=assignee))]))


def test_completion_validates_every_screen_and_reports_each_field(personas):
    load(
        screen_flow("claim", screens=TWO_SCREENS), orchestration(stages=[stage("s", task("t", flow="claim"))])
    )
    run = launch(record=make_case())
    item = open_item(run, "t")
    with pytest.raises(ValidationError) as exc:
        workitem_complete(item=item, user=personas.alice, data={"amount": "0", "kind": "burn"})
    assert exc.value.message_dict == {
        "amount": ["Must be at least 1."],
        "kind": ["Choose one of: repair, replace."],
        "reason": ["This field is required."],
    }
    with pytest.raises(ValidationError) as exc:
        workitem_complete(
            item=item, user=personas.alice, data={"amount": "ten", "kind": "repair", "reason": "far too long"}
        )
    assert exc.value.message_dict == {
        "amount": ["expected a value of type decimal."],
        "reason": ["At most 10 characters."],
    }
    # Nothing was stored by the refused attempts.
    item.refresh_from_db()
    assert item.status == WorkItemStatus.ASSIGNED
    assert step(run, "t").status == StepStatus.IN_PROGRESS
    assert "step.completed" not in events(run)

    workitem_complete(
        item=item, user=personas.alice, data={"amount": "99.5", "kind": "repair", "reason": "ok"}
    )
    assert step(run, "t").outputs == {"amount": "99.5", "kind": "repair", "approved": False, "reason": "ok"}
    item.refresh_from_db()
    assert (item.status, item.completed_by) == (WorkItemStatus.COMPLETED, personas.alice)
    assert item.outputs["reason"] == "ok"


def test_someone_else_may_not_complete_a_users_item(personas):
    _one_task({"user": "alice"})
    run = launch(record=make_case())
    item = open_item(run, "t")
    for intruder in (personas.bob, personas.charlie):
        with pytest.raises(PermissionDenied):
            workitem_complete(item=item, user=intruder, data={})
    assert fresh(run).status == RunStatus.IN_PROGRESS
    assert open_item(run, "t") == item


def test_a_completed_item_cannot_be_completed_again_and_says_by_whom(personas):
    _one_task({"group": "engineering"})
    run = launch(record=make_case())
    item = open_item(run, "t")
    workitem_complete(item=item, user=personas.alice, data={"comment": "first"})
    stale = WorkItem.objects.get(pk=item.pk)
    with pytest.raises(WorkItemClosed, match=r"already completed by alice \d{4}-\d\d-\d\d \d\d:\d\d"):
        workitem_complete(item=stale, user=personas.alice, data={"comment": "second"})
    assert step(run, "t").outputs["comment"] == "first"
    assert events(run).count("step.completed") == 1


def test_assignment_to_a_user(personas):
    _one_task({"user": "bob"})
    item = open_item(launch(record=make_case()), "t")
    assert item.assignee_user == personas.bob
    assert may_act(item, personas.bob)
    assert not may_act(item, personas.alice)


def test_assignment_to_a_group_lets_every_member_act(personas):
    _one_task({"group": "engineering"})
    item = open_item(launch(record=make_case()), "t")
    assert item.assignee_group == personas.engineering
    assert may_act(item, personas.alice)
    assert not may_act(item, personas.bob)
    with pytest.raises(PermissionDenied):
        workitem_complete(item=item, user=personas.bob, data={})
    workitem_complete(item=item, user=personas.alice, data={})


@pytest.mark.parametrize(
    ("queue", "member", "outsider"), [("triage", "bob", "alice"), ("eng_queue", "alice", "bob")]
)
def test_assignment_to_a_queue_lets_its_users_and_group_members_act(personas, queue, member, outsider):
    # triage has bob as a user; eng_queue has the engineering group (alice).
    _one_task({"queue": queue})
    run = launch(record=make_case())
    item = open_item(run, "t")
    assert item.assignee_queue.api_name == queue
    assert may_act(item, getattr(personas, member))
    assert not may_act(item, getattr(personas, outsider))
    with pytest.raises(PermissionDenied):
        workitem_complete(item=item, user=getattr(personas, outsider), data={})
    workitem_complete(item=item, user=getattr(personas, member), data={})
    assert fresh(run).status == RunStatus.COMPLETED


def test_a_claimed_queue_item_can_only_be_completed_by_who_claimed_it(personas):
    personas.triage.users.add(personas.alice)
    _one_task({"queue": "triage"})
    run = launch(record=make_case())
    item = workitem_claim(item=open_item(run, "t"), user=personas.bob)
    with pytest.raises(PermissionDenied, match="claimed"):
        workitem_complete(item=item, user=personas.alice, data={})
    workitem_complete(item=item, user=personas.bob, data={})


@pytest.mark.parametrize(
    ("expression", "field", "expected"),
    [
        ("record.owner", "assignee_user", "bob"),
        ("record.owner_id", "assignee_user", "bob"),
        ("'group:support'", "assignee_group", "support"),
        ("'queue:' ~ ('triage' if record.severity == 'High' else 'eng_queue')", "assignee_queue", "triage"),
    ],
)
def test_assignment_by_expression(personas, expression, field, expected):
    _one_task({"expression": expression})
    item = open_item(launch(record=make_case(owner=personas.bob, severity="High")), "t")
    target = getattr(item, field)
    assert (
        str(getattr(target, "username", None) or getattr(target, "name", None) or target.api_name) == expected
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("'ghost'", "no active user 'ghost' to assign"),
        ("'group:nobody'", "no group 'nobody' to assign"),
        ("'queue:nowhere'", "no queue 'nowhere' to assign"),
        ("record.owner", "assignee 'record.owner' evaluated to nothing"),
        ("record.nope.name", "assignee 'record.nope.name' evaluated to nothing"),
    ],
)
def test_an_assignee_that_does_not_resolve_puts_the_step_in_error(personas, expression, message):
    _one_task({"expression": expression})
    run = launch(record=make_case())  # no owner
    sr = step(run, "t")
    assert sr.status == StepStatus.ERROR
    assert message in sr.error
    run = fresh(run)
    assert run.status == RunStatus.ERROR
    assert message in run.error
    assert not WorkItem.objects.filter(run=run).exists()


def test_an_inactive_user_is_not_assigned(personas):
    personas.bob.is_active = False
    personas.bob.save()
    _one_task({"expression": "record.owner"})
    run = launch(record=make_case(owner=personas.bob))
    assert "no active user 'bob'" in step(run, "t").error


def test_a_step_whose_assignee_was_missing_can_be_retried_once_fixed(personas):
    from orchestration.services import step_retry
    from records.models import Record

    _one_task({"expression": "record.owner"})
    case = make_case()
    run = launch(record=case)
    assert step(run, "t").status == StepStatus.ERROR
    Record.objects.filter(pk=case.pk).update(owner=personas.bob)
    step_retry(step_run_id=step(run, "t").pk, actor=personas.admin)
    item = open_item(run, "t")
    assert item.assignee_user == personas.bob
    assert fresh(run).status == RunStatus.IN_PROGRESS
    workitem_complete(item=item, user=personas.bob, data={})
    assert fresh(run).status == RunStatus.COMPLETED


def test_an_item_reassigned_meanwhile_cannot_be_completed_by_its_former_assignee(personas):
    from workitems.services import workitem_reassign

    _one_task({"user": "alice"})
    run = launch(record=make_case())
    seen_by_alice = open_item(run, "t")  # alice's page was loaded before the reassignment
    workitem_reassign(item=open_item(run, "t"), actor=personas.charlie, user=personas.bob)
    with pytest.raises(PermissionDenied, match="reassigned"):
        workitem_complete(item=seen_by_alice, user=personas.alice, data={})
    assert step(run, "t").status == StepStatus.IN_PROGRESS
    workitem_complete(item=open_item(run, "t"), user=personas.bob, data={})
    assert fresh(run).status == RunStatus.COMPLETED
