"""Variables: defaults computed at launch, input mapping into flows, step outputs kept as
steps.<key>.<output> and mapped (typed) into variables, read by later steps."""

from __future__ import annotations

import pytest

from orchestration.models import RunEvent, RunStatus, StepStatus
from orchestration.services import run_recheck
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.services import workitem_complete

from .engine_support import bg, fresh, launch, open_item, stage, step, task


@pytest.mark.django_db
def test_variable_defaults_are_computed_from_the_record_and_inputs(personas):
    load(
        screen_flow("review"),
        orchestration(
            start={
                "type": "autolaunched",
                "record_type": "case",
                "inputs": [{"name": "factor", "type": "number", "default": "2"}],
            },
            variables=[
                {"name": "doubled", "type": "decimal", "default": "record.amount * inputs.factor"},
                {"name": "title", "type": "text", "default": "record.name ~ ' (' ~ record.severity ~ ')'"},
                {"name": "urgent", "type": "boolean", "default": "record.severity == 'High'"},
                {"name": "empty", "type": "number"},
            ],
            stages=[stage("s", task("t"))],
        ),
    )
    run = launch(record=make_case("Broken lift", amount="12.5", severity="High"), inputs={"factor": 3})
    assert run.variables == {
        "doubled": "37.5",
        "title": "Broken lift (High)",
        "urgent": True,
        "empty": None,
        "factor": 3,
    }
    assert run.inputs == {"factor": 3}


@pytest.mark.django_db
def test_a_decimal_input_is_a_number_in_expressions(personas):
    load(
        screen_flow("review"),
        orchestration(
            start={"type": "autolaunched", "inputs": [{"name": "limit", "type": "decimal"}]},
            variables=[{"name": "over", "type": "boolean", "default": "inputs.limit > 100"}],
            stages=[stage("s", task("t", start={"condition": "inputs.limit > 100 and vars.limit > 100"}))],
        ),
    )
    run = launch(inputs={"limit": "250.5"})
    assert run.status == RunStatus.IN_PROGRESS, run.error
    assert run.variables["over"] is True
    assert step(run, "t").status == StepStatus.IN_PROGRESS


@pytest.mark.django_db
def test_a_default_that_fails_at_launch_puts_the_run_in_error_instead_of_raising(personas):
    load(
        screen_flow("review"),
        orchestration(
            variables=[{"name": "ratio", "type": "decimal", "default": "100 / record.amount"}],
            stages=[stage("s", task("t"))],
        ),
    )
    run = launch(record=make_case(amount="0"))
    assert run.status == RunStatus.ERROR
    assert "variable 'ratio' default" in run.error and "division by zero" in run.error
    assert RunEvent.objects.filter(run=run, name="orchestration.run.error").exists()
    # A re-check lets the run go on without the value.
    run_recheck(run_id=run.pk, actor=personas.admin)
    run = fresh(run)
    assert run.status == RunStatus.IN_PROGRESS
    assert run.variables["ratio"] is None


@pytest.mark.django_db(transaction=True)
def test_inputs_are_mapped_into_the_flow_and_outputs_flow_back(personas):
    load(
        {
            "kind": "autolaunched_flow",
            "api_name": "quote",
            "inputs": [
                {"name": "base", "type": "decimal", "required": True},
                {"name": "who", "type": "text"},
                {"name": "rate", "type": "decimal", "default": "'0.5'"},
            ],
            "outputs": [{"name": "price", "type": "decimal"}, {"name": "greeting", "type": "text"}],
            "actions": [
                {
                    "type": "set_outputs",
                    "values": {"price": "inputs.base * inputs.rate", "greeting": "'Dear ' ~ inputs.who"},
                }
            ],
        },
        screen_flow("review"),
        orchestration(
            variables=[{"name": "price", "type": "decimal"}, {"name": "price_text", "type": "text"}],
            stages=[
                stage(
                    "s",
                    bg(
                        "q",
                        "quote",
                        inputs={"base": "record.amount + 10", "who": "record.name"},
                        outputs={"price": "price", "price_text": "price"},
                    ),
                ),
                stage(
                    "t",
                    bg(
                        "q2",
                        "quote",
                        inputs={"base": "steps.q.price", "who": "steps.q.greeting", "rate": "vars.price"},
                    ),
                ),
            ],
        ),
    )
    run = launch(record=make_case("ACME", amount="30"))
    assert run.status == RunStatus.COMPLETED, run.error
    q = step(run, "q")
    assert q.inputs == {"base": "40", "who": "ACME", "rate": "0.5"}
    assert q.outputs == {"price": "20.0", "greeting": "Dear ACME"}
    assert run.variables == {"price": "20.0", "price_text": "20.0"}
    # A later step reads the earlier one's outputs and the variables they were mapped into.
    q2 = step(run, "q2")
    assert q2.inputs == {"base": "20.0", "who": "Dear ACME", "rate": "20.0"}
    assert q2.outputs["price"] == "400.00"
    assert run.step_outputs["q2"]["greeting"] == "Dear Dear ACME"


@pytest.mark.django_db(transaction=True)
def test_outputs_are_coerced_to_the_variable_type(personas):
    load(
        auto_flow("texts", outputs={"n": "'42'", "flag": "'yes'", "when": "'2026-03-01'"}),
        orchestration(
            variables=[
                {"name": "n", "type": "number"},
                {"name": "flag", "type": "boolean"},
                {"name": "when", "type": "date"},
            ],
            stages=[stage("s", bg("b", "texts", outputs={"n": "n", "flag": "flag", "when": "when"}))],
        ),
    )
    run = launch(record=make_case())
    assert run.variables == {"n": 42, "flag": True, "when": "2026-03-01"}


@pytest.mark.django_db(transaction=True)
def test_an_output_that_does_not_fit_its_variable_puts_the_step_in_error(personas):
    load(
        auto_flow("texts", outputs={"n": "'forty-two'"}),
        orchestration(
            variables=[{"name": "n", "type": "number"}],
            stages=[stage("s", bg("b", "texts", outputs={"n": "n"}))],
        ),
    )
    run = launch(record=make_case())
    sr = step(run, "b")
    assert sr.status == StepStatus.ERROR
    assert "variable 'n'" in sr.error and "number" in sr.error
    assert run.status == RunStatus.ERROR


@pytest.mark.django_db
def test_screen_values_become_step_outputs_and_variables(personas):
    load(
        screen_flow(
            "approval",
            fields=[
                {"name": "approved", "type": "boolean"},
                {"name": "limit", "type": "decimal"},
                {"name": "notes", "type": "long_text"},
            ],
        ),
        screen_flow("review"),
        orchestration(
            variables=[{"name": "limit", "type": "decimal"}, {"name": "ok", "type": "boolean"}],
            stages=[
                stage("s", task("approve", flow="approval", outputs={"limit": "limit", "ok": "approved"})),
                stage("t", task("follow_up", start={"condition": "vars.ok and vars.limit > 1000"})),
            ],
        ),
    )
    run = launch(record=make_case())
    workitem_complete(
        item=open_item(run, "approve"), user=personas.alice, data={"approved": "on", "limit": "2500.50"}
    )
    run = fresh(run)
    assert run.step_outputs["approve"] == {"approved": True, "limit": "2500.50", "notes": None}
    assert run.variables == {"limit": "2500.50", "ok": True}
    assert step(run, "follow_up").status == StepStatus.IN_PROGRESS
