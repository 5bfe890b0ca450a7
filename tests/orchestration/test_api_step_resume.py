"""The API's "Resume now" of a wait step (POST /api/runs/<id>/steps/<step_run_id>/resume): the run
page's action, through the same service (step_resume) and permissions (view_run and
retry_step). The run's JSON shows when a waiting step resumes (`wake_at`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestration.models import Run, RunEvent, RunStatus, StepRun, StepStatus
from orchestration.services import run_suspend
from tests.clock import Clock
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration
from tests.orchestration.engine_support import bg, fresh, launch, stage, step
from tests.orchestration.test_api import Api, errors, token_for

pytestmark = pytest.mark.django_db(transaction=True)

START = dt.datetime(2026, 12, 28, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def waiting(personas: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Run, StepRun, Clock]:
    clock = Clock(monkeypatch, START)
    load(
        auto_flow("calc", outputs={"x": "1"}),
        orchestration(
            stages=[
                stage("hold", {"key": "w", "kind": "wait", "wait": {"for": "3d"}}),
                stage("next", bg("b", "calc", run="inline")),
            ]
        ),
    )
    run = launch(record=make_case())
    return run, step(run, "w"), clock


@pytest.fixture
def operator() -> Api:
    user = grant(UserFactory(username="operator"), "orchestration.view_run", "orchestration.retry_step")
    return Api(token_for(user))


def url(run: Run, sr: StepRun) -> str:
    return f"/api/runs/{run.pk}/steps/{sr.pk}/resume"


def resumed(run: Run) -> int:
    return RunEvent.objects.filter(run=run, name="orchestration.step.resume_requested").count()


def test_the_run_shows_when_its_wait_step_resumes(waiting: Any, operator: Api) -> None:
    run, sr, _clock = waiting
    body = operator.get(f"/api/runs/{run.pk}").json()
    [wait] = [s for st in body["stages"] for s in st["steps"] if s["key"] == "w"]
    assert (wait["id"], wait["kind"], wait["status"]) == (sr.pk, "wait", "in_progress")
    assert dt.datetime.fromisoformat(wait["wake_at"]) == START + dt.timedelta(days=3)


def test_resume_completes_the_wait_now_and_the_run_moves_on(waiting: Any, operator: Api) -> None:
    run, sr, _clock = waiting
    response = operator.post(url(run, sr), {"reason": "customer called"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == RunStatus.COMPLETED
    steps = {s["key"]: s["status"] for st in body["stages"] for s in st["steps"]}
    assert steps == {"w": "completed", "b": "completed"}
    assert fresh(run).status == RunStatus.COMPLETED
    event = RunEvent.objects.get(run=run, name="orchestration.step.resume_requested")
    assert (event.step, event.payload["reason"], event.actor.get_username()) == (  # type: ignore[union-attr]
        "w",
        "customer called",
        "operator",
    )
    assert RunEvent.objects.filter(run=run, step="w", name="orchestration.step.completed").count() == 1
    # Done: a second resume is a 409 that changes nothing.
    again = operator.post(url(run, sr))
    assert again.status_code == 409
    assert errors(again)["__all__"] == [
        "only a wait step that is waiting can be resumed (step 'w' is completed)"
    ]
    assert resumed(run) == 1


def test_a_suspended_runs_wait_is_a_409(waiting: Any, operator: Api) -> None:
    run, sr, _clock = waiting
    run_suspend(run_id=run.pk)
    response = operator.post(url(run, sr))
    assert response.status_code == 409
    assert "cannot resume a step of a run that is suspended" in errors(response)["__all__"][0]
    assert step(run, "w").status == StepStatus.IN_PROGRESS and resumed(run) == 0


def test_a_step_that_is_not_a_wait_is_a_409(personas: Any, operator: Api) -> None:
    load(
        auto_flow("calc", outputs={"x": "1"}),
        orchestration(stages=[stage("s", bg("b", "calc", run="inline"))]),
    )
    run = launch(record=make_case())
    response = operator.post(url(run, step(run, "b")))
    assert response.status_code == 409
    assert "only a wait step that is waiting can be resumed" in errors(response)["__all__"][0]


def test_without_retry_step_it_is_a_403_and_the_step_still_waits(waiting: Any) -> None:
    run, sr, _clock = waiting
    viewer = Api(token_for(grant(UserFactory(username="viewer"), "orchestration.view_run")))
    response = viewer.post(url(run, sr))
    assert response.status_code == 403
    assert "orchestration.retry_step" in errors(response)["__all__"][0]
    assert Api(None).post(url(run, sr)).status_code == 401
    assert step(run, "w").status == StepStatus.IN_PROGRESS and resumed(run) == 0


def test_a_step_of_another_run_or_no_run_is_a_404(waiting: Any, operator: Api) -> None:
    run, sr, _clock = waiting
    other = launch(record=make_case("Other"))
    response = operator.post(f"/api/runs/{other.pk}/steps/{sr.pk}/resume")
    assert response.status_code == 404
    assert errors(response)["__all__"] == [f"run {other.pk} has no step {sr.pk}"]
    assert operator.post(f"/api/runs/999999/steps/{sr.pk}/resume").status_code == 404
    assert step(run, "w").status == StepStatus.IN_PROGRESS and resumed(run) == 0


def test_bad_input_is_a_400(waiting: Any, operator: Api) -> None:
    run, sr, _clock = waiting
    response = operator.post(url(run, sr), {"reason": "x", "outputs": {}})
    assert response.status_code == 400
    assert "unknown field" in errors(response)["outputs"][0]
    response = operator.post(url(run, sr), {"reason": "x" * 1001})
    assert response.status_code == 400 and "reason" in errors(response)
    assert step(run, "w").status == StepStatus.IN_PROGRESS and resumed(run) == 0
