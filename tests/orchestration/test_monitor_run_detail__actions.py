"""Run detail actions through the page: every action shows a confirmation on GET, acts on POST,
reports its outcome and records an event with the actor and the reason; refused without the
permission or when the run's state does not allow it."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from orchestration.models import RunEvent, RunStatus, StepStatus
from records.services import record_update
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, fresh, launch, stage, step, task

pytestmark = pytest.mark.django_db(transaction=True)


def detail(run) -> str:  # type: ignore[no-untyped-def]
    return reverse("monitor:run", args=[run.pk])


def run_url(run, action: str) -> str:  # type: ignore[no-untyped-def]
    return reverse("monitor:run_action", args=[run.pk, action])


def step_url(sr, action: str) -> str:  # type: ignore[no-untyped-def]
    return reverse("monitor:step_action", args=[sr.pk, action])


def said(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in get_messages(response.wsgi_request)]


def open_run():  # type: ignore[no-untyped-def]
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    return launch(record=make_case())


def failing_run(flow: dict | None = None):  # type: ignore[no-untyped-def]
    """A run in error: its only step divides by the case's amount, which is 0."""
    load(
        flow or auto_flow("boom", outputs={"x": "1 / record.amount"}),
        orchestration(stages=[stage("work", bg("calc", "boom", max_attempts=1))]),
    )
    case = make_case(amount="0")
    run = launch(record=case)
    assert run.status == RunStatus.ERROR
    return run, case


def last_event(run, name: str) -> RunEvent:  # type: ignore[no-untyped-def]
    return RunEvent.objects.filter(run=run, name=name).select_related("actor").latest("id")


@pytest.mark.parametrize(
    "action,status,message,event",
    [
        ("cancel", RunStatus.CANCELED, "Run canceled.", "orchestration.run.cancel_reason"),
        ("suspend", RunStatus.SUSPENDED, "Run suspended.", "orchestration.run.suspended"),
        (
            "recheck",
            RunStatus.IN_PROGRESS,
            "Conditions re-checked. The run is in progress.",
            "orchestration.run.rechecked",
        ),
    ],
)
def test_run_actions_confirm_then_act(client, personas, action, status, message, event):
    run = open_run()
    client.force_login(personas.admin)
    # GET: a confirmation page that says what will happen; nothing done yet.
    page = client.get(run_url(run, action))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Confirm" in html and 'name="reason"' in html and 'method="post"' in html
    assert fresh(run).status == RunStatus.IN_PROGRESS
    # POST: done, reported, recorded with actor and reason.
    response = client.post(run_url(run, action), {"reason": "customer asked"}, follow=True)
    assert response.redirect_chain[-1][0] == detail(run)
    assert message in said(response) or message in response.content.decode()
    assert fresh(run).status == status
    ev = last_event(run, event)
    assert ev.actor == personas.admin and ev.payload["reason"] == "customer asked"


def test_resume_after_suspend(client, personas):
    run = open_run()
    client.force_login(personas.admin)
    client.post(run_url(run, "suspend"))
    response = client.post(run_url(run, "resume"), {"reason": "legal said yes"}, follow=True)
    assert "Run resumed." in response.content.decode()
    assert fresh(run).status == RunStatus.IN_PROGRESS
    ev = last_event(run, "orchestration.run.resumed")
    assert ev.actor == personas.admin and ev.payload["reason"] == "legal said yes"


def test_cancel_event_names_the_admin(client, personas):
    run = open_run()
    client.force_login(personas.admin)
    client.post(run_url(run, "cancel"))
    assert last_event(run, "orchestration.run.canceled").actor == personas.admin


def test_retry_after_fixing_the_cause_completes_the_run(client, personas):
    run, case = failing_run()
    calc = step(run, "calc")
    client.force_login(personas.admin)
    page = client.get(step_url(calc, "retry")).content.decode()
    assert "division by zero" in page and "Confirm" in page
    record_update(record=case, values={"amount": "2"})
    response = client.post(step_url(calc, "retry"), {"reason": "amount fixed"}, follow=True)
    html = response.content.decode()
    assert "Step retried: attempt 2 queued." in html
    run = fresh(run)
    assert run.status == RunStatus.COMPLETED
    ev = last_event(run, "orchestration.step.retried")
    assert ev.actor == personas.admin and ev.payload["reason"] == "amount fixed" and ev.step == "calc"
    # The page after the redirect shows the step completed.
    assert "status-text-completed" in html


def test_skip_shows_a_form_of_the_flow_outputs_and_checks_it(client, personas):
    flow = auto_flow("boom", outputs={"x": "1 / record.amount"})
    flow["outputs"] = [
        {"name": "x", "type": "number"},
        {"name": "when", "type": "date"},
        {"name": "ok", "type": "boolean"},
    ]
    flow["actions"] = [{"type": "set_outputs", "values": {"x": "1 / record.amount"}}]
    run, _ = failing_run(flow)
    calc = step(run, "calc")
    client.force_login(personas.admin)
    html = client.get(step_url(calc, "skip")).content.decode()
    assert 'type="number" name="out_x"' in html
    assert 'type="date" name="out_when"' in html
    assert 'type="checkbox" name="out_ok"' in html
    # A bad value: shown beside its field, everything typed kept, nothing done.
    response = client.post(
        step_url(calc, "skip"), {"out_x": "many", "out_when": "2026-01-02", "reason": "manual entry"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a whole number." in html and "is-invalid" in html
    assert 'value="many"' in html and 'value="2026-01-02"' in html and "manual entry" in html
    assert step(run, "calc").status == StepStatus.ERROR
    # A good one: the step is completed with those outputs and the run moves on.
    response = client.post(
        step_url(calc, "skip"),
        {"out_x": "7", "out_when": "2026-01-02", "out_ok": "on", "reason": "manual entry"},
        follow=True,
    )
    assert "Step skipped" in response.content.decode()
    assert step(run, "calc").status == StepStatus.COMPLETED
    assert step(run, "calc").outputs == {"x": 7, "when": "2026-01-02", "ok": True}
    assert fresh(run).status == RunStatus.COMPLETED
    ev = last_event(run, "orchestration.step.skip_requested")
    assert ev.actor == personas.admin and ev.payload["reason"] == "manual entry"


def test_skip_form_of_a_screen_flow_uses_its_fields(client, personas):
    load(
        screen_flow(
            "review",
            fields=[
                {"name": "approved", "type": "boolean"},
                {"name": "level", "type": "choice", "choices": ["A", "B"], "required": True},
            ],
        ),
        orchestration(stages=[stage("s", task("a"))]),
    )
    run = launch(record=make_case())
    sr = step(run, "a")
    # An interactive step in error (as when its completion condition cannot be evaluated).
    type(sr).objects.filter(pk=sr.pk).update(status=StepStatus.ERROR, error="completion failed")
    client.force_login(personas.admin)
    html = client.get(step_url(sr, "skip")).content.decode()
    assert 'name="out_approved"' in html and '<option value="B">B</option>' in html
    response = client.post(step_url(sr, "skip"), {"out_level": ""})
    assert "This field is required." in response.content.decode()


@pytest.mark.parametrize(
    "url_of",
    [
        lambda run: run_url(run, "cancel"),
        lambda run: run_url(run, "recheck"),
        lambda run: step_url(step(run, "calc"), "retry"),
        lambda run: step_url(step(run, "calc"), "skip"),
    ],
)
def test_a_forged_post_without_the_permission_is_refused(client, personas, url_of):
    run, _ = failing_run()
    viewer = grant(UserFactory(username="viewer"), "orchestration.view_run")
    client.force_login(viewer)
    before = RunEvent.objects.filter(run=run).count()
    assert client.get(url_of(run)).status_code == 403
    assert client.post(url_of(run), {"reason": "x"}).status_code == 403
    assert RunEvent.objects.filter(run=run).count() == before
    assert fresh(run).status == RunStatus.ERROR


def test_each_action_needs_its_own_permission(client, personas):
    run, _ = failing_run()
    canceller = grant(UserFactory(username="canceller"), "orchestration.view_run", "orchestration.cancel_run")
    client.force_login(canceller)
    html = client.get(detail(run)).content.decode()
    assert run_url(run, "cancel") in html
    assert run_url(run, "recheck") not in html and "/monitor/steps/" not in html
    assert client.post(step_url(step(run, "calc"), "retry")).status_code == 403
    client.post(run_url(run, "cancel"))
    assert fresh(run).status == RunStatus.CANCELED


def test_an_action_no_longer_valid_is_reported_not_a_500(client, personas):
    run = open_run()
    client.force_login(personas.admin)
    client.post(run_url(run, "cancel"))
    response = client.post(run_url(run, "suspend"), follow=True)
    assert response.status_code == 200
    assert "Cannot suspend this run: it is canceled." in response.content.decode()
    response = client.post(step_url(step(run, "a"), "retry"), follow=True)
    assert "Cannot retry step" in response.content.decode()


def test_unknown_action_or_step_is_404(client, personas):
    run = open_run()
    client.force_login(personas.admin)
    assert client.get(run_url(run, "explode")).status_code == 404
    assert client.get(step_url(step(run, "a"), "explode")).status_code == 404
    assert client.get(reverse("monitor:step_action", args=[999999, "retry"])).status_code == 404
