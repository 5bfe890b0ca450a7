from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied

from orchestration.models import RunStatus, StageStatus
from records.models import Record
from workitems.services import workitem_complete

from .helpers import open_items, run_of, stage_path

pytestmark = pytest.mark.django_db(transaction=True)


def hire(demo):
    return demo.create(
        "employee",
        "Nina Newcomer",
        by=demo.dave,
        start_date=dt.date(2027, 1, 4),
        department="Engineering",
        role="Backend developer",
        manager=demo.bob.pk,
        laptop="MacBook Pro 14",
        personal_email="nina@example.com",
        status="New",
    )


def test_creating_an_employee_fans_out_to_four_teams(demo):
    employee = hire(demo)
    run = run_of(employee, "employee_onboarding")
    assert run.current_stage == "provisioning"
    items = open_items(run)
    assert {k: i.assignee_label for k, i in items.items()} == {
        "it_setup": "group IT",
        "assign_buddy": "Bob Meyer",  # the record's manager
        "desk_setup": "queue Facilities desk",
        "hr_paperwork": "group HR",
    }
    # The background step of the same stage ran alongside them.
    employee.refresh_from_db()
    assert employee.data["status"] == "Onboarding"
    # IT's screen flow got the manager's laptop request as its input.
    assert items["it_setup"].step_run.inputs == {"requested_laptop": "MacBook Pro 14"}


def test_only_the_assigned_team_can_do_its_part(demo):
    run = run_of(hire(demo), "employee_onboarding")
    items = open_items(run)
    with pytest.raises(PermissionDenied):
        workitem_complete(item=items["it_setup"], user=demo.erin, data={})
    with pytest.raises(PermissionDenied):
        workitem_complete(item=items["assign_buddy"], user=demo.alice, data={"buddy": "erin"})


def test_welcome_waits_for_all_four_and_uses_what_it_chose(demo, mailoutbox):
    employee = hire(demo)
    run = run_of(employee, "employee_onboarding")
    items = open_items(run)
    answers = [
        (
            items["it_setup"],
            demo.alice,
            {"laptop_model": "ThinkPad X1 Carbon", "email_account": "nina@corp.example"},
        ),
        (items["assign_buddy"], demo.bob, {"buddy": "erin", "first_meeting": "2027-01-04"}),
        (items["desk_setup"], demo.carol, {"desk_number": "4.12", "floor": "2", "equipment_ready": "on"}),
    ]
    mailoutbox.clear()
    for item, user, data in answers:
        workitem_complete(item=item, user=user, data=data)
        run.refresh_from_db()
        assert run.current_stage == "provisioning", f"moved on after {item.step_run.key}"
    assert run.variables["work_email"] == "nina@corp.example"
    assert run.variables["laptop"] == "ThinkPad X1 Carbon"
    assert not any("Welcome" in m.subject for m in mailoutbox)

    workitem_complete(item=items["hr_paperwork"], user=demo.dave, data={"contract_signed": "true"})

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert stage_path(run) == [("provisioning", StageStatus.COMPLETED), ("welcome", StageStatus.COMPLETED)]
    employee.refresh_from_db()
    assert employee.data["status"] == "Onboarded"
    assert employee.data["work_email"] == "nina@corp.example"
    assert employee.data["laptop"] == "ThinkPad X1 Carbon"
    assert employee.data["desk"] == "4.12"
    assert employee.data["buddy"] == demo.erin.pk
    welcome = [m for m in mailoutbox if m.subject == "Welcome aboard, Nina Newcomer!"]
    assert len(welcome) == 1
    assert welcome[0].to == ["nina@example.com", "nina@corp.example"]
    assert "your email account: nina@corp.example" in welcome[0].body
    assert "your laptop: ThinkPad X1 Carbon" in welcome[0].body


def test_group_members_get_the_assignment_email(demo, mailoutbox):
    hire(demo)
    subjects = {(m.to[0], m.subject) for m in mailoutbox}
    assert ("alice@example.com", "IT provisioning for Nina Newcomer (starts 2027-01-04)") in subjects
    assert ("bob@example.com", "Assign a buddy: Nina Newcomer") in subjects
    assert ("carol@example.com", "Set up a desk: Nina Newcomer") in subjects
    assert ("dave@example.com", "Confirm paperwork: Nina Newcomer") in subjects


def test_the_welcome_skips_an_empty_address(demo, mailoutbox):
    # personal_email is required on the form, but a record can lose it; the list then has a gap.
    employee = hire(demo)
    Record.objects.filter(pk=employee.pk).update(data={**employee.data, "personal_email": None})
    run = run_of(employee, "employee_onboarding")
    items = open_items(run)
    workitem_complete(
        item=items["it_setup"],
        user=demo.alice,
        data={"laptop_model": "Dell XPS 13", "email_account": "nina@corp.example"},
    )
    workitem_complete(item=items["assign_buddy"], user=demo.bob, data={"buddy": "erin"})
    workitem_complete(item=items["desk_setup"], user=demo.carol, data={"desk_number": "1", "floor": "1"})
    workitem_complete(item=items["hr_paperwork"], user=demo.dave, data={})
    [welcome] = [m for m in mailoutbox if m.subject.startswith("Welcome")]
    assert welcome.to == ["nina@corp.example"]
