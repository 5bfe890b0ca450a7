"""Variables changed by hand on the run page (`/monitor/runs/<id>/variables/<name>/`) and by the
service behind it (`services.run_set_variable`): typed by the declaration, with a required
reason, one event with the old and new value, refused (and nothing changed) without the
permission, for an unknown variable or a value of the wrong type, and on a run that has ended."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from orchestration.models import Run, RunEvent, RunStatus
from orchestration.services import (
    PERM_CHANGE_VARIABLES,
    ActionNotAllowed,
    run_cancel,
    run_set_variable,
    run_suspend,
)
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, fresh, launch, stage, task

pytestmark = pytest.mark.django_db(transaction=True)

EVENT = "orchestration.run.variable_changed"
VARIABLES: list[dict[str, Any]] = [
    {"name": "total", "type": "number", "description": "Sum of the lines"},
    {"name": "rate", "type": "decimal"},
    {"name": "due", "type": "date"},
    {"name": "urgent", "type": "boolean"},
    {"name": "owner", "type": "user"},
    {"name": "tags", "type": "multi_choice"},
    {"name": "extra", "type": "json"},
    {"name": "note", "type": "long_text"},
    {"name": "colour", "type": "choice"},
    {"name": "code", "type": "text", "required": True, "default": "'A1'"},
]


def page(run: Run) -> str:
    return reverse("monitor:run", args=[run.pk])


def edit(run: Run, name: str) -> str:
    return reverse("monitor:run_variable", args=[run.pk, name])


def said(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def post(client: Any, run: Run, name: str, value: Any, reason: str = "fixing a typo", **extra: Any) -> Any:
    data = {f"var-{name}-reason": reason}
    if value is not None:
        data[f"var-{name}-value"] = value
    return client.post(edit(run, name), data, **extra)


def changes(run: Run) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run=run, name=EVENT).select_related("actor").order_by("id"))


@pytest.fixture
def ops(personas: Any) -> Any:
    return grant(
        UserFactory(username="ops", first_name="Olga", last_name="Ops"),
        "orchestration.view_run",
        PERM_CHANGE_VARIABLES,
    )


@pytest.fixture
def open_run(personas: Any) -> Run:
    """In progress: its one step waits for alice."""
    load(screen_flow("review"), orchestration(variables=VARIABLES, stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    assert run.status == RunStatus.IN_PROGRESS
    return run


def test_a_change_sets_the_value_and_writes_one_event_with_old_new_and_reason(client, ops, open_run):
    run_set_variable(run_id=open_run.pk, name="total", raw_value="40", actor=None, reason="first count")
    client.force_login(ops)
    response = post(client, open_run, "total", "42", reason="  recounted the lines  ")
    assert response.status_code == 302 and response["Location"] == page(open_run)
    assert said(response) == ["Variable 'total' changed; the reason is in the run's events."]
    assert fresh(open_run).variables["total"] == 42
    first, event = changes(open_run)
    assert first.actor is None and first.payload["new"] == 40
    assert event.actor == ops
    assert event.payload == {"variable": "total", "old": 40, "new": 42, "reason": "recounted the lines"}
    # Nothing else moved: the run, its stage and step are as they were.
    assert fresh(open_run).status == RunStatus.IN_PROGRESS
    # The page shows the new value and the event, in words, with who did it.
    html = client.get(page(open_run)).content.decode()
    row = '<tr id="variable-total" class="variable-row"><th scope="row">total</th><td><pre class="json mb-0">'
    assert f"{row}42</pre>" in html
    assert "Variable changed by hand" in html and EVENT in html
    assert "Olga Ops" in html and "recounted the lines" in html and "old: 40; new: 42" in html


@pytest.mark.parametrize(
    "name,typed,stored",
    [
        ("total", "7", 7),
        ("rate", "2.50", "2.50"),
        ("due", "2026-12-01", "2026-12-01"),
        ("urgent", "on", True),
        ("tags", '["red", "blue"]', ["red", "blue"]),
        ("extra", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("note", "two\nlines", "two\nlines"),
        ("colour", "green", "green"),  # a variable declares no choices: typed in
    ],
)
def test_values_are_typed_by_the_declaration(client, ops, open_run, name, typed, stored):
    client.force_login(ops)
    assert post(client, open_run, name, typed).status_code == 302
    assert fresh(open_run).variables[name] == stored
    assert changes(open_run)[-1].payload["new"] == stored


def test_a_user_variable_is_picked_from_the_people_and_stored_as_their_id(client, ops, open_run, personas):
    client.force_login(ops)
    html = client.get(page(open_run)).content.decode()
    assert f'<option value="{personas.bob.pk}">bob</option>' in html
    assert post(client, open_run, "owner", str(personas.bob.pk)).status_code == 302
    assert fresh(open_run).variables["owner"] == personas.bob.pk


def test_the_forms_are_drawn_by_type_with_the_current_value(client, ops, open_run):
    run_set_variable(run_id=open_run.pk, name="due", raw_value="2026-03-04", actor=None, reason="seed")
    client.force_login(ops)
    html = client.get(page(open_run)).content.decode()
    assert html.count('<details class="variable-edit">') == len(VARIABLES)
    assert 'type="number" name="var-total-value"' in html
    assert 'type="date" name="var-due-value" value="2026-03-04"' in html
    assert 'type="checkbox" name="var-urgent-value"' in html
    assert 'name="var-code-value" value="A1"' in html  # its default, as the run holds it
    assert f'action="{edit(open_run, "total")}"' in html and f'hx-post="{edit(open_run, "total")}"' in html
    assert "Number · Sum of the lines" in html


def test_a_value_of_the_wrong_type_is_refused_beside_the_field_and_nothing_changes(client, ops, open_run):
    client.force_login(ops)
    response = post(client, open_run, "total", "twelve")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Change variable: total" in html and "Enter a whole number." in html
    assert 'value="twelve"' in html  # what was typed is kept
    assert "total" not in fresh(open_run).variables or fresh(open_run).variables["total"] is None
    assert not changes(open_run)
    for name, typed, message in [
        ("rate", "a lot", "Enter a number."),
        ("due", "31/12/2026", "Enter a valid date."),
        ("extra", "{not json", "Enter a valid JSON."),
        ("tags", '{"a": 1}', "Give a JSON list of choices"),
    ]:
        assert message in post(client, open_run, name, typed).content.decode(), name
    assert not changes(open_run)


def test_the_service_refuses_a_value_its_type_cannot_hold(ops, open_run):
    with pytest.raises(ValidationError) as refused:
        run_set_variable(run_id=open_run.pk, name="total", raw_value="2.5", actor=ops, reason="r")
    assert refused.value.message_dict == {"value": ["Not a number value: expected a whole number."]}
    with pytest.raises(ValidationError) as refused:
        run_set_variable(run_id=open_run.pk, name="code", raw_value="", actor=ops, reason="r")
    assert refused.value.message_dict == {"value": ["'code' is required: it cannot be emptied."]}
    with pytest.raises(ValidationError) as refused:
        run_set_variable(run_id=open_run.pk, name="code", raw_value="A1", actor=ops, reason="r")
    assert refused.value.message_dict == {"value": ["That is already its value: nothing was changed."]}
    assert fresh(open_run).variables["code"] == "A1" and not changes(open_run)


@pytest.mark.parametrize("reason,message", [("", "This field is required."), ("x" * 501, "at most 500")])
def test_a_reason_is_required_and_at_most_500_characters(client, ops, open_run, reason, message):
    client.force_login(ops)
    response = post(client, open_run, "total", "5", reason=reason)
    assert response.status_code == 200 and message in response.content.decode()
    assert fresh(open_run).variables.get("total") is None and not changes(open_run)
    with pytest.raises(ValidationError):
        run_set_variable(run_id=open_run.pk, name="total", raw_value="5", actor=ops, reason=reason or "   ")
    assert not changes(open_run)


def test_without_the_permission_no_form_and_a_post_is_403(client, personas, open_run):
    viewer = grant(UserFactory(username="viewer"), "orchestration.view_run")
    client.force_login(viewer)
    html = client.get(page(open_run)).content.decode()
    assert 'id="variable-total"' in html
    assert "variable-edit" not in html and "/variables/" not in html
    assert post(client, open_run, "total", "9").status_code == 403
    assert client.get(edit(open_run, "total")).status_code == 403
    assert fresh(open_run).variables.get("total") is None and not changes(open_run)
    with pytest.raises(PermissionDenied):
        run_set_variable(run_id=open_run.pk, name="total", raw_value="9", actor=viewer, reason="r")
    # Not even the page without view_run.
    client.force_login(grant(UserFactory(username="fixer"), PERM_CHANGE_VARIABLES))
    assert post(client, open_run, "total", "9").status_code == 403
    assert not changes(open_run)


def test_a_superuser_may(client, personas, open_run):
    client.force_login(personas.admin)
    assert post(client, open_run, "total", "3").status_code == 302
    assert changes(open_run)[0].actor == personas.admin


def test_an_unknown_variable_is_refused_with_a_message(client, ops, open_run):
    client.force_login(ops)
    before = dict(fresh(open_run).variables)
    response = post(client, open_run, "nope", "1")
    assert response.status_code == 302 and response["Location"] == page(open_run)
    assert said(response) == ["Not changed: 'nope' is not a variable of this run's definition."]
    with pytest.raises(ActionNotAllowed, match="'nope' is not a variable"):
        run_set_variable(run_id=open_run.pk, name="nope", raw_value="1", actor=ops, reason="r")
    assert fresh(open_run).variables == before and not changes(open_run)


def failing_run() -> Run:
    load(
        auto_flow("boom", outputs={"x": "1 / vars.divisor"}),
        orchestration(
            variables=[{"name": "divisor", "type": "number", "default": "0"}],
            stages=[stage("work", bg("calc", "boom", max_attempts=1))],
        ),
    )
    run = launch(record=make_case())
    assert run.status == RunStatus.ERROR
    return run


def test_a_failed_run_is_fixed_by_changing_its_variable_then_retrying(client, ops, personas):
    run = failing_run()
    client.force_login(ops)
    assert post(client, run, "divisor", "4", reason="0 was a placeholder").status_code == 302
    assert fresh(run).variables["divisor"] == 4
    assert fresh(run).status == RunStatus.ERROR  # nothing moves until someone retries
    from orchestration.services import step_retry
    from tests.orchestration.engine_support import step

    step_retry(step_run_id=step(run, "calc").pk, actor=personas.admin)
    assert fresh(run).status == RunStatus.COMPLETED


def test_a_suspended_run_may_be_changed(client, ops, open_run):
    run_suspend(run_id=open_run.pk)
    client.force_login(ops)
    assert post(client, open_run, "total", "1").status_code == 302
    assert fresh(open_run).variables["total"] == 1


@pytest.mark.parametrize("end", ["canceled", "completed"])
def test_a_run_that_has_ended_keeps_its_values(client, ops, personas, end):
    if end == "canceled":
        load(screen_flow("review"), orchestration(variables=VARIABLES, stages=[stage("s", task("a"))]))
        run = launch(record=make_case())
        run_cancel(run_id=run.pk)
    else:
        load(auto_flow("ok"), orchestration(variables=VARIABLES, stages=[stage("s", bg("b", "ok"))]))
        run = launch(record=make_case())
    assert fresh(run).status == end
    client.force_login(ops)
    html = client.get(page(run)).content.decode()
    assert "variable-edit" not in html
    assert f"The run is {end}: its variables stay as it ended." in html
    response = post(client, run, "total", "5")
    assert response.status_code == 302
    assert said(response) == [
        f"Not changed: the run is {end}; only the variables of a run in progress, suspended or in error "
        "can be changed."
    ]
    with pytest.raises(ActionNotAllowed, match=f"the run is {end}"):
        run_set_variable(run_id=run.pk, name="total", raw_value="5", actor=ops, reason="r")
    assert fresh(run).variables.get("total") is None and not changes(run)


def test_with_htmx_a_refusal_comes_back_into_the_row_and_success_reloads_the_page(client, ops, open_run):
    client.force_login(ops)
    refused = post(client, open_run, "total", "x", HTTP_HX_REQUEST="true")
    assert refused.status_code == 200
    html = refused.content.decode()
    assert html.startswith('<tr id="variable-total" class="variable-row">')
    assert '<details class="variable-edit" open>' in html and "Enter a whole number." in html
    assert "<html" not in html
    done = post(client, open_run, "total", "8", HTTP_HX_REQUEST="true")
    assert done.status_code == 200 and done["HX-Redirect"] == page(open_run)
    assert fresh(open_run).variables["total"] == 8 and len(changes(open_run)) == 1


def test_the_form_page_works_on_its_own(client, ops, open_run):
    client.force_login(ops)
    html = client.get(edit(open_run, "total")).content.decode()
    assert "Change variable: total" in html and 'name="var-total-value"' in html
    assert 'name="var-total-reason"' in html and 'maxlength="500"' in html
    assert client.get(reverse("monitor:run_variable", args=[999999, "total"])).status_code == 404
