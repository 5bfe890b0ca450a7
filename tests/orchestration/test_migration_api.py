"""Moving running runs to another version through the API (POST /api/orchestrations/<name>/
migrations/preview and /migrations): the service of the version page's "Migrate runs here", with
its permissions (a monitoring permission and import_definitions). The preview counts and changes
nothing; the apply moves what can move and leaves the refused runs as they were; bad input is a
400 naming the field, an unknown orchestration or version a 404, and nothing changes then."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.models import Run, RunEvent, StageRun, StepRun
from orchestration.services import run_launch
from tests.factories import UserFactory, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import stage, task
from tests.orchestration.test_api import Api, errors, token_for
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

pytestmark = pytest.mark.django_db

RUNS = 12
AHEAD = 4  # runs already in the "pay" stage, which version 2 drops
PREVIEW = "/api/orchestrations/proc/migrations/preview"
APPLY = "/api/orchestrations/proc/migrations"
MAPPING = {"stages": {"review": "approval"}, "steps": {"check": "verify"}}
GONE = "its current stage 'pay' is not in the new version (map it to one)"


@pytest.fixture
def runs(personas: Any) -> list[Run]:
    load(
        screen_flow("review"),
        orchestration("proc", stages=[stage("review", task("check")), stage("pay", task("pay_out"))]),
        orchestration("other", stages=[stage("review", task("check"))]),
    )
    case = make_case("Case")
    launched = [run_launch(orchestration="proc", record=case) for _ in range(RUNS)]
    for run in launched[:AHEAD]:
        item = WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)
        workitem_complete(item=item, user=personas.alice, data={"approved": "true"})
    # Version 2: "review" is now "approval", its step "check" is "verify"; "pay" is replaced.
    load(
        orchestration("proc", stages=[stage("approval", task("verify")), stage("payout", task("send_money"))])
    )
    return launched


@pytest.fixture
def api() -> Api:
    """An operator who may watch runs and import definitions: what the version page asks."""
    operator = grant(
        UserFactory(username="operator"), "orchestration.view_run", "orchestration.import_definitions"
    )
    return Api(token_for(operator))


def versions() -> dict[int, int]:
    """Version number -> how many runs of "proc" are on it."""
    out: dict[int, int] = {}
    for n in Run.objects.filter(orchestration__api_name="proc").values_list("version__number", flat=True):
        out[n] = out.get(n, 0) + 1
    return out


def migrated_events() -> int:
    return RunEvent.objects.filter(name="orchestration.run.migrated").count()


def test_preview_counts_the_runs_that_can_move_and_lists_the_refused_with_reasons(
    runs: list[Run], api: Api
) -> None:
    response = api.post(PREVIEW, {"from_version": 1, "to_version": 2, "mapping": MAPPING})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["orchestration"], body["from_version"], body["to_version"]) == ("proc", 1, 2)
    assert (body["runs"], body["movable"], body["refused"]) == (RUNS, RUNS - AHEAD, AHEAD)
    assert body["reasons"] == [{"reason": GONE, "runs": AHEAD}]
    assert body["refused_runs"] == [{"id": r.pk, "reason": GONE} for r in runs[:AHEAD]]
    assert body["refused_runs_complete"] is True
    # Nothing changed.
    assert versions() == {1: RUNS} and migrated_events() == 0
    # Without the mapping the renamed stage is not found: every run is refused.
    body = api.post(PREVIEW, {"from_version": 1, "to_version": 2}).json()
    assert (body["movable"], body["refused"]) == (0, RUNS)


def test_preview_of_some_runs_judges_only_those(runs: list[Run], api: Api) -> None:
    other = run_launch(orchestration="other", record=make_case("Elsewhere"))
    ids = [runs[0].pk, runs[-1].pk, other.pk]
    body = api.post(PREVIEW, {"from_version": 1, "to_version": 2, "mapping": MAPPING, "run_ids": ids}).json()
    assert (body["runs"], body["movable"], body["refused"]) == (3, 1, 2)
    assert {r["id"]: r["reason"] for r in body["refused_runs"]} == {
        runs[0].pk: GONE,
        other.pk: "it is no longer an open run of that version",
    }


def test_apply_moves_the_runs_that_can_and_leaves_the_others_as_they_were(runs: list[Run], api: Api) -> None:
    refused_before = list(StepRun.objects.filter(run__in=runs[:AHEAD]).values_list("pk", "key", "status"))
    response = api.post(APPLY, {"from_version": 1, "to_version": 2, "mapping": MAPPING})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["migrated"], body["refused"]) == (RUNS - AHEAD, AHEAD)
    assert body["reasons"] == [{"reason": GONE, "runs": AHEAD}]
    assert versions() == {1: AHEAD, 2: RUNS - AHEAD}
    assert migrated_events() == RUNS - AHEAD
    moved = runs[AHEAD:]
    assert set(Run.objects.filter(pk__in=[r.pk for r in moved]).values_list("current_stage", flat=True)) == {
        "approval"
    }
    assert set(StageRun.objects.filter(run__in=moved).values_list("key", flat=True)) == {"approval"}
    assert set(StepRun.objects.filter(run__in=moved).values_list("key", flat=True)) == {"verify"}
    # The refused runs' steps are exactly as they were.
    assert (
        list(StepRun.objects.filter(run__in=runs[:AHEAD]).values_list("pk", "key", "status"))
        == refused_before
    )
    # The actor is the token's user.
    event = RunEvent.objects.filter(name="orchestration.run.migrated").first()
    assert event is not None and event.actor is not None and event.actor.get_username() == "operator"
    # Again: nothing left that can move.
    body = api.post(APPLY, {"from_version": 1, "to_version": 2, "mapping": MAPPING}).json()
    assert (body["migrated"], body["refused"]) == (0, AHEAD)
    assert migrated_events() == RUNS - AHEAD


def test_apply_to_some_runs_moves_only_those(runs: list[Run], api: Api) -> None:
    ids = [runs[AHEAD].pk, runs[AHEAD + 1].pk, runs[0].pk, 999_999]
    body = api.post(APPLY, {"from_version": 1, "to_version": 2, "mapping": MAPPING, "run_ids": ids}).json()
    assert (body["migrated"], body["refused"]) == (2, 2)
    assert {r["id"] for r in body["refused_runs"]} == {runs[0].pk, 999_999}
    assert versions() == {1: RUNS - 2, 2: 2}
    assert migrated_events() == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "from_version", "this field is required"),
        ({"from_version": 1}, "to_version", "this field is required"),
        ({"from_version": "one", "to_version": 2}, "from_version", "must be a positive integer"),
        ({"from_version": 2, "to_version": 2}, "to_version", "the runs are on that version already"),
        ({"from_version": 1, "to_version": 2, "mapping": []}, "mapping", "must be a JSON object"),
        ({"from_version": 1, "to_version": 2, "mapping": {"stage": {}}}, "mapping.stage", "unknown field"),
        (
            {"from_version": 1, "to_version": 2, "mapping": {"stages": ["review=approval"]}},
            "mapping.stages",
            "must be a JSON object of old key to new key",
        ),
        (
            {"from_version": 1, "to_version": 2, "mapping": {"stages": {"review": 2}}},
            "mapping.stages.review",
            "must be a string",
        ),
        (
            {"from_version": 1, "to_version": 2, "mapping": {"stages": {"reviw": "approval"}}},
            "mapping.stages.reviw",
            "v1 has no stage 'reviw'",
        ),
        (
            {"from_version": 1, "to_version": 2, "mapping": {"steps": {"check": "verfy"}}},
            "mapping.steps.check",
            "v2 has no step 'verfy'",
        ),
        ({"from_version": 1, "to_version": 2, "run_ids": 5}, "run_ids", "must be a list of run ids"),
        ({"from_version": 1, "to_version": 2, "run_ids": []}, "run_ids", "give 1 to 10000 run ids"),
        ({"from_version": 1, "to_version": 2, "run_ids": [0]}, "run_ids", "must be between 1 and"),
        ({"from_version": 1, "to_version": 2, "versions": [1]}, "versions", "unknown field"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(
    runs: list[Run], api: Api, body: dict[str, Any], field: str, message: str
) -> None:
    for url in (PREVIEW, APPLY):
        response = api.post(url, body)
        assert response.status_code == 400, response.content
        assert message in errors(response)[field][0]
    assert versions() == {1: RUNS} and migrated_events() == 0


def test_a_body_that_is_not_json_is_a_400(runs: list[Run], api: Api) -> None:
    response = api.post(APPLY, raw="from_version=1")
    assert response.status_code == 400
    assert "not valid JSON" in errors(response)["__all__"][0]


def test_an_unknown_orchestration_or_version_is_a_404(runs: list[Run], api: Api) -> None:
    response = api.post("/api/orchestrations/nope/migrations", {"from_version": 1, "to_version": 2})
    assert response.status_code == 404
    assert errors(response)["__all__"] == ["orchestration 'nope' does not exist"]
    response = api.post(APPLY, {"from_version": 1, "to_version": 7, "mapping": MAPPING})
    assert response.status_code == 404
    assert errors(response)["to_version"] == ["orchestration 'proc' has no version 7"]
    response = api.post(PREVIEW, {"from_version": 9, "to_version": 2})
    assert response.status_code == 404 and "from_version" in errors(response)
    assert versions() == {1: RUNS} and migrated_events() == 0


@pytest.mark.parametrize(
    "perms",
    [
        ("orchestration.view_run",),  # may watch runs, may not import definitions
        ("orchestration.import_definitions",),  # may import, may not open the monitoring pages
        (),
    ],
)
def test_without_the_version_pages_permissions_it_is_a_403_and_nothing_moves(
    runs: list[Run], perms: tuple[str, ...]
) -> None:
    user = grant(UserFactory(username="someone"), *perms)
    api = Api(token_for(user))
    for url in (PREVIEW, APPLY):
        response = api.post(url, {"from_version": 1, "to_version": 2, "mapping": MAPPING})
        assert response.status_code == 403
        assert "you need the permission" in errors(response)["__all__"][0]
    # Asked of an orchestration that does not exist, the answer is the same 403 (nothing probed).
    assert api.post("/api/orchestrations/nope/migrations", {}).status_code == 403
    assert versions() == {1: RUNS} and migrated_events() == 0


def test_view_orchestration_serves_as_well_as_view_run(runs: list[Run]) -> None:
    user = grant(
        UserFactory(username="designer"),
        "orchestration.view_orchestration",
        "orchestration.import_definitions",
    )
    body = Api(token_for(user)).post(APPLY, {"from_version": 1, "to_version": 2, "mapping": MAPPING}).json()
    assert body["migrated"] == RUNS - AHEAD


def test_no_token_is_a_401_and_a_get_a_405(runs: list[Run], api: Api) -> None:
    assert Api(None).post(APPLY, {"from_version": 1, "to_version": 2}).status_code == 401
    response = api.call("get", PREVIEW)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert versions() == {1: RUNS}
