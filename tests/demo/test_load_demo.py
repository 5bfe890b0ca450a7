from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db.models import Model

from orchestration.models import FlowVersion, OrchestrationVersion, Run, RunEvent, StepRun
from orchestration.registry import PYTHON_FLOWS
from records.models import FieldChange, Record, RecordType
from tests.factories import login_request
from workitems.models import Queue, WorkItem

pytestmark = pytest.mark.django_db(transaction=True)

COUNTED: list[type[Model]] = [
    get_user_model(),
    Group,
    Queue,
    RecordType,
    Record,
    FieldChange,
    FlowVersion,
    OrchestrationVersion,
    Run,
    StepRun,
    WorkItem,
    RunEvent,
]


def counts() -> dict[str, int]:
    return {m.__name__: m._default_manager.count() for m in COUNTED}


def test_load_demo_twice_duplicates_nothing(capsys):
    call_command("load_demo")
    first = counts()
    call_command("load_demo")
    assert counts() == first
    out = capsys.readouterr().out
    assert "users created: none (all exist)" in out
    assert "sample records created: none (records exist)" in out
    assert first["User"] == 9
    assert first["OrchestrationVersion"] == 4
    assert first["Record"] == 4


def test_every_demo_user_can_log_in_with_demo_and_work_on_records():
    call_command("load_demo")
    User = get_user_model()
    for name in ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "henry"]:
        user = authenticate(login_request(), username=name, password="demo")
        assert user is not None, name
        assert user.email == f"{name}@example.com"
        assert user.has_perms(["records.view_record", "records.add_record", "records.change_record"])
        assert not user.is_superuser
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo")
    bob = User.objects.get(username="bob")
    assert bob.has_perms(
        [
            "workitems.reassign_workitem",
            "orchestration.view_run",
            "orchestration.cancel_run",
            "orchestration.import_definitions",
            "orchestration.launch_orchestration",
        ]
    )
    # Orchestration Admins move work too ("managers and admins", issue 4).
    admins = User.objects.filter(groups__name="Orchestration Admins")
    assert admins and all(u.has_perm("workitems.reassign_workitem") for u in admins)
    alice = User.objects.get(username="alice")
    assert not alice.has_perm("workitems.reassign_workitem")
    assert not alice.has_perm("orchestration.cancel_run")


def test_a_changed_password_survives_a_reload():
    call_command("load_demo")
    user = get_user_model().objects.get(username="alice")
    user.set_password("something-else")
    user.save()
    call_command("load_demo")
    assert authenticate(login_request(), username="alice", password="something-else") is not None


def test_queues_are_staffed_by_their_groups():
    call_command("load_demo")
    desk = Queue.objects.get(api_name="facilities_desk")
    loans = Queue.objects.get(api_name="loan_review")
    assert list(desk.groups.values_list("name", flat=True)) == ["Facilities"]
    assert list(loans.groups.values_list("name", flat=True)) == ["Loan officers"]


def test_samples_launch_the_orchestrations_and_the_python_flow_is_registered():
    assert "score_loan" in PYTHON_FLOWS  # DemoConfig.ready() imported demo/flows.py
    call_command("load_demo")
    launched = sorted(Run.objects.values_list("orchestration__api_name", flat=True))
    assert launched == ["case_escalation", "employee_onboarding", "loan_approval", "loan_approval"]
    # Celery is eager here, so the scoring steps have already routed both loans.
    stages = dict(
        Run.objects.filter(orchestration__api_name="loan_approval").values_list(
            "record_label", "current_stage"
        )
    )
    assert stages == {"LA-1001 Jordan Lee": "approval", "LA-1002 Priya Shah": "escalation"}
    assert WorkItem.objects.filter(assignee_user__username="frank").exists()


def test_samples_are_created_for_a_type_only_when_it_has_no_records():
    call_command("load_demo")
    Record.objects.filter(record_type__api_name="loan_application").delete()
    call_command("load_demo")
    # The missing type gets its samples back; the others are left alone.
    assert Record.objects.filter(record_type__api_name="loan_application").count() == 2
    assert Record.objects.filter(record_type__api_name="employee").count() == 1
    assert Record.objects.filter(record_type__api_name="case").count() == 1


def test_a_development_server_lists_the_demo_logins_on_its_login_page(demo, client, settings):
    """The Outbox is staff's only, so a newcomer needs to know who to log in as."""
    settings.DEBUG = True
    html = client.get("/login/").content.decode()
    listed = html[html.index('id="demo-logins"') :]
    for name in ("admin", "alice", "bob", "henry"):
        assert f"<code>{name}</code>" in listed
    assert "(Managers, Orchestration Admins)" in listed and "development Outbox" in listed
    settings.DEBUG = False
    assert 'id="demo-logins"' not in client.get("/login/").content.decode()


def test_no_demo_logins_where_the_demo_is_not_loaded(client, settings, db):
    settings.DEBUG = True
    assert 'id="demo-logins"' not in client.get("/login/").content.decode()
