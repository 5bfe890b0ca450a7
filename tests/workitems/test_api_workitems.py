"""The work item endpoints of the JSON API: the caller's open items (as My Work lists them), one
item with its screen flow's fields, completing it with typed data, claiming and releasing a
group's item, and reassigning (managers). Someone else's item answers 404, as on the pages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration.models import RunEvent, RunStatus, StepRun
from orchestration.services import run_launch, run_suspend
from tests.factories import UserFactory, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.test_api import Api, errors, token_for
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import CLAIM_REQUIRED

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = [
    {"name": "approved", "type": "boolean", "label": "Approved?"},
    {"name": "amount", "type": "decimal", "required": True, "min_value": 0},
    {"name": "count", "type": "number", "min_value": 1, "max_value": 10},
    {"name": "decision", "type": "choice", "choices": ["approve", "reject"], "required": True},
    {"name": "tags", "type": "multi_choice", "choices": ["travel", "food", "other"]},
    {"name": "spent_on", "type": "date"},
    {"name": "meet_at", "type": "datetime"},
    {"name": "contact", "type": "email"},
    {"name": "reviewer", "type": "user"},
    {"name": "comment", "type": "text", "max_length": 20, "default": "'Looks fine'"},
]
GOOD = {
    "approved": True,
    "amount": "1250.50",
    "count": 3,
    "decision": "approve",
    "tags": ["travel", "food"],
    "spent_on": "2026-03-01",
    "meet_at": "2026-03-02T09:30:00",
    "contact": "dana@example.com",
    "reviewer": "bob",
    "comment": "Within budget",
    "note": "Second screen",
}


def define() -> None:
    """'expense': alice fills the two-screen expense form, then bob files it. 'team': the
    engineering group's item (alice is a member), then the triage queue's (bob's queue)."""
    load(
        screen_flow(
            "expense_form",
            screens=[
                {"key": "main", "fields": FIELDS},
                {"key": "more", "fields": [{"name": "note", "type": "long_text"}]},
            ],
        ),
        screen_flow("review"),
        orchestration(
            "expense",
            stages=[
                {
                    "key": "review",
                    "label": "Review",
                    "steps": [
                        {
                            "key": "check",
                            "label": "Check the expense",
                            "kind": "interactive",
                            "flow": "expense_form",
                            "assignee": {"user": "alice"},
                        }
                    ],
                },
                {
                    "key": "filing",
                    "steps": [
                        {"key": "file", "kind": "interactive", "flow": "review", "assignee": {"user": "bob"}}
                    ],
                },
            ],
        ),
        orchestration(
            "team",
            stages=[
                {
                    "key": "work",
                    "steps": [
                        {
                            "key": "order",
                            "label": "Order the tiles",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"group": "engineering"},
                        },
                        {
                            "key": "triage",
                            "label": "Triage the claim",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"queue": "triage"},
                        },
                    ],
                }
            ],
        ),
    )


@pytest.fixture
def world(personas: Any) -> Any:
    define()
    personas.dave = UserFactory(username="dave")  # alice's colleague in engineering
    personas.dave.groups.add(personas.engineering)
    personas.expense = run_launch(orchestration="expense", record=make_case("Train tickets"))
    personas.team = run_launch(orchestration="team", record=make_case("Leaky roof"))
    personas.check = WorkItem.objects.get(run=personas.expense, step_run__key="check")
    personas.order = WorkItem.objects.get(run=personas.team, step_run__key="order")
    personas.triage = WorkItem.objects.get(run=personas.team, step_run__key="triage")
    return personas


def api(user: Any) -> Api:
    return Api(token_for(user))


def item_state(item: WorkItem) -> tuple[Any, ...]:
    """What an action on the item would change: the item, its run's events, its step."""
    row = WorkItem.objects.get(pk=item.pk)
    step = StepRun.objects.get(pk=row.step_run_id)
    return (
        row.status,
        row.outputs,
        row.claimed_by_id,
        (row.assignee_user_id, row.assignee_group_id, row.assignee_queue_id),
        step.status,
        step.outputs,
        RunEvent.objects.filter(run_id=row.run_id).count(),
    )


# --- listing ----------------------------------------------------------------------------------


def test_the_list_shows_the_callers_open_items_and_only_theirs(world):
    alice = api(world.alice).get("/api/work-items").json()
    assert [i["id"] for i in alice["results"]] == [world.check.pk, world.order.pk]
    assert alice["next"] is None and alice["next_after_id"] is None
    check = alice["results"][0]
    assert check["label"] == "Check the expense"
    assert check["status"] == "assigned"
    assert check["url"] == f"/api/work-items/{world.check.pk}"
    assert (check["run_id"], check["stage"], check["step"]) == (world.expense.pk, "review", "check")
    assert check["record"] == {
        "type": "records.record",
        "id": world.expense.record_id,
        "label": "Train tickets",
    }
    assert check["assignee"] == {"kind": "user", "name": "alice", "label": "alice"}
    assert check["claimed_by"] is None
    assert check["priority"] == "normal"
    assert check["actions"] == ["complete"]
    assert [f["name"] for f in check["fields"]] == [*(f["name"] for f in FIELDS), "note"]
    assert check["fields"][3] == {
        "name": "decision",
        "type": "choice",
        "label": "decision",
        "help": "",
        "required": True,
        "choices": ["approve", "reject"],
        "screen": "main",
        "min_length": None,
        "max_length": None,
        "min_value": None,
        "max_value": None,
    }
    assert check["fields"][-1]["screen"] == "more"
    order = alice["results"][1]
    assert order["assignee"] == {"kind": "group", "name": "engineering", "label": "engineering"}
    assert order["actions"] == ["complete", "claim"]

    bob = api(world.bob).get("/api/work-items").json()  # his queue's item; alice's are not his
    assert [(i["id"], i["assignee"]["kind"]) for i in bob["results"]] == [(world.triage.pk, "queue")]
    assert api(world.charlie).get("/api/work-items").json()["results"] == []


def test_the_list_pages_by_id(world):
    more = run_launch(orchestration="expense", record=make_case("Hotel"))
    third = WorkItem.objects.get(run=more, step_run__key="check")
    caller = api(world.alice)
    first = caller.get("/api/work-items", limit="2").json()
    assert [i["id"] for i in first["results"]] == [world.check.pk, world.order.pk]
    assert first["next_after_id"] == world.order.pk
    assert first["next"] == f"/api/work-items?limit=2&after_id={world.order.pk}"
    second = caller.get(first["next"]).json()
    assert [i["id"] for i in second["results"]] == [third.pk]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"after_id": "x"}, "after_id"),
        ({"q": "a"}, "q"),
    ],
)
def test_bad_list_parameters_are_a_400(world, params, field):
    response = api(world.alice).get("/api/work-items", **params)
    assert response.status_code == 400
    assert list(errors(response)) == [field]


def test_the_list_costs_the_same_queries_for_one_item_or_many(world):
    caller = api(world.alice)
    caller.get("/api/work-items")  # the token's last use is written once a minute: not counted
    with CaptureQueriesContext(connection) as one:
        assert caller.get("/api/work-items").status_code == 200
    for i in range(5):
        run_launch(orchestration="expense", record=make_case(f"Case {i}"))
    with CaptureQueriesContext(connection) as many:
        assert len(caller.get("/api/work-items").json()["results"]) == 7
    assert len(many) == len(one), [q["sql"] for q in many.captured_queries]


def test_every_endpoint_needs_a_token(world):
    before = item_state(world.order)
    anonymous = Api(None)
    assert anonymous.get("/api/work-items").status_code == 401
    assert anonymous.get(f"/api/work-items/{world.order.pk}").status_code == 401
    for action in ("complete", "claim", "release", "reassign"):
        response = anonymous.post(f"/api/work-items/{world.order.pk}/{action}", {"data": {}})
        assert response.status_code == 401, action
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert item_state(world.order) == before


# --- one item ---------------------------------------------------------------------------------


def test_an_item_shows_its_fields_and_the_defaults_the_work_guide_fills_in(world):
    response = api(world.alice).get(f"/api/work-items/{world.check.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == world.check.pk
    assert body["defaults"] == {"comment": "Looks fine"}
    assert len(body["fields"]) == len(FIELDS) + 1


def test_someone_elses_item_is_a_404_like_one_that_does_not_exist(world):
    bob = api(world.bob)
    missing = bob.get("/api/work-items/999999")
    theirs = bob.get(f"/api/work-items/{world.check.pk}")
    assert (missing.status_code, theirs.status_code) == (404, 404)
    assert errors(theirs) == {"__all__": [f"work item {world.check.pk} does not exist"]}
    assert "Train tickets" not in theirs.content.decode()
    before = item_state(world.check)
    for action in ("complete", "claim", "release"):
        response = bob.post(f"/api/work-items/{world.check.pk}/{action}", {"data": GOOD})
        assert response.status_code == 404, action
    assert item_state(world.check) == before
    assert api(world.bob).get(f"/api/work-items/{2**63}").status_code == 404


# --- completing -------------------------------------------------------------------------------


def test_completing_with_good_data_stores_typed_values_and_advances_the_run(world, mailoutbox):
    mailoutbox.clear()
    response = api(world.alice).post(f"/api/work-items/{world.check.pk}/complete", {"data": GOOD})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert body["completed_by"] == "alice"
    assert body["actions"] == []
    item = WorkItem.objects.get(pk=world.check.pk)
    assert item.status == WorkItemStatus.COMPLETED
    assert item.completed_by == world.alice
    meet_at = timezone.make_aware(dt.datetime(2026, 3, 2, 9, 30)).isoformat()  # the server's zone
    assert item.outputs == {
        "approved": True,
        "amount": "1250.50",
        "count": 3,
        "decision": "approve",
        "tags": ["travel", "food"],
        "spent_on": "2026-03-01",
        "meet_at": meet_at,
        "contact": "dana@example.com",
        "reviewer": world.bob.pk,  # a person is stored by id, as the Work Guide's form stores them
        "comment": "Within budget",
        "note": "Second screen",
    }
    assert StepRun.objects.get(run=world.expense, key="check").outputs == item.outputs
    run = world.expense
    run.refresh_from_db()
    assert (run.status, run.current_stage) == (RunStatus.IN_PROGRESS, "filing")
    completed = RunEvent.objects.get(run=run, name="orchestration.step.completed", step="check")
    assert completed.actor == world.alice
    filing = WorkItem.objects.get(run=run, step_run__key="file")
    assert filing.assignee_user == world.bob
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]  # the next assignee is told


def test_a_user_field_takes_a_user_id_too(world):
    data = {**GOOD, "reviewer": world.charlie.pk}
    assert (
        api(world.alice).post(f"/api/work-items/{world.check.pk}/complete", {"data": data}).status_code == 200
    )
    assert WorkItem.objects.get(pk=world.check.pk).outputs["reviewer"] == world.charlie.pk


def test_bad_data_is_a_400_naming_every_field_and_nothing_is_stored(world):
    gone = UserFactory(username="gone", is_active=False)
    bad = {
        **GOOD,
        "amount": "lots",
        "count": 11,
        "decision": "maybe",
        "tags": ["travel", "yachts"],
        "spent_on": "01/03/2026",
        "contact": "not-an-email",
        "reviewer": gone.username,
        "comment": "x" * 21,
        "nope": 1,
    }
    before = item_state(world.check)

    response = api(world.alice).post(f"/api/work-items/{world.check.pk}/complete", {"data": bad})

    assert response.status_code == 400
    assert errors(response) == {
        "data.nope": [
            "not a field of this item's screen flow (its fields: approved, amount, count, decision, tags, "
            "spent_on, meet_at, contact, reviewer, comment, note)"
        ],
        "data.amount": ["expected a value of type decimal."],
        "data.count": ["Must be at most 10."],
        "data.decision": ["Choose one of: approve, reject."],
        "data.tags": ["Not a valid choice: yachts."],
        "data.spent_on": ["expected a date (YYYY-MM-DD)."],
        "data.contact": ["expected a value of type email."],
        "data.reviewer": ["no active user 'gone': give a username or a user id"],
        "data.comment": ["At most 20 characters."],
    }
    assert item_state(world.check) == before


def test_required_fields_left_out_are_named(world):
    response = api(world.alice).post(f"/api/work-items/{world.check.pk}/complete", {})
    assert response.status_code == 400
    assert errors(response) == {
        "data.amount": ["This field is required."],
        "data.decision": ["This field is required."],
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": [1]}, {"data": ["must be a JSON object, not list"]}),
        ({"values": {}}, {"values": ["unknown field (expected data)"]}),
        (
            {"data": {**GOOD, "amount": {"value": 1}}},
            {"data.amount": ["expected one decimal value, not a JSON dict"]},
        ),
    ],
)
def test_a_malformed_completion_is_a_400(world, body, expected):
    before = item_state(world.check)
    response = api(world.alice).post(f"/api/work-items/{world.check.pk}/complete", body)
    assert response.status_code == 400
    assert errors(response) == expected
    assert item_state(world.check) == before


def test_an_item_completed_already_is_a_409_saying_who_and_when(world):
    minimal = {"approved": True}
    assert (
        api(world.alice).post(f"/api/work-items/{world.order.pk}/complete", {"data": minimal}).status_code
        == 200
    )
    item = WorkItem.objects.get(pk=world.order.pk)
    before = item_state(item)

    response = api(world.dave).post(
        f"/api/work-items/{world.order.pk}/complete", {"data": {"approved": False}}
    )

    assert response.status_code == 409
    assert errors(response) == {
        "__all__": [f"this item was already completed by alice at {item.completed_at.isoformat()}"]
    }
    shown = response.json()["work_item"]
    assert (shown["status"], shown["completed_by"]) == ("completed", "alice")
    assert shown["completed_at"].startswith(item.completed_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert item_state(item) == before
    assert WorkItem.objects.get(pk=item.pk).outputs == {"approved": True, "comment": None}


def test_an_item_of_a_suspended_run_cannot_be_completed_now(world):
    run_suspend(run_id=world.expense.pk)
    before = item_state(world.check)
    response = api(world.alice).post(f"/api/work-items/{world.check.pk}/complete", {"data": GOOD})
    assert response.status_code == 409
    assert "suspended" in errors(response)["__all__"][0]
    assert response.json()["work_item"]["status"] == "assigned"
    assert item_state(world.check) == before


# --- claim and release ------------------------------------------------------------------------


def test_claim_and_release_a_groups_item(world):
    alice, dave = api(world.alice), api(world.dave)
    response = alice.post(f"/api/work-items/{world.order.pk}/claim")
    assert response.status_code == 200, response.content
    assert response.json()["claimed_by"] == "alice"
    assert response.json()["actions"] == ["complete", "release"]
    assert WorkItem.objects.get(pk=world.order.pk).claimed_by == world.alice
    claimed = RunEvent.objects.get(run=world.team, name="workitems.item.claimed")
    assert (claimed.actor, claimed.payload) == (world.alice, {"work_item": world.order.pk})
    assert alice.post(f"/api/work-items/{world.order.pk}/claim").status_code == 200  # hers already

    # Her colleague sees who holds it, and may not take it, finish it or give it back.
    assert dave.get(f"/api/work-items/{world.order.pk}").json()["actions"] == []
    before = item_state(world.order)
    response = dave.post(f"/api/work-items/{world.order.pk}/claim")
    assert response.status_code == 409
    assert errors(response) == {"__all__": ["someone else already holds this item"]}
    assert response.json()["work_item"]["claimed_by"] == "alice"
    response = dave.post(f"/api/work-items/{world.order.pk}/complete", {"data": {"approved": True}})
    assert response.status_code == 409
    assert errors(response) == {"__all__": ["another person has claimed this item"]}
    response = dave.post(f"/api/work-items/{world.order.pk}/release")
    assert response.status_code == 409
    assert errors(response) == {"__all__": ["you do not hold this item, so there is nothing to release"]}
    assert item_state(world.order) == before

    response = alice.post(f"/api/work-items/{world.order.pk}/release")
    assert response.status_code == 200
    assert response.json()["claimed_by"] is None
    assert WorkItem.objects.get(pk=world.order.pk).claimed_by is None
    assert (
        RunEvent.objects.filter(run=world.team, name="workitems.item.released", actor=world.alice).count()
        == 1
    )
    assert dave.post(f"/api/work-items/{world.order.pk}/claim").json()["claimed_by"] == "dave"


def test_a_claim_required_item_is_completed_only_once_claimed(world):
    load(
        orchestration(
            "claimed",
            stages=[
                {
                    "key": "work",
                    "steps": [
                        {
                            "key": "fix",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"group": "engineering"},
                            "claim_required": True,
                        }
                    ],
                }
            ],
        )
    )
    item = WorkItem.objects.get(run=run_launch(orchestration="claimed", record=make_case()))
    alice = api(world.alice)
    assert alice.get(f"/api/work-items/{item.pk}").json()["actions"] == ["claim"]
    before = item_state(item)
    response = alice.post(f"/api/work-items/{item.pk}/complete", {"data": {"approved": True}})
    assert response.status_code == 409
    assert errors(response) == {"__all__": [CLAIM_REQUIRED]}
    assert item_state(item) == before

    assert alice.post(f"/api/work-items/{item.pk}/claim").json()["actions"] == ["complete", "release"]
    response = alice.post(f"/api/work-items/{item.pk}/complete", {"data": {"approved": True}})
    assert response.status_code == 200, response.content
    assert WorkItem.objects.get(pk=item.pk).completed_by == world.alice


def test_a_queue_item_is_claimed_by_a_member_of_the_queue(world):
    response = api(world.bob).post(f"/api/work-items/{world.triage.pk}/claim")
    assert response.status_code == 200
    assert response.json()["assignee"] == {"kind": "queue", "name": "triage", "label": "Triage"}
    assert response.json()["claimed_by"] == "bob"


def test_an_item_for_one_person_has_nothing_to_claim(world):
    before = item_state(world.check)
    response = api(world.alice).post(f"/api/work-items/{world.check.pk}/claim")
    assert response.status_code == 409
    assert errors(response) == {"__all__": ["this item is assigned to one person; there is nothing to claim"]}
    assert item_state(world.check) == before


def test_a_closed_item_cannot_be_claimed_or_released(world):
    api(world.alice).post(f"/api/work-items/{world.order.pk}/complete", {"data": {}})
    for action in ("claim", "release"):
        response = api(world.dave).post(f"/api/work-items/{world.order.pk}/{action}")
        assert response.status_code == 409, action
        assert "already completed by alice" in errors(response)["__all__"][0]


# --- reassigning ------------------------------------------------------------------------------


def manager(world: Any) -> Api:
    """charlie: the managers group (reassign_workitem) and view_workitem, as on Work Items."""
    grant(world.charlie, "workitems.view_workitem")
    return api(world.charlie)


def test_a_manager_reassigns_an_item_to_a_person_who_is_emailed(world, mailoutbox):
    mailoutbox.clear()
    response = manager(world).post(
        f"/api/work-items/{world.check.pk}/reassign", {"user": "dave", "reason": "alice is on leave"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["assignee"] == {"kind": "user", "name": "dave", "label": "dave"}
    assert body["actions"] == []  # charlie may move it, not do it
    item = WorkItem.objects.get(pk=world.check.pk)
    assert item.assignee_user == world.dave
    event = RunEvent.objects.get(run=world.expense, name="workitems.item.reassigned")
    assert event.actor == world.charlie
    assert event.payload == {
        "work_item": item.pk,
        "old": "alice",
        "new": "dave",
        "reason": "alice is on leave",
    }
    assert [m.to for m in mailoutbox] == [["dave@example.com"]]
    # alice no longer sees it; dave does.
    assert api(world.alice).get(f"/api/work-items/{item.pk}").status_code == 404
    listed = api(world.dave).get("/api/work-items").json()["results"]
    assert [i["id"] for i in listed] == [item.pk, world.order.pk]  # oldest first


@pytest.mark.parametrize(
    ("body", "kind"),
    [({"group": "support"}, "group"), ({"queue": "eng_queue"}, "queue")],
)
def test_a_manager_reassigns_a_held_item_to_a_group_or_a_queue(world, body, kind):
    api(world.alice).post(f"/api/work-items/{world.order.pk}/claim")
    response = manager(world).post(f"/api/work-items/{world.order.pk}/reassign", body)
    assert response.status_code == 200, response.content
    assert response.json()["assignee"]["kind"] == kind
    assert response.json()["claimed_by"] is None  # a new assignment: nobody holds it
    item = WorkItem.objects.get(pk=world.order.pk)
    assert item.claimed_by is None
    assert (item.assignee_group_id is not None, item.assignee_queue_id is not None) == (
        kind == "group",
        kind == "queue",
    )


@pytest.mark.parametrize(
    ("who", "perms", "missing"),
    [
        ("charlie", (), "'workitems.view_workitem'"),  # reassign_workitem through his group only
        ("dave", ("workitems.view_workitem",), "'workitems.reassign_workitem'"),
        ("alice", (), "'workitems.view_workitem' and 'workitems.reassign_workitem'"),  # her own item
    ],
)
def test_reassigning_needs_both_permissions(world, who, perms, missing):
    user = grant(getattr(world, who), *perms)
    before = item_state(world.check)
    response = api(user).post(f"/api/work-items/{world.check.pk}/reassign", {"user": "bob"})
    assert response.status_code == 403
    assert errors(response) == {"__all__": [f"you need the permission {missing}"]}
    assert item_state(world.check) == before


EXACTLY_ONE = (
    "name exactly one new assignee: user (a username), group (a group's name) or queue (a queue's api name)"
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"user": "nobody"}, {"user": ["there is no active user 'nobody'"]}),
        ({"group": "nobody"}, {"group": ["there is no group 'nobody'"]}),
        ({"queue": "Triage"}, {"queue": ["there is no queue 'Triage'"]}),  # the label is not the api name
        ({"user": ""}, {"user": ["this field is required"]}),
        ({"user": None}, {"user": ["this field is required"]}),
        ({"user": 7}, {"user": ["must be a string, not int"]}),
        ({"user": "bob", "group": "support"}, {"__all__": [EXACTLY_ONE]}),
        ({"reason": "why"}, {"__all__": [EXACTLY_ONE]}),
        ({"user": "bob", "reason": "x" * 501}, {"reason": ["at most 500 characters"]}),
        (
            {"user": "bob", "who": "x"},
            {"who": ["unknown field (expected group and queue and reason and user)"]},
        ),
    ],
)
def test_a_bad_reassignment_is_a_400_and_nothing_moves(world, mailoutbox, body, expected):
    mailoutbox.clear()
    before = item_state(world.check)
    response = manager(world).post(f"/api/work-items/{world.check.pk}/reassign", body)
    assert response.status_code == 400
    assert errors(response) == expected
    assert item_state(world.check) == before
    assert mailoutbox == []


def test_a_closed_or_unknown_item_cannot_be_reassigned(world):
    api(world.alice).post(f"/api/work-items/{world.order.pk}/complete", {"data": {}})
    before = item_state(world.order)
    response = manager(world).post(f"/api/work-items/{world.order.pk}/reassign", {"user": "bob"})
    assert response.status_code == 409
    assert "already completed by alice" in errors(response)["__all__"][0]
    assert response.json()["work_item"]["status"] == "completed"
    assert item_state(world.order) == before
    assert manager(world).post("/api/work-items/999999/reassign", {"user": "bob"}).status_code == 404


# --- the document -----------------------------------------------------------------------------


def test_the_openapi_document_lists_every_work_item_path_and_their_answers_match_it(world):
    doc = json.loads(Client().get("/api/openapi.json").content)
    assert {
        "/api/work-items": {"get"},
        "/api/work-items/{item_id}": {"get"},
        "/api/work-items/{item_id}/complete": {"post"},
        "/api/work-items/{item_id}/claim": {"post"},
        "/api/work-items/{item_id}/release": {"post"},
        "/api/work-items/{item_id}/reassign": {"post"},
    }.items() <= {p: set(ops) for p, ops in doc["paths"].items()}.items()
    schemas = doc["components"]["schemas"]
    listed = api(world.alice).get("/api/work-items").json()["results"][0]
    assert set(listed) == set(schemas["WorkItem"]["properties"])
    assert set(listed["fields"][0]) == set(schemas["WorkItemField"]["properties"])
    assert set(listed["assignee"]) == set(schemas["WorkItemAssignee"]["properties"])
    one = api(world.alice).get(f"/api/work-items/{world.check.pk}").json()
    assert set(one) == set(schemas["WorkItem"]["properties"]) | set(
        schemas["WorkItemDetail"]["allOf"][1]["properties"]
    )
    assert set(schemas["WorkItemField"]["properties"]["type"]["enum"]) >= {f["type"] for f in FIELDS}
