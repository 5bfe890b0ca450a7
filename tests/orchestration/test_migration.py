"""Moving running runs to a new version: 1,000 runs, a stage and a step renamed, some refused
(their stage is gone), previewed, applied with an event per run; a run mid-screen-flow keeps its
work item and goes on on the new version; refused runs are left exactly as they were."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command

from orchestration.models import OrchestrationVersion, Run, RunEvent, RunStatus, StageRun, StepRun
from orchestration.services.migration import Mapping, migration_apply, migration_preview
from tests.factories import grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import task
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

pytestmark = pytest.mark.django_db

RUNS = 40  # 1,000 in the test that applies (test_apply_moves_…); fewer elsewhere, for speed
AHEAD = 10  # runs already in the "pay" stage, which the new version drops


def _v(n: int) -> OrchestrationVersion:
    return OrchestrationVersion.objects.get(orchestration__api_name="proc", number=n)


def _stage(key: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": key, "steps": list(steps), **extra}


@pytest.fixture
def world(request: Any, personas: Any) -> Any:
    count = getattr(request, "param", RUNS)
    load(
        screen_flow("review"),
        orchestration(
            "proc",
            variables=[{"name": "amount", "type": "number"}],
            stages=[_stage("review", task("check")), _stage("pay", task("pay_out"))],
        ),
    )
    case = make_case("Case")
    from orchestration.services import run_launch

    runs = [run_launch(orchestration="proc", record=case) for _ in range(count)]
    for run in runs[:AHEAD]:
        item = WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)
        workitem_complete(item=item, user=personas.alice, data={"approved": "true"})
    # Version 2: "review" is now "approval", its step "check" is "verify"; "pay" is replaced.
    load(
        orchestration(
            "proc",
            variables=[{"name": "amount", "type": "number"}],
            stages=[_stage("approval", task("verify")), _stage("payout", task("send_money"))],
        )
    )
    grant(personas.charlie, "orchestration.import_definitions")
    return runs


MAPPING = Mapping(stages={"review": "approval"}, steps={"check": "verify"})


def test_preview_says_how_many_move_and_why_the_others_cannot(world: Any) -> None:
    preview = migration_preview(source=_v(1), target=_v(2), mapping=MAPPING)
    assert len(preview.movable) == RUNS - AHEAD
    assert preview.reasons == {"its current stage 'pay' is not in the new version (map it to one)": AHEAD}
    assert not RunEvent.objects.filter(name="orchestration.run.migrated").exists()  # nothing changed
    # Without the mapping the renamed stage is not found either.
    assert len(migration_preview(source=_v(1), target=_v(2)).movable) == 0


@pytest.mark.parametrize("world", [1000], indirect=True)
def test_apply_moves_the_runs_with_an_event_each_and_leaves_the_refused_alone(
    world: Any, personas: Any
) -> None:
    total = len(world)
    assert total == 1000
    ahead = world[:AHEAD]
    before = {sr.pk: (sr.key, sr.status) for sr in StepRun.objects.filter(run__in=ahead)}
    outcome = migration_apply(source=_v(1), target=_v(2), mapping=MAPPING, actor=personas.charlie)
    assert len(outcome.migrated) == total - AHEAD and len(outcome.refused) == AHEAD
    assert Run.objects.filter(version=_v(2)).count() == total - AHEAD
    events = RunEvent.objects.filter(name="orchestration.run.migrated")
    assert events.count() == total - AHEAD
    first = events.order_by("id").first()
    assert first is not None and first.actor == personas.charlie
    assert first.payload == {
        "from": 1,
        "to": 2,
        "stages": {"review": "approval"},
        "steps": {"check": "verify"},
    }
    # The refused runs: still on version 1, keys and statuses untouched, no event.
    assert Run.objects.filter(pk__in=[r.pk for r in ahead], version=_v(1)).count() == AHEAD
    assert {sr.pk: (sr.key, sr.status) for sr in StepRun.objects.filter(run__in=ahead)} == before
    assert not RunEvent.objects.filter(run__in=ahead, name="orchestration.run.migrated").exists()
    # Applying again moves nothing more.
    again = migration_apply(source=_v(1), target=_v(2), mapping=MAPPING, actor=personas.charlie)
    assert again.migrated == [] and len(again.refused) == AHEAD


def test_a_run_mid_screen_flow_keeps_its_item_and_goes_on_on_the_new_version(
    world: Any, personas: Any
) -> None:
    run = world[-1]
    item = WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)
    migration_apply(source=_v(1), target=_v(2), mapping=MAPPING, actor=personas.charlie, run_ids=[run.pk])
    run.refresh_from_db()
    assert (run.version, run.current_stage) == (_v(2), "approval")
    assert StageRun.objects.get(run=run).key == "approval"
    kept = WorkItem.objects.get(pk=item.pk)
    assert kept.status == WorkItemStatus.ASSIGNED and kept.step_run.key == "verify"
    workitem_complete(item=kept, user=personas.alice, data={"approved": "true"})
    run.refresh_from_db()
    assert run.current_stage == "payout" and run.status == RunStatus.IN_PROGRESS
    assert WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED).step_run.key == "send_money"


def test_who_may_migrate(world: Any, personas: Any) -> None:
    with pytest.raises(PermissionDenied):
        migration_apply(source=_v(1), target=_v(2), mapping=MAPPING, actor=personas.alice)
    assert Run.objects.filter(version=_v(2)).count() == 0


def test_the_command_previews_then_applies(world: Any) -> None:
    out = io.StringIO()
    call_command("migrate_runs", "proc", "--from", "1", "--to", "2", "--map-stage", "review=approval",
                 "--map-step", "check=verify", "--dry-run", stdout=out)  # fmt: skip
    assert out.getvalue().splitlines() == [
        f"{RUNS - AHEAD} runs can move from v1 to v2; {AHEAD} cannot",
        f"  {AHEAD} refused: its current stage 'pay' is not in the new version (map it to one)",
    ]
    assert Run.objects.filter(version=_v(2)).count() == 0
    out = io.StringIO()
    call_command("migrate_runs", "proc", "--from", "1", "--to", "2", "--map-stage", "review=approval",
                 "--map-step", "check=verify", stdout=out)  # fmt: skip
    assert out.getvalue().splitlines()[-1] == f"migrated {RUNS - AHEAD} runs; {AHEAD} left as they were"
    assert Run.objects.filter(version=_v(2)).count() == RUNS - AHEAD


def test_a_variable_that_changes_type_is_refused(personas: Any) -> None:
    load(
        screen_flow("review"),
        orchestration(
            "proc", variables=[{"name": "amount", "type": "number"}], stages=[_stage("review", task("check"))]
        ),
    )
    from orchestration.services import run_launch

    run = run_launch(orchestration="proc", record=make_case("C"))
    Run.objects.filter(pk=run.pk).update(variables={"amount": 5})
    load(
        orchestration(
            "proc", variables=[{"name": "amount", "type": "text"}], stages=[_stage("review", task("check"))]
        )
    )
    preview = migration_preview(source=_v(1), target=_v(2))
    assert preview.refused == {run.pk: "variable 'amount' changes type (number → text)"}


def test_the_version_page_previews_and_migrates(world: Any, client: Any, personas: Any) -> None:
    url = "/monitor/orchestrations/proc/v2/migrate/"
    client.force_login(personas.alice)
    assert client.get(url).status_code == 403
    client.force_login(personas.admin)
    assert "Migrate runs here" in client.get("/monitor/orchestrations/proc/v2/").content.decode()
    page = client.get(
        url, {"from": "1", "stages": "review=approval", "steps": "check=verify"}
    ).content.decode()
    assert f"<strong>{RUNS - AHEAD}</strong> runs can move" in page
    assert "its current stage &#x27;pay&#x27; is not in the new version" in page
    assert Run.objects.filter(version=_v(2)).count() == 0  # a preview changes nothing
    bad = client.get(url, {"from": "1", "stages": "review"})
    assert bad.status_code == 400 and "write it old=new" in bad.content.decode()
    response = client.post(
        url, {"from": "1", "stages": "review=approval", "steps": "check=verify"}, follow=True
    )
    said = [str(m) for m in response.context["messages"]]
    assert said == [f"{RUNS - AHEAD} runs moved from v1 to v2; {AHEAD} left as they were."]
    assert Run.objects.filter(version=_v(2)).count() == RUNS - AHEAD
