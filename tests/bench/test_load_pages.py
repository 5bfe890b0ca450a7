"""The load benchmark's people (bench/load/locustfile.py) read the pages with bench/load/pages.py:
this checks that reading against the pages the product renders now, and that what it posts
back does what the benchmark counts (an item completed, an item claimed, an item reassigned).
A template change that breaks the benchmark's forms fails here rather than in a soak."""

from __future__ import annotations

from typing import Any

import pytest

from bench.load import pages
from bench.load.run import ORCHESTRATION, RECORD_TYPE, definitions
from orchestration.models import Run, RunEvent, RunStatus
from orchestration.services import definitions_import, run_launch
from records.models import Record
from records.services import record_create, record_type_upsert
from tests.factories import grant
from workitems.forms import PREFIX
from workitems.models import WorkItem, WorkItemStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def load_case(personas: Any) -> Record:
    rt = record_type_upsert(
        api_name=RECORD_TYPE,
        label="Load case",
        fields=[
            {"name": "status", "type": "text"},
            {"name": "decision", "type": "choice", "choices": ["Approve", "Decline"]},
            {"name": "notes", "type": "text"},
        ],
    )
    definitions_import(items=[(f"load/{d['api_name']}.yaml", d) for d in definitions()])
    for user in (personas.alice, personas.bob):
        grant(user, "records.view_record")
    return record_create(record_type=rt, name="Case alice-1", values={"status": "New"}, owner=personas.alice)


def launch(record: Record, assignee: str) -> WorkItem:
    run = run_launch(orchestration=ORCHESTRATION, record=record, inputs={"assignee": assignee})
    return WorkItem.objects.get(run=run)


def test_an_end_user_finishes_an_item_as_the_benchmark_does(
    client: Any, personas: Any, load_case: Record, django_capture_on_commit_callbacks: Any
) -> None:
    item = launch(load_case, "alice")
    client.force_login(personas.alice)

    my_work = pages.parse(client.get("/my-work/").content.decode())
    [row] = my_work.rows
    assert row["pk"] == item.pk and row["claim"] is None and not pages.held_by_other(row)

    guide = pages.parse(client.get(pages.path_of(row["url"].split("#")[0])).content.decode())
    form = pages.form_posting_to(guide, f"/work-items/{item.pk}/screen")
    assert form is not None
    data = pages.screen_submission(form, username="alice")
    assert data["action"] == "finish" and data[f"{PREFIX}-decision"] in {"Approve", "Decline"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(form["action"], data)
    assert response.status_code == 302 and "check=1" not in response["Location"]

    done = pages.parse(client.get(response["Location"]).content.decode())
    assert [level for level, text in done.alerts if text.startswith("Done:")] == ["success"]
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED and item.completed_by == personas.alice
    # The second stage (a background step) filed the decision on the record: the run is over.
    run = Run.objects.get(pk=item.run_id)
    assert run.status == RunStatus.COMPLETED
    load_case.refresh_from_db()
    assert load_case.data["decision"] == data[f"{PREFIX}-decision"]
    assert load_case.data["status"] == "Reviewed"


def test_an_item_held_by_a_teammate_is_not_taken_for_ones_own(
    client: Any, personas: Any, load_case: Record
) -> None:
    # bob is in "support"; the item is held by another member of it.
    helper: Any = type(personas.bob).objects.create(username="dora")
    helper.groups.add(personas.support)
    item = launch(load_case, "group:support")
    WorkItem.objects.filter(pk=item.pk).update(claimed_by=helper)
    client.force_login(personas.bob)
    [row] = pages.parse(client.get("/my-work/").content.decode()).rows
    assert row["claim"] is None and pages.held_by_other(row)


def test_an_end_user_claims_a_team_item_from_my_work(client: Any, personas: Any, load_case: Record) -> None:
    item = launch(load_case, "group:support")
    client.force_login(personas.bob)
    [row] = pages.parse(client.get("/my-work/").content.decode()).rows
    assert row["claim"] is not None

    response = client.post(row["claim"]["action"], pages.form_data(row["claim"]))
    assert response.status_code == 302
    after = pages.parse(client.get(response["Location"]).content.decode())
    assert [level for level, text in after.alerts if "You now hold" in text] == ["success"]
    item.refresh_from_db()
    assert item.claimed_by == personas.bob
    [row] = after.rows
    assert row["claim"] is None and not pages.held_by_other(row)


def test_a_manager_reassigns_as_the_benchmark_does(client: Any, personas: Any, load_case: Record) -> None:
    first, second = launch(load_case, "alice"), launch(load_case, "alice")
    grant(personas.charlie, "workitems.view_workitem")
    client.force_login(personas.charlie)

    page = pages.parse(client.get("/work-items/?user=alice").content.decode())
    assert sorted(pages.reassign_boxes(page)) == sorted([str(first.pk), str(second.pk)])
    form = pages.form_posting_to(page, "/work-items/reassign/")
    assert form is not None
    data = {**pages.form_data(form), "kind": "user", "target": "bob", "reason": "away", "items": [first.pk]}
    response = client.post(form["action"], data)
    assert response.status_code == 302

    after = pages.parse(client.get(response["Location"]).content.decode())
    assert [level for level, text in after.alerts if "reassigned to" in text] == ["success"]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.assignee_user, second.assignee_user) == (personas.bob, personas.alice)
    assert RunEvent.objects.filter(name="workitems.item.reassigned").count() == 1


def test_the_login_page_and_the_runs_page_give_what_the_benchmark_reads(
    client: Any, personas: Any, load_case: Record
) -> None:
    item = launch(load_case, "alice")
    assert pages.csrf(client.get("/login/").content.decode())
    client.force_login(personas.admin)
    runs = pages.parse(client.get("/monitor/runs/").content.decode())
    assert f"/monitor/runs/{item.run_id}/" in runs.links


def test_the_load_seed_creates_its_people_and_launches_their_first_runs(monkeypatch: Any) -> None:
    """The seed runs the product's own services as the feeder would (it once failed on a
    permission the launch gained, and the benchmark died before its first request)."""
    from bench.load import run as load_run

    monkeypatch.setattr(load_run, "END_USERS", 4)
    monkeypatch.setattr(load_run, "PRELAUNCH", {"active": 2, "away": 1, "team": 1, "queue": 1})
    plan = load_run.seed(end_users=3)
    launched = 3 * 2 + 1 * 1 + len(load_run.TEAMS) * 1 + 1
    assert Run.objects.filter(status=RunStatus.IN_PROGRESS).count() == launched
    assert WorkItem.objects.filter(status=WorkItemStatus.ASSIGNED).count() == launched
    assert [u["username"] for u in plan["end_users"]] == ["user01", "user02", "user03"]
    assert plan["token"]
