"""The test run of a draft (orchestration/builder/sandbox.py, sandbox_views.py): the draft runs
on a record through its stages, interactive steps completed as their assignees, background
steps run in place; after each step the page shows the variables, decisions, emails and calls;
and nothing is left behind: no row in any table, no email, no HTTP call."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.apps import apps
from django.core import mail

from orchestration.builder.sandbox import SandboxAction, SandboxStart, SandboxState, sandbox_replay
from orchestration.models import Draft, OutboxEmail
from records.models import Record
from tests.factories import grant, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, stage, task

pytestmark = pytest.mark.urls("tests.builder.sandbox_urlconf")


def enrich_flow() -> dict[str, Any]:
    """Scores the case, emails the ops team, tells a webhook: three effects a test run must hold."""
    return {
        "kind": "autolaunched_flow",
        "api_name": "sb_enrich",
        "outputs": [{"name": "risk", "type": "text"}],
        "actions": [
            {"type": "set_outputs", "values": {"risk": "'high' if record.severity == 'High' else 'low'"}},
            {
                "type": "send_email",
                "to": "'ops@example.com'",
                "subject": "New case {{ record.name }}",
                "body": "Risk {{ outputs.risk }}",
            },
            {"type": "http", "url": "'https://hooks.example.com/cases'", "json": {"name": "record.name"}},
        ],
    }


def close_flow() -> dict[str, Any]:
    return {
        "kind": "autolaunched_flow",
        "api_name": "sb_close",
        "actions": [{"type": "update_record", "values": {"status": "'closed'"}}],
    }


def documents(*, review: dict[str, Any] | None = None) -> dict[str, Any]:
    """intake (background: score) → decision: high risk → review (alice approves) → close
    (background: updates the record); low risk → close."""
    orch = orchestration(
        "sb_proc",
        variables=[{"name": "risk", "type": "text"}, {"name": "approved", "type": "boolean"}],
        stages=[
            stage(
                "intake",
                bg("score", "sb_enrich", outputs={"risk": "risk"}),
                next={
                    "outcomes": [{"label": "High risk", "when": "vars.risk == 'high'", "goto": "review"}],
                    "default": "close",
                },
            ),
            stage(
                "review",
                review or task("approve", "sb_review", user="alice", outputs={"approved": "approved"}),
            ),
            stage("close", bg("close", "sb_close")),
        ],
    )
    review_form = screen_flow(
        "sb_review",
        fields=[
            {"name": "approved", "type": "boolean"},
            {"name": "comment", "type": "text", "required": True},
        ],
    )
    return {
        "orchestration": orch,
        "flows": {"sb_enrich": enrich_flow(), "sb_review": review_form, "sb_close": close_flow()},
    }


def make_draft(owner: Any, **kwargs: Any) -> Draft:
    return Draft.objects.create(
        api_name="sb_proc", documents=documents(**kwargs), revision=1, created_by=owner
    )


def table_counts() -> dict[str, int]:
    """Rows in every table of the apps a run touches (their many-to-many tables too), and of the
    users' group memberships (a stand-in assignee is made a member for the test run)."""
    models = [
        m
        for label in ("orchestration", "workitems", "records", "auth")
        for m in apps.get_app_config(label).get_models(include_auto_created=True)
    ]
    return {m._meta.db_table: m._default_manager.count() for m in models}


@pytest.fixture
def no_http(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a test run called out: {args}")

    monkeypatch.setattr(requests, "request", refuse)


def page(client: Any, draft: Draft) -> str:
    response = client.get(f"/builder/{draft.pk}/try/")
    assert response.status_code == 200
    return str(response.content.decode())


# --- the whole test run through the pages, and what it leaves behind ------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_test_run_through_two_stages_leaves_no_row_and_sends_no_email(client, personas, no_http):  # type: ignore[no-untyped-def]
    # transaction=True: the test run's transaction is a real one, rolled back; had it committed,
    # its on-commit work would have run (Celery is eager in tests): emails delivered to mail.outbox.
    record = make_case("Leaky roof", severity="High")
    draft = make_draft(personas.admin)
    before = table_counts()
    outbox_before = OutboxEmail.objects.count()
    client.force_login(personas.admin)

    start = page(client, draft)
    assert "Test run — nothing is saved" in start
    assert f'<option value="{record.pk}">Leaky roof</option>' in start
    response = client.post(f"/builder/{draft.pk}/try/", {"source": "record", "record": record.pk})
    assert response.status_code == 302 and response["Location"] == f"/builder/{draft.pk}/try/"

    shown = page(client, draft)
    assert "Test run — nothing is saved" in shown
    assert "Started on Leaky roof" in shown
    assert "intake: High risk → review" in shown  # the decision taken
    assert "&quot;high&quot;" in shown  # risk, after the background step
    assert "To ops@example.com: “New case Leaky roof”" in shown  # the flow's email, not sent
    assert "would call POST https://hooks.example.com/cases" in shown  # the webhook, not called
    assert "To alice@example.com" in shown  # alice's assignment email, not sent
    assert 'id="sandbox-step-review-approve"' in shown
    assert '<option value="alice">alice</option>' in shown

    response = client.post(
        f"/builder/{draft.pk}/try/act/",
        {
            "action": "complete",
            "stage": "review",
            "step": "approve",
            "as": "alice",
            "f-approved": "on",
            "f-comment": "Fine",
        },
    )
    assert response.status_code == 302

    done = page(client, draft)
    assert "The test run is <strong>completed</strong>" in done
    assert "alice completed approve" in done
    assert (
        'approved</th><td><code class="text-break">true</code> <span class="badge text-bg-info">changed'
        in done
    )
    assert "closed" in done  # the record as the run left it
    assert 'id="sandbox-nothing-open"' in done

    assert table_counts() == before
    assert OutboxEmail.objects.count() == outbox_before
    assert mail.outbox == []
    assert Record.objects.get(pk=record.pk).data.get("status") in (None, "")


# --- the engine of it ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_step_shows_the_variables_decisions_emails_and_calls(personas, no_http):  # type: ignore[no-untyped-def]
    record = make_case("Leaky roof", severity="High")
    draft = make_draft(personas.admin)
    state = SandboxState(draft_id=draft.pk, revision=1, start=SandboxStart(record_id=record.pk))

    started = sandbox_replay(draft=draft, state=state, viewer=personas.admin)
    assert started.ok and started.status == "In progress"
    (first,) = started.moments
    assert first.variables == {"risk": "high", "approved": None}
    assert first.decisions == ["intake: High risk → review"]
    assert first.calls == ['would call POST https://hooks.example.com/cases with {"name": "Leaky roof"}']
    assert sorted((e.to, e.subject) for e in first.emails) == [
        (["alice@example.com"], "approve: Leaky roof"),  # her assignment email
        (["ops@example.com"], "New case Leaky roof"),  # the flow's
    ]
    assert [(s.key, s.status) for s in started.stages] == [("intake", "Completed"), ("review", "In progress")]
    assert started.stages[0].steps[0].outputs == {"risk": "high"}
    (open_step,) = started.open_steps
    assert (open_step.stage, open_step.step, [c.username for c in open_step.candidates]) == (
        "review",
        "approve",
        ["alice"],
    )
    assert [f.name for s in open_step.screens for f in s.fields] == ["approved", "comment"]

    state.actions.append(
        SandboxAction(
            kind="complete",
            stage="review",
            step="approve",
            user="alice",
            data={"approved": False, "comment": "No"},
        )
    )
    ended = sandbox_replay(draft=draft, state=state, viewer=personas.admin)
    assert ended.failed_action is None
    assert [m.title for m in ended.moments] == ["Started on Leaky roof", "alice completed approve"]
    assert ended.moments[1].variables == {"risk": "high", "approved": False}
    assert ended.status == "Completed"
    assert [(s.key, s.status) for s in ended.stages] == [
        ("intake", "Completed"),
        ("review", "Completed"),
        ("close", "Completed"),
    ]
    assert ended.record_values["status"] == "closed"
    # Nothing of it is in the database.
    assert not Draft.objects.get(pk=draft.pk).activated_version
    assert Record.objects.get(pk=record.pk).data.get("status") in (None, "")
    assert not apps.get_model("orchestration", "Run").objects.exists()
    assert not apps.get_model("orchestration", "OrchestrationVersion").objects.exists()


@pytest.mark.django_db
def test_a_low_risk_case_takes_the_default_route_on_a_sample_record(personas, no_http):  # type: ignore[no-untyped-def]
    draft = make_draft(personas.admin)
    state = SandboxState(
        draft_id=draft.pk,
        revision=1,
        start=SandboxStart(sample_name="Dripping tap", sample={"severity": "Low"}),
    )
    outcome = sandbox_replay(draft=draft, state=state, viewer=personas.admin)
    assert outcome.moments[0].decisions == ["intake: default → close"]
    assert outcome.status == "Completed" and outcome.not_reached == ["review"]
    assert outcome.record_label == "Dripping tap"
    assert not Record.objects.filter(name="Dripping tap").exists()


@pytest.mark.django_db
def test_a_queue_item_is_completed_by_a_member_or_the_viewer_standing_in(personas, no_http):  # type: ignore[no-untyped-def]
    review = task("approve", "sb_review", assignee={"queue": "triage"}, outputs={"approved": "approved"})
    draft = make_draft(personas.admin, review=review)
    record = make_case("Leaky roof", severity="High")
    memberships = personas.admin.groups.count(), personas.triage.users.count()
    state = SandboxState(draft_id=draft.pk, revision=1, start=SandboxStart(record_id=record.pk))
    outcome = sandbox_replay(draft=draft, state=state, viewer=personas.admin)
    assert [(c.username, c.stand_in) for c in outcome.open_steps[0].candidates] == [
        ("bob", False),
        ("admin", True),
    ]

    data = {"approved": True, "comment": "ok"}
    state.actions.append(
        SandboxAction(kind="complete", stage="review", step="approve", user="admin", data=data)
    )
    assert sandbox_replay(draft=draft, state=state, viewer=personas.admin).status == "Completed"
    # Someone else may not be made a stand-in.
    state.actions[0].user = "charlie"
    refused = sandbox_replay(draft=draft, state=state, viewer=personas.admin)
    assert (
        refused.failed_action == 0
        and "charlie may not act on review/approve" in refused.action_errors["__all__"][0]
    )
    assert (personas.admin.groups.count(), personas.triage.users.count()) == memberships


@pytest.mark.django_db
def test_a_wait_step_is_resumed_by_hand(personas, no_http):  # type: ignore[no-untyped-def]
    waiting = {"key": "pause", "kind": "wait", "wait": {"for": "2d"}}
    draft = make_draft(personas.admin, review=waiting)
    record = make_case("Leaky roof", severity="High")
    state = SandboxState(draft_id=draft.pk, revision=1, start=SandboxStart(record_id=record.pk))
    outcome = sandbox_replay(draft=draft, state=state, viewer=personas.admin)
    assert [(w.stage, w.step) for w in outcome.waiting] == [("review", "pause")]
    state.actions.append(SandboxAction(kind="resume", stage="review", step="pause"))
    assert sandbox_replay(draft=draft, state=state, viewer=personas.admin).status == "Completed"


# --- the pages -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_values_that_do_not_do_are_shown_on_the_form_and_not_kept(client, personas, no_http):  # type: ignore[no-untyped-def]
    record = make_case("Leaky roof", severity="High")
    draft = make_draft(personas.admin)
    client.force_login(personas.admin)
    client.post(f"/builder/{draft.pk}/try/", {"source": "record", "record": record.pk})
    response = client.post(
        f"/builder/{draft.pk}/try/act/",
        {"action": "complete", "stage": "review", "step": "approve", "as": "alice", "f-comment": ""},
    )
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert client.session[f"builder.sandbox.{draft.pk}"]["actions"] == []


@pytest.mark.django_db
def test_htmx_gets_the_run_region_and_start_over_forgets_the_run(client, personas, no_http):  # type: ignore[no-untyped-def]
    record = make_case("Leaky roof", severity="High")
    draft = make_draft(personas.admin)
    client.force_login(personas.admin)
    client.post(f"/builder/{draft.pk}/try/", {"source": "record", "record": record.pk})
    response = client.post(
        f"/builder/{draft.pk}/try/act/",
        {"action": "complete", "stage": "review", "step": "approve", "as": "alice", "f-comment": "Fine"},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 200 and body.startswith('\n<div id="sandbox-run"') and "<html" not in body
    assert "The test run is <strong>completed</strong>" in body
    response = client.post(
        f"/builder/{draft.pk}/try/act/", {"action": "reset"}, headers={"HX-Request": "true"}
    )
    assert response["HX-Redirect"] == f"/builder/{draft.pk}/try/"
    assert f"builder.sandbox.{draft.pk}" not in client.session


@pytest.mark.django_db
def test_a_draft_that_changed_starts_over(client, personas, no_http):  # type: ignore[no-untyped-def]
    record = make_case("Leaky roof", severity="High")
    draft = make_draft(personas.admin)
    client.force_login(personas.admin)
    client.post(f"/builder/{draft.pk}/try/", {"source": "record", "record": record.pk})
    Draft.objects.filter(pk=draft.pk).update(revision=2)
    shown = page(client, draft)
    assert "The draft has changed since this test run began: start it again." in shown
    assert "Start the test run" in shown


@pytest.mark.django_db
def test_a_draft_with_errors_is_refused_with_them(client, personas):  # type: ignore[no-untyped-def]
    draft = make_draft(personas.admin)
    docs = draft.documents
    docs["orchestration"]["stages"][1]["steps"][0]["flow"] = "no_such_flow"
    Draft.objects.filter(pk=draft.pk).update(documents=docs)
    client.force_login(personas.admin)
    shown = page(client, draft)
    assert "This draft cannot run until these are fixed:" in shown and "no_such_flow" in shown
    assert "Start the test run" not in shown


@pytest.mark.django_db
def test_who_may_try_a_draft(client, personas):  # type: ignore[no-untyped-def]
    draft = make_draft(personas.admin)
    urls = [f"/builder/{draft.pk}/try/", f"/builder/{draft.pk}/try/act/"]
    for url in urls:
        response = client.post(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    client.force_login(personas.alice)
    assert [client.get(urls[0]).status_code, client.post(urls[1]).status_code] == [403, 403]
    client.force_login(grant(personas.bob, "orchestration.change_orchestration"))
    assert client.get(urls[0]).status_code == 200
    assert client.get(f"/builder/{draft.pk + 1}/try/").status_code == 404


@pytest.mark.django_db
def test_an_autolaunched_draft_starts_from_the_inputs_typed_in(client, personas):  # type: ignore[no-untyped-def]
    docs = {
        "orchestration": orchestration(
            "sb_sum",
            start={
                "type": "autolaunched",
                "inputs": [{"name": "amount", "type": "decimal", "required": True}],
            },
            variables=[{"name": "total", "type": "decimal"}],
            stages=[stage("sum", bg("add", "sb_add", outputs={"total": "total"}))],
        ),
        "flows": {
            "sb_add": {
                "kind": "autolaunched_flow",
                "api_name": "sb_add",
                "outputs": [{"name": "total", "type": "decimal"}],
                "actions": [{"type": "set_outputs", "values": {"total": "vars.amount + 1"}}],
            }
        },
    }
    draft = Draft.objects.create(api_name="sb_sum", documents=docs, revision=3, created_by=personas.admin)
    client.force_login(personas.admin)
    assert "Record" not in page(client, draft).split('id="sandbox-start"')[1]
    assert client.post(f"/builder/{draft.pk}/try/", {}).status_code == 400  # the input is required
    assert client.post(f"/builder/{draft.pk}/try/", {"input_amount": "12.5"}).status_code == 302
    shown = page(client, draft)
    assert "The test run is <strong>completed</strong>" in shown
    assert "&quot;13.5&quot;" in shown


@pytest.mark.django_db
def test_a_sample_record_that_does_not_do_is_refused_with_its_errors(client, personas):  # type: ignore[no-untyped-def]
    draft = make_draft(personas.admin)
    make_case("Leaky roof")  # the record type exists
    client.force_login(personas.admin)
    response = client.post(f"/builder/{draft.pk}/try/", {"source": "sample", "sample_name": "Tap"})
    assert response.status_code == 400
    assert "severity: this field is required" in response.content.decode()
    assert f"builder.sandbox.{draft.pk}" not in client.session
