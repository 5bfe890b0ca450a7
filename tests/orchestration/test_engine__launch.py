"""Launching: record-triggered (on create / update / both, a condition, every time or only when
the record changes to meet it; once per committed save) and autolaunched with typed inputs.
Runs stay on the version they started on; a step's flow version is fixed when it starts."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction

from orchestration.models import OrchestrationVersion, Run, RunStatus, StepStatus
from orchestration.services import LaunchError, background_step_execute, run_launch
from records.services import record_update
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.services import workitem_complete

from .engine_support import bg, fresh, launch, lost_messages, open_item, stage, stages, step, task


def _record_triggered(name: str = "on_case", **start) -> None:
    load(
        screen_flow("review"),
        orchestration(
            name, start={"type": "record", "record_type": "case", **start}, stages=[stage("s", task("t"))]
        ),
    )


def _runs(case, name: str = "on_case") -> int:
    return Run.objects.filter(record_id=case.pk, orchestration__api_name=name).count()


@pytest.mark.django_db(transaction=True)
def test_on_create_launches_once_per_new_record_and_not_on_update(personas):
    _record_triggered(on="create")
    case = make_case()
    assert _runs(case) == 1
    run = Run.objects.get(record_id=case.pk)
    assert run.status == RunStatus.IN_PROGRESS
    assert run.record == case
    assert run.record_label == "Case 1"
    record_update(record=case, values={"status": "x"})
    assert _runs(case) == 1


@pytest.mark.django_db(transaction=True)
def test_on_update_launches_on_each_change_but_not_on_create(personas):
    _record_triggered(on="update")
    case = make_case()
    assert _runs(case) == 0
    record_update(record=case, values={"status": "a"})
    assert _runs(case) == 1
    record_update(record=case, values={"status": "b"})
    assert _runs(case) == 2
    record_update(record=case, values={"status": "b"})  # no change: no save, no launch
    assert _runs(case) == 2


@pytest.mark.django_db(transaction=True)
def test_on_create_or_update_launches_on_both(personas):
    _record_triggered(on="create_or_update")
    case = make_case()
    record_update(record=case, values={"status": "a"})
    assert _runs(case) == 2


@pytest.mark.django_db(transaction=True)
def test_every_time_launches_on_each_save_that_meets_the_condition(personas):
    _record_triggered(condition="record.severity == 'High'", run="every_time")
    case = make_case(severity="Low")
    assert _runs(case) == 0
    record_update(record=case, values={"severity": "High"})
    assert _runs(case) == 1
    record_update(record=case, values={"status": "still high"})
    assert _runs(case) == 2
    record_update(record=case, values={"severity": "Low"})
    assert _runs(case) == 2


@pytest.mark.django_db(transaction=True)
def test_changed_to_meet_launches_only_when_the_record_starts_meeting_the_condition(personas):
    _record_triggered(condition="record.severity == 'High'", run="changed_to_meet")
    case = make_case(severity="Low")
    assert _runs(case) == 0
    record_update(record=case, values={"severity": "High"})
    assert _runs(case) == 1
    record_update(record=case, values={"status": "still high"})
    assert _runs(case) == 1
    record_update(record=case, values={"severity": "Medium"})
    record_update(record=case, values={"severity": "High"})
    assert _runs(case) == 2
    # A record created meeting the condition has "changed to meet" it.
    assert _runs(make_case("Other", severity="High")) == 1


@pytest.mark.django_db(transaction=True)
def test_changed_to_meet_counts_a_record_that_could_not_be_compared_before_as_not_meeting(personas):
    # Before the update the amount was empty, and "None > 1000" cannot be evaluated.
    _record_triggered(condition="record.amount > 1000", run="changed_to_meet")
    case = make_case()
    assert _runs(case) == 0
    record_update(record=case, values={"amount": "5000"})
    assert _runs(case) == 1
    record_update(record=case, values={"amount": "6000"})
    assert _runs(case) == 1


@pytest.mark.django_db(transaction=True)
def test_changed_to_meet_on_the_owner_compares_with_the_previous_owner(personas):
    _record_triggered(condition="record.owner == 'bob'", run="changed_to_meet")
    case = make_case(owner=personas.alice)
    record_update(record=case, owner=personas.bob)
    assert _runs(case) == 1
    record_update(record=case, values={"status": "still bob's"})
    assert _runs(case) == 1


@pytest.mark.django_db(transaction=True)
def test_a_save_launches_each_qualifying_orchestration_exactly_once(personas):
    load(
        screen_flow("review"),
        orchestration(
            "first", start={"type": "record", "record_type": "case"}, stages=[stage("s", task("t"))]
        ),
        orchestration(
            "second",
            start={"type": "record", "record_type": "case", "condition": "record.amount > 10"},
            stages=[stage("s", task("t"))],
        ),
        orchestration("manual", stages=[stage("s", task("t"))]),  # autolaunched: never on save
    )
    case = make_case(amount="100")
    assert sorted(
        Run.objects.filter(record_id=case.pk).values_list("orchestration__api_name", flat=True)
    ) == [
        "first",
        "second",
    ]
    # Two saves in one transaction are two saves.
    with transaction.atomic():
        record_update(record=case, values={"status": "a"})
        record_update(record=case, values={"status": "b"})
    assert _runs(case, "first") == 3
    assert _runs(case, "second") == 3
    assert _runs(case, "manual") == 0


@pytest.mark.django_db(transaction=True)
def test_a_save_that_is_rolled_back_launches_nothing(personas):
    _record_triggered()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        make_case()
        raise Boom
    assert Run.objects.count() == 0
    case = make_case()
    with pytest.raises(Boom), transaction.atomic():
        record_update(record=case, values={"status": "x"})
        raise Boom
    assert _runs(case) == 1


@pytest.mark.django_db(transaction=True)
def test_a_start_condition_that_fails_on_a_record_does_not_break_the_save(personas):
    _record_triggered(condition="record.amount > 10")
    case = make_case()  # amount empty: "None > 10" fails; the record is still saved
    assert case.pk is not None
    assert _runs(case) == 0


@pytest.mark.django_db(transaction=True)
def test_a_variable_default_that_fails_does_not_break_the_save(personas):
    load(
        screen_flow("review"),
        orchestration(
            start={"type": "record", "record_type": "case"},
            variables=[{"name": "ratio", "type": "decimal", "default": "1 / record.amount"}],
            stages=[stage("s", task("t"))],
        ),
    )
    case = make_case(amount="0")
    run = Run.objects.get(record_id=case.pk)
    assert run.status == RunStatus.ERROR
    assert "division by zero" in run.error


# --- autolaunched ------------------------------------------------------------------------------

INPUTS = [
    {"name": "amount", "type": "decimal", "required": True},
    {"name": "count", "type": "number", "default": "3"},
    {"name": "due", "type": "date"},
    {"name": "urgent", "type": "boolean"},
    {"name": "contact", "type": "email"},
    {"name": "note", "type": "text"},
]


def _autolaunched(personas) -> None:
    load(
        screen_flow("review"),
        orchestration(
            "manual", start={"type": "autolaunched", "inputs": INPUTS}, stages=[stage("s", task("t"))]
        ),
    )


@pytest.mark.django_db
def test_autolaunched_inputs_are_typed(personas):
    _autolaunched(personas)
    run = launch(
        "manual",
        inputs={"amount": "12.50", "due": "2026-05-01", "urgent": "yes", "contact": "a@example.com"},
        actor=personas.admin,
    )
    assert run.status == RunStatus.IN_PROGRESS
    assert run.inputs == {
        "amount": "12.50",
        "count": 3,
        "due": "2026-05-01",
        "urgent": True,
        "contact": "a@example.com",
        "note": None,
    }
    assert run.record_id is None
    assert run.started_by == personas.admin


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("inputs", "field", "message"),
    [
        ({"amount": "1", "colour": "red"}, "colour", "'colour' is not an input of 'manual'"),
        ({}, "amount", "this input is required"),
        ({"amount": "lots"}, "amount", "expected a value of type decimal"),
        ({"amount": "1", "count": "2.5"}, "count", "expected a whole number"),
        ({"amount": "1", "count": "many"}, "count", "expected a value of type number"),
        ({"amount": "1", "due": "tomorrow"}, "due", "expected a date (YYYY-MM-DD)"),
        ({"amount": "1", "urgent": "maybe"}, "urgent", "expected true or false"),
        ({"amount": "1", "contact": "not-an-address"}, "contact", "expected a value of type email"),
        ({"amount": "1", "note": "a\x00b"}, "note", "text cannot contain NUL (\\x00) characters"),
        ({"amount": "NaN"}, "amount", "expected a finite number"),
    ],
)
def test_bad_inputs_are_refused_with_a_message_per_input(personas, inputs, field, message):
    _autolaunched(personas)
    with pytest.raises(LaunchError) as exc:
        run_launch(orchestration="manual", inputs=inputs, actor=personas.admin)
    assert exc.value.message_dict[field] == [message]
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_launch_refusals(personas):
    _autolaunched(personas)
    with pytest.raises(LaunchError, match="'nope' does not exist"):
        run_launch(orchestration="nope")
    with pytest.raises(PermissionDenied):
        run_launch(orchestration="manual", inputs={"amount": 1}, actor=personas.alice)
    load(orchestration("on_record", stages=[stage("s", task("t"))]))  # runs on a case
    with pytest.raises(LaunchError, match="runs on a case record"):
        run_launch(orchestration="on_record")
    from records.services import record_type_upsert

    record_type_upsert(api_name="employee", label="Employee", fields=[])
    load(
        orchestration(
            "on_employee",
            start={"type": "autolaunched", "record_type": "employee"},
            stages=[stage("s", task("t"))],
        )
    )
    with pytest.raises(LaunchError, match="runs on an employee record"):  # not "a employee"
        run_launch(orchestration="on_employee")
    assert Run.objects.count() == 0


# --- versions ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_stays_on_the_version_it_started_on(personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("v1_first", task("a")), stage("v1_second", task("b"))]),
    )
    old = launch(record=make_case())
    load(orchestration(stages=[stage("v2_only", task("z"))]))
    assert OrchestrationVersion.objects.get(is_active=True).number == 2

    workitem_complete(item=open_item(old, "a"), user=personas.alice, data={})
    assert stages(old) == [("v1_first", "completed"), ("v1_second", "in_progress")]
    assert fresh(old).version.number == 1

    new = launch(record=make_case())
    assert new.version.number == 2
    assert stages(new) == [("v2_only", "in_progress")]


@pytest.mark.django_db
def test_an_interactive_step_keeps_the_flow_version_it_started_with(personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    load(screen_flow("review", fields=[{"name": "score", "type": "number", "required": True}]))
    # The open item still shows (and validates against) the screens it was created with.
    item = open_item(run, "a")
    workitem_complete(item=item, user=personas.alice, data={"approved": "true"})
    assert step(run, "a").outputs == {"approved": True, "comment": None}
    assert step(run, "a").flow_version.number == 1
    # A step started now gets the new version.
    run2 = launch(record=make_case())
    assert step(run2, "a").flow_version.number == 2


@pytest.mark.django_db(transaction=True)
def test_a_background_step_keeps_the_flow_version_it_started_with(personas):
    load(auto_flow("calc", outputs={"x": "1"}), orchestration(stages=[stage("s", bg("b", "calc"))]))
    with lost_messages() as sent:
        run = launch(record=make_case())
    load(auto_flow("calc", outputs={"x": "2"}))
    [(step_run_id, attempt)] = sent
    assert background_step_execute(step_run_id=step_run_id, attempt=attempt) == "completed"
    assert step(run, "b").outputs == {"x": 1}
    assert step(run, "b").status == StepStatus.COMPLETED
    assert launch(record=make_case()).step_outputs == {"b": {"x": 2}}
