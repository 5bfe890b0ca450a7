"""Run detail page (monitoring): the diagram, variables, inputs and outputs, the event timeline,
who may see it, and that its query count does not grow with the run."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from orchestration.models import RunEvent, RunStatus, StepStatus
from orchestration.services import run_suspend
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, launch, stage, step, task

pytestmark = pytest.mark.django_db(transaction=True)


def url(run) -> str:  # type: ignore[no-untyped-def]
    return reverse("monitor:run", args=[run.pk])


def define_failing() -> None:
    """intake: two parallel steps, then a decision; work: a step that fails (no retries);
    a fault path is declared on intake (not taken)."""
    load(
        auto_flow("ok", outputs={"x": "42", "note": "'<script>alert(1)</script>'"}),
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration(
            variables=[
                {"name": "total", "type": "number"},
                {"name": "remark", "type": "text", "default": "'<script>alert(2)</script>'"},
            ],
            stages=[
                stage(
                    "intake",
                    bg("fetch", "ok", label="Fetch data", outputs={"total": "x"}),
                    bg("score", "ok", label="Score lead"),
                    next={
                        "outcomes": [{"label": "big deal", "when": "vars.total > 10", "goto": "work"}],
                        "default": "end",
                    },
                    fault_path="recover",
                ),
                stage("work", bg("calc", "boom", label="Calculate", max_attempts=1), next="end"),
                stage("recover", bg("fix", "ok")),
            ],
        ),
    )


@pytest.fixture
def failed_run(personas):  # type: ignore[no-untyped-def]
    define_failing()
    run = launch(record=make_case("<script>alert(3)</script> Acme"))
    assert run.status == RunStatus.ERROR
    return run


def test_the_diagram_shows_stages_in_order_with_parallel_steps_decision_and_error(
    client, personas, failed_run
):
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    # Stages left to right in definition order, each with its status written out.
    assert html.index('id="stage-intake"') < html.index('id="stage-work"') < html.index('id="stage-recover"')
    intake = section(html, "stage-intake")
    assert "Completed" in intake
    # Both parallel steps, each completed, with kind and attempts.
    assert "Fetch data" in intake and "Score lead" in intake
    assert intake.count("status-text-completed") == 2
    assert "background" in intake and "Attempts" in intake
    # The decision taken, and the fault path the definition declares.
    assert "Decision taken:" in intake and "big deal" in intake
    assert "on error → recover" in intake
    # The failed step: status and error text, with the retry and skip controls.
    work = section(html, "stage-work")
    assert "Error" in work and "step-error-current" in work
    assert "division by zero" in work
    calc = step(failed_run, "calc")
    assert reverse("monitor:step_action", args=[calc.pk, "retry"]) in work
    assert reverse("monitor:step_action", args=[calc.pk, "skip"]) in work
    # A stage never entered shows as not started.
    assert "Not started" in section(html, "stage-recover")
    # The run's error is shown at the top too.
    assert "run-error" in html


def section(html: str, stage_id: str) -> str:
    start = html.index(f'id="{stage_id}"')
    end = html.find('<section class="stage-box', start)
    return html[start : end if end != -1 else len(html)]


def test_variables_inputs_outputs_and_events_are_shown_and_escaped(client, personas, failed_run):
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    # Variables: name and value.
    variables = html[html.index('id="variables-h"') : html.index('id="events-h"')]
    assert re.search(r"<th scope=\"row\">total</th><td><pre[^>]*>42</pre>", variables)
    # Outputs of the step, in a collapsible block.
    assert '<details class="step-io">' in html and "Outputs" in html and "&quot;x&quot;: 42" in html
    # The event timeline, newest first, with names and stages.
    events = html[html.index('id="events-h"') :]
    assert "newest first" in events
    names = re.findall(r'<td class="event-name" data-event="([^"]+)">', events)
    assert names[0] == "orchestration.run.error"
    assert names[-1] == RunEvent.objects.filter(run=failed_run).order_by("id").first().name
    assert "orchestration.stage.decision" in names
    # Nothing from the data is rendered as markup: record name, variable, step output.
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)" in html and "&lt;script&gt;alert(2)" in html
    assert "&lt;script&gt;alert(3)" in html


def test_interactive_step_shows_its_assignee(client, personas):
    load(
        screen_flow("review"),
        orchestration(stages=[stage("s", task("a", user="alice"), task("b", assignee={"queue": "triage"}))]),
    )
    run = launch(record=make_case())
    client.force_login(personas.admin)
    html = client.get(url(run)).content.decode()
    assignees = re.findall(r'<dd class="step-assignee">([^<]+)</dd>', html)
    assert assignees == ["alice", "queue Triage"]
    assert html.count("status-text-in_progress") == 2


def test_a_stage_entered_twice_shows_the_latest_and_a_count(client, personas):
    load(
        screen_flow("review", fields=[{"name": "ok", "type": "boolean"}]),
        orchestration(
            stages=[
                stage("draft", task("write")),
                stage(
                    "check",
                    task("review"),
                    next={
                        "outcomes": [{"label": "rework", "when": "not steps.review.ok", "goto": "draft"}],
                        "default": "end",
                    },
                ),
            ]
        ),
    )
    from workitems.services import workitem_complete

    from .engine_support import open_item

    run = launch(record=make_case())
    workitem_complete(item=open_item(run, "write"), user=personas.alice, data={})
    workitem_complete(item=open_item(run, "review"), user=personas.alice, data={"ok": False})
    client.force_login(personas.admin)
    html = client.get(url(run)).content.decode()
    draft = section(html, "stage-draft")
    assert "entered 2\N{MULTIPLICATION SIGN}, latest shown" in draft and "In progress" in draft
    assert "Decision taken:</strong> rework" in section(html, "stage-check")


@pytest.mark.parametrize("who,expected", [("alice", 403), ("viewer", 200)])
def test_the_page_needs_the_view_permission(client, personas, failed_run, who, expected):
    user = (
        personas.alice if who == "alice" else grant(UserFactory(username="viewer"), "orchestration.view_run")
    )
    client.force_login(user)
    assert client.get(url(failed_run)).status_code == expected


def test_anonymous_goes_to_login_and_unknown_run_is_404(client, personas):
    response = client.get(reverse("monitor:run", args=[1]))
    assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(personas.admin)
    assert client.get(reverse("monitor:run", args=[999999])).status_code == 404
    assert client.get("/monitor/runs/99999999999999999999/").status_code == 404


def test_a_viewer_without_action_permissions_sees_no_controls(client, personas, failed_run):
    viewer = grant(UserFactory(username="viewer"), "orchestration.view_run")
    client.force_login(viewer)
    html = client.get(url(failed_run)).content.decode()
    assert "division by zero" in html
    assert "/action/" not in html and "/monitor/steps/" not in html


def test_controls_follow_the_run_status(client, personas, failed_run):
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    # A run in error can be canceled or re-checked; not suspended or resumed.
    for action in ("cancel", "recheck"):
        assert reverse("monitor:run_action", args=[failed_run.pk, action]) in html
    for action in ("suspend", "resume"):
        assert reverse("monitor:run_action", args=[failed_run.pk, action]) not in html


def test_a_suspended_run_offers_resume_but_not_retry(client, personas):
    load(screen_flow("review"), orchestration(stages=[stage("s", task("a"))]))
    run = launch(record=make_case())
    run_suspend(run_id=run.pk, actor=personas.admin)
    client.force_login(personas.admin)
    html = client.get(url(run)).content.decode()
    assert reverse("monitor:run_action", args=[run.pk, "resume"]) in html
    assert reverse("monitor:run_action", args=[run.pk, "suspend"]) not in html
    assert step(run, "a").status == StepStatus.IN_PROGRESS


def test_events_are_limited_to_the_latest(client, personas, failed_run, monkeypatch):
    from orchestration.selectors import detail

    monkeypatch.setattr(detail, "RUN_DETAIL_EVENTS", 3)
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    events = html[html.index('id="events-h"') :]
    assert len(re.findall(r'<td class="event-name"', events)) == 3
    assert "the latest 3 shown" in events


def test_a_fault_path_taken_is_shown_on_the_failed_stage(client, personas):
    load(
        auto_flow("ok"),
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration(
            stages=[
                stage("work", bg("calc", "boom", max_attempts=1), fault_path="recover", next="end"),
                stage("recover", bg("fix", "ok")),
            ]
        ),
    )
    run = launch(record=make_case())
    assert run.status == RunStatus.COMPLETED
    client.force_login(personas.admin)
    html = client.get(url(run)).content.decode()
    work = section(html, "stage-work")
    assert "Decision taken:</strong> fault path: calc failed" in work
    assert "division by zero" in work and "status-text-error" in work
    # The step kept its error, but nothing can be done with it any more: its stage is over.
    assert "/monitor/steps/" not in html
    assert "status-text-completed" in section(html, "stage-recover")


def test_the_header_names_the_current_stage_by_its_label(client, personas):
    """It showed the stage's key ("Current stage: provisioning")."""
    load(
        screen_flow("review"), orchestration(stages=[stage("provisioning", task("a"), label="Provisioning")])
    )
    run = launch(record=make_case())
    grant(personas.alice, "orchestration.view_run")
    client.force_login(personas.alice)
    html = client.get(url(run)).content.decode()
    assert "<dt>Current stage</dt><dd>Provisioning</dd>" in html


def test_events_read_as_words_beside_their_dotted_names(client, personas, failed_run):
    """The timeline said only `orchestration.step.retry_scheduled`; people read "Step retry
    scheduled" (the dotted name stays: logs, the API and the admin use it)."""
    client.force_login(personas.admin)
    events = client.get(url(failed_run)).content.decode().split('id="events-h"', 1)[1]
    assert re.search(
        r'data-event="orchestration.run.error">Run in error <code[^>]*>orchestration.run.error</code>', events
    )
    assert re.search(r'data-event="orchestration.stage.started">Stage started <code', events)
    assert re.search(r'data-event="orchestration.stage.decision">Decision taken <code', events)
