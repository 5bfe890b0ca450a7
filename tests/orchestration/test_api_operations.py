"""The API's run operations: cancel a run, retry or skip a failed step. The run page's actions
through the same services and permissions (view_run and the action's own), answered with the
run as it then stands; refusals are JSON and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.models import Run, RunEvent, RunStatus, StepRun, StepStatus
from orchestration.services import run_launch
from records.services import record_update
from tests.factories import UserFactory, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.test_api import Api, errors, token_for
from workitems.models import WorkItem, WorkItemStatus

pytestmark = pytest.mark.django_db(transaction=True)


def divide_flow() -> dict[str, Any]:
    """Fails while the record's amount is 0; succeeds once someone fixes the amount."""
    return {
        "kind": "autolaunched_flow",
        "api_name": "divide",
        "outputs": [{"name": "ratio", "type": "decimal"}],
        "actions": [{"type": "set_outputs", "values": {"ratio": "100 / record.amount"}}],
    }


def define() -> None:
    """'review' waits for alice; 'ratio' fails on a case whose amount is 0, and its result
    is read by alice's review in the next stage."""
    load(
        divide_flow(),
        screen_flow("review"),
        orchestration(
            "review",
            stages=[
                {
                    "key": "check",
                    "steps": [
                        {
                            "key": "look",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"user": "alice"},
                        }
                    ],
                }
            ],
        ),
        orchestration(
            "ratio",
            variables=[{"name": "ratio", "type": "decimal"}],
            stages=[
                {
                    "key": "compute",
                    "steps": [
                        {
                            "key": "divide",
                            "kind": "background",
                            "flow": "divide",
                            "max_attempts": 1,
                            "outputs": {"ratio": "ratio"},
                        }
                    ],
                },
                {
                    "key": "read",
                    "steps": [
                        {
                            "key": "read",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"user": "alice"},
                        }
                    ],
                },
            ],
        ),
    )


@pytest.fixture
def admin_api(personas: Any) -> Api:
    define()
    return Api(token_for(personas.admin))


def failed_run() -> tuple[Run, StepRun]:
    case = make_case("Zero amount", amount="0")
    run = run_launch(orchestration="ratio", record=case)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    return run, StepRun.objects.get(run=run, key="divide")


def state(run: Run) -> tuple[Any, ...]:
    """What an action would change: the run, its steps, its events, its work items."""
    run = Run.objects.get(pk=run.pk)
    return (
        run.status,
        run.variables,
        sorted(StepRun.objects.filter(run=run).values_list("key", "status", "attempts", "outputs")),
        RunEvent.objects.filter(run=run).count(),
        sorted(WorkItem.objects.filter(run=run).values_list("pk", "status")),
    )


def names(run: Run) -> list[str]:
    return list(RunEvent.objects.filter(run=run).order_by("id").values_list("name", flat=True))


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_ends_the_run_cancels_its_work_and_keeps_the_reason(admin_api, personas):
    run = run_launch(orchestration="review", record=make_case())
    item = WorkItem.objects.get(run=run)

    response = admin_api.post(f"/api/runs/{run.pk}/cancel", {"reason": "  Opened by mistake "})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == run.pk
    assert body["status"] == "canceled"
    assert body["ended_at"] is not None
    assert [(st["key"], st["status"]) for st in body["stages"]] == [("check", "canceled")]
    assert body["stages"][0]["steps"][0]["status"] == "discontinued"
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELED
    item.refresh_from_db()
    assert item.status == WorkItemStatus.CANCELED
    canceled = RunEvent.objects.get(run=run, name="orchestration.run.canceled")
    assert canceled.actor == personas.admin
    reason = RunEvent.objects.get(run=run, name="orchestration.run.cancel_reason")
    assert reason.payload == {"reason": "Opened by mistake"}
    assert reason.actor == personas.admin


def test_cancel_without_a_body_needs_no_reason(admin_api):
    run = run_launch(orchestration="review", record=make_case())
    response = admin_api.post(f"/api/runs/{run.pk}/cancel", raw="")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "canceled"
    assert not RunEvent.objects.filter(run=run, name="orchestration.run.cancel_reason").exists()


def test_cancelling_an_ended_run_is_a_409_that_says_why_and_changes_nothing(admin_api):
    run = run_launch(orchestration="review", record=make_case())
    assert admin_api.post(f"/api/runs/{run.pk}/cancel").status_code == 200
    before = state(run)

    response = admin_api.post(f"/api/runs/{run.pk}/cancel", {"reason": "again"})

    assert response.status_code == 409
    assert errors(response) == {"__all__": ["cannot cancel a run that is canceled"]}
    assert state(run) == before


def test_cancel_needs_a_token(admin_api):
    run = run_launch(orchestration="review", record=make_case())
    before = state(run)
    response = Api(None).post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert state(run) == before


@pytest.mark.parametrize(
    ("held", "missing"),
    [
        ((), "'orchestration.view_run' and 'orchestration.cancel_run'"),
        (("view_run",), "'orchestration.cancel_run'"),
        # Cancelling answers with the run: seeing runs is needed too, as on the run page.
        (("cancel_run",), "'orchestration.view_run'"),
        (("view_run", "retry_step", "skip_step"), "'orchestration.cancel_run'"),
    ],
)
def test_cancel_needs_view_run_and_cancel_run(admin_api, held, missing):
    run = run_launch(orchestration="review", record=make_case())
    before = state(run)
    user = grant(UserFactory(username="dana"), *(f"orchestration.{c}" for c in held))
    response = Api(token_for(user)).post(f"/api/runs/{run.pk}/cancel", {"reason": "no"})
    assert response.status_code == 403
    assert errors(response) == {"__all__": [f"you need the permission {missing}"]}
    assert state(run) == before


def test_without_view_run_an_unknown_run_is_a_403_too(admin_api):
    """Ids cannot be probed: who may not see runs gets the same answer for any id."""
    user = grant(UserFactory(username="dana"), "orchestration.cancel_run")
    assert Api(token_for(user)).post("/api/runs/999999/cancel").status_code == 403


@pytest.mark.parametrize("run_id", ["999999", str(2**63)])
def test_cancelling_an_unknown_run_is_a_404(admin_api, run_id):
    response = admin_api.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 404
    assert errors(response) == {"__all__": [f"run {run_id} does not exist"]}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"reason": 5}, "reason", "must be a string, not int"),
        ({"reason": "x" * 1001}, "reason", "at most 1000 characters"),
        ({"reason": "nul\x00here"}, "reason", "cannot contain NUL (\\x00) characters"),
        ({"why": "typo"}, "why", "unknown field (expected reason)"),
    ],
)
def test_a_bad_cancel_body_is_a_400_naming_the_field(admin_api, body, field, message):
    run = run_launch(orchestration="review", record=make_case())
    before = state(run)
    response = admin_api.post(f"/api/runs/{run.pk}/cancel", body)
    assert response.status_code == 400
    assert errors(response) == {field: [message]}
    assert state(run) == before


def test_a_lone_surrogate_in_the_body_is_a_400(admin_api):
    run = run_launch(orchestration="review", record=make_case())
    response = admin_api.post(f"/api/runs/{run.pk}/cancel", raw='{"reason": "\\ud800"}')
    assert response.status_code == 400
    assert "lone surrogate" in errors(response)["__all__"][0]
    assert Run.objects.get(pk=run.pk).status == RunStatus.IN_PROGRESS


def test_the_actions_take_only_post(admin_api):
    run, sr = failed_run()
    for url in (
        f"/api/runs/{run.pk}/cancel",
        f"/api/runs/{run.pk}/steps/{sr.pk}/retry",
        f"/api/runs/{run.pk}/steps/{sr.pk}/skip",
    ):
        response = admin_api.get(url)
        assert response.status_code == 405
        assert response["Allow"] == "POST"


# --- retry ------------------------------------------------------------------------------------


def test_the_run_lists_its_step_runs_ids_for_retry_and_skip(admin_api):
    run, sr = failed_run()
    body = admin_api.get(f"/api/runs/{run.pk}").json()
    step = body["stages"][0]["steps"][0]
    assert (step["id"], step["key"], step["status"]) == (sr.pk, "divide", "error")
    assert step["error"] == sr.error
    assert "division by zero" in step["error"]


def test_retry_runs_a_fixed_step_again_and_the_run_goes_on(admin_api, personas):
    run, sr = failed_run()
    record_update(record=run.record, values={"amount": "4"})  # the admin fixes the data

    response = admin_api.post(f"/api/runs/{run.pk}/steps/{sr.pk}/retry", {"reason": "fixed the amount"})

    assert response.status_code == 200, response.content
    body = response.json()
    # Eager Celery: the new attempt ran on commit, before the run was read for the answer.
    assert body["status"] == "in_progress"
    assert body["current_stage"] == "read"
    assert body["variables"]["ratio"] == "25"
    sr.refresh_from_db()
    assert (sr.status, sr.attempts, sr.outputs) == (StepStatus.COMPLETED, 2, {"ratio": "25"})
    retried = RunEvent.objects.get(run=run, name="orchestration.step.retried")
    assert retried.actor == personas.admin
    assert retried.payload == {"reason": "fixed the amount"}
    assert "orchestration.run.recovered" in names(run)
    assert WorkItem.objects.get(run=run, step_run__key="read").assignee_user == personas.alice


def test_retry_of_a_step_that_fails_again_leaves_it_in_error_with_one_more_attempt(admin_api):
    run, sr = failed_run()
    response = admin_api.post(f"/api/runs/{run.pk}/steps/{sr.pk}/retry")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "error"
    sr.refresh_from_db()
    assert (sr.status, sr.attempts) == (StepStatus.ERROR, 2)


def test_retry_of_a_step_that_did_not_fail_is_a_409_and_changes_nothing(admin_api):
    run = run_launch(orchestration="review", record=make_case())
    sr = StepRun.objects.get(run=run, key="look")
    before = state(run)
    for action in ("retry", "skip"):
        response = admin_api.post(f"/api/runs/{run.pk}/steps/{sr.pk}/{action}")
        assert response.status_code == 409
        done = "retried" if action == "retry" else "skipped"
        assert errors(response) == {
            "__all__": [
                f"only a failed step of the stage in progress can be {done} (step 'look' is in progress)"
            ]
        }
    assert state(run) == before


def test_retry_of_a_step_of_a_canceled_run_is_a_409(admin_api):
    run, sr = failed_run()
    assert admin_api.post(f"/api/runs/{run.pk}/cancel").status_code == 200
    before = state(run)
    response = admin_api.post(f"/api/runs/{run.pk}/steps/{sr.pk}/retry")
    assert response.status_code == 409
    assert "step 'divide' is discontinued" in errors(response)["__all__"][0]
    assert state(run) == before


def test_a_step_of_another_run_or_no_step_at_all_is_a_404(admin_api):
    run, _ = failed_run()
    other, other_step = failed_run()
    before = (state(run), state(other))
    for url, message in (
        (f"/api/runs/{run.pk}/steps/{other_step.pk}/retry", f"run {run.pk} has no step {other_step.pk}"),
        (f"/api/runs/{run.pk}/steps/{other_step.pk}/skip", f"run {run.pk} has no step {other_step.pk}"),
        (f"/api/runs/{run.pk}/steps/999999/retry", f"run {run.pk} has no step 999999"),
        (f"/api/runs/{run.pk}/steps/{2**63}/skip", f"run {run.pk} has no step {2**63}"),
        (f"/api/runs/999999/steps/{other_step.pk}/retry", "run 999999 does not exist"),
    ):
        response = admin_api.post(url)
        assert response.status_code == 404, url
        assert errors(response) == {"__all__": [message]}
    assert (state(run), state(other)) == before


@pytest.mark.parametrize(
    ("action", "held", "missing"),
    [
        ("retry", ("view_run", "skip_step", "cancel_run"), "'orchestration.retry_step'"),
        ("retry", ("retry_step",), "'orchestration.view_run'"),
        ("skip", ("view_run", "retry_step", "cancel_run"), "'orchestration.skip_step'"),
        ("skip", ("skip_step",), "'orchestration.view_run'"),
    ],
)
def test_retry_and_skip_need_view_run_and_their_own_permission(admin_api, action, held, missing):
    run, sr = failed_run()
    before = state(run)
    user = grant(UserFactory(username="dana"), *(f"orchestration.{c}" for c in held))
    response = Api(token_for(user)).post(f"/api/runs/{run.pk}/steps/{sr.pk}/{action}", {"reason": "no"})
    assert response.status_code == 403
    assert errors(response) == {"__all__": [f"you need the permission {missing}"]}
    assert state(run) == before
    assert Api(None).post(f"/api/runs/{run.pk}/steps/{sr.pk}/{action}").status_code == 401
    assert state(run) == before


# --- skip -------------------------------------------------------------------------------------


def test_skip_completes_the_step_with_the_outputs_given_and_the_run_moves_on(admin_api, personas):
    run, sr = failed_run()

    response = admin_api.post(
        f"/api/runs/{run.pk}/steps/{sr.pk}/skip", {"outputs": {"ratio": "12.5"}, "reason": "by hand"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "in_progress"
    assert body["current_stage"] == "read"
    assert body["variables"] == {"ratio": "12.5"}
    assert body["stages"][0]["steps"][0]["outputs"] == {"ratio": "12.5"}
    sr.refresh_from_db()
    assert (sr.status, sr.outputs) == (StepStatus.COMPLETED, {"ratio": "12.5"})
    skipped = RunEvent.objects.get(run=run, name="orchestration.step.skipped")
    assert skipped.actor == personas.admin
    requested = RunEvent.objects.get(run=run, name="orchestration.step.skip_requested")
    assert requested.payload["reason"] == "by hand"
    assert WorkItem.objects.filter(run=run, step_run__key="read", status=WorkItemStatus.ASSIGNED).exists()


def test_skip_without_outputs_completes_the_step_with_none(admin_api):
    run, sr = failed_run()
    response = admin_api.post(f"/api/runs/{run.pk}/steps/{sr.pk}/skip", {"outputs": None})
    assert response.status_code == 200, response.content
    sr.refresh_from_db()
    assert (sr.status, sr.outputs) == (StepStatus.COMPLETED, {})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"outputs": {"nope": 1}}, {"outputs.nope": ["'nope' is not an output of this step's flow"]}),
        ({"outputs": {"ratio": "lots"}}, {"outputs.ratio": ["expected a value of type decimal"]}),
        ({"outputs": [1, 2]}, {"outputs": ["must be a JSON object, not list"]}),
        ({"outputs": {}, "value": 1}, {"value": ["unknown field (expected outputs and reason)"]}),
    ],
)
def test_skip_outputs_that_do_not_fit_are_a_400_and_nothing_changes(admin_api, body, expected):
    run, sr = failed_run()
    before = state(run)
    response = admin_api.post(f"/api/runs/{run.pk}/steps/{sr.pk}/skip", body)
    assert response.status_code == 400
    assert errors(response) == expected
    assert state(run) == before
