"""Out of office: new work for someone away goes to their delegate (and says whom it was for),
their assignment email too; open items are handed over in one action; managers set it for their
team, nobody else; bad input is said and stores nothing."""

from __future__ import annotations

import datetime as dt
import html as htmllib
from typing import Any

import pytest
from django.utils import timezone

from orchestration.models import RunEvent
from tests.factories import UserFactory, make_case
from workitems import delegation
from workitems.models import OutOfOffice, PersonProfile, WorkItem, WorkItemStatus
from workitems.services import workitem_reassign

from .mywork_support import interactive, item, launch, load_process

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/account/out-of-office/"


@pytest.fixture
def world(personas: Any) -> Any:
    for u in (personas.alice, personas.bob, personas.charlie):
        u.email = f"{u.username}@example.com"
        u.first_name = u.username.capitalize()
        u.last_name = "Doe"
        u.save()
    load_process("proc", "Case review", interactive("mine", "Check the facts", {"user": "alice"}))
    return personas


def away(user: Any, delegate: Any, *, days: int = 3) -> OutOfOffice:
    today = timezone.localdate()
    return delegation.out_of_office_set(
        user=user, starts_on=today, ends_on=today + dt.timedelta(days=days), delegate=delegate, actor=user
    )


def test_new_work_for_someone_away_goes_to_their_delegate_with_its_email(world: Any, mailoutbox: Any) -> None:
    away(world.alice, world.bob)
    mailoutbox.clear()
    run = launch("proc", make_case("Case 1"))
    it = item(run, "mine")
    assert it.assignee_user == world.bob and it.delegated_from == world.alice
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]
    # My Work says whom it was for.
    from django.test import Client

    client = Client()
    client.force_login(world.bob)
    page = client.get("/my-work/").content.decode()
    assert f'data-item="{it.pk}"' in page and "for Alice Doe, who is away" in page


def test_before_and_after_the_absence_work_stays_with_the_person(world: Any) -> None:
    today = timezone.localdate()
    delegation.out_of_office_set(
        user=world.alice,
        starts_on=today + dt.timedelta(days=1),
        ends_on=today + dt.timedelta(days=5),
        delegate=world.bob,
        actor=world.alice,
    )
    it = item(launch("proc", make_case("Case 1")), "mine")
    assert it.assignee_user == world.alice and it.delegated_from is None
    assert delegation.delegate_for(world.alice, today + dt.timedelta(days=3)) == world.bob
    assert delegation.delegate_for(world.alice, today + dt.timedelta(days=6)) is None


def test_a_delegate_who_is_away_too_passes_it_on_and_a_circle_stops(world: Any) -> None:
    away(world.alice, world.bob)
    away(world.bob, world.charlie)
    assert delegation.delegate_for(world.alice) == world.charlie
    away(world.charlie, world.alice)  # a circle: alice -> bob -> charlie -> alice
    assert delegation.delegate_for(world.alice) == world.charlie  # the last one before it closes
    it = item(launch("proc", make_case("Case 1")), "mine")
    assert it.assignee_user == world.charlie and it.delegated_from == world.alice


def test_a_reassignment_to_someone_away_goes_to_the_delegate(world: Any) -> None:
    it = item(launch("proc", make_case("Case 1")), "mine")
    away(world.bob, world.charlie)
    workitem_reassign(item=it, actor=world.charlie, user=world.bob, reason="bob knows")
    it.refresh_from_db()
    assert it.assignee_user == world.charlie and it.delegated_from == world.bob
    event = RunEvent.objects.get(run=it.run, name="workitems.item.reassigned")
    assert event.payload["delegated_from"] == "Bob Doe" and event.payload["new"] == "Charlie Doe"


def test_open_items_are_handed_over_in_one_action(world: Any, client: Any, mailoutbox: Any) -> None:
    items = [item(launch("proc", make_case(f"Case {n}")), "mine") for n in range(3)]
    away(world.alice, world.bob)
    mailoutbox.clear()
    client.force_login(world.alice)
    page = client.get(URL).content.decode()
    assert "Hand over 3 open items to Bob Doe" in page
    response = client.post(URL, {"action": "hand_over"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["3 open items handed over to Bob Doe."]
    assert WorkItem.objects.filter(assignee_user=world.bob, delegated_from=world.alice).count() == 3
    assert RunEvent.objects.filter(name="workitems.item.reassigned").count() == 3
    assert sorted(m.to[0] for m in mailoutbox) == ["bob@example.com"] * 3
    assert all(
        i.status == WorkItemStatus.ASSIGNED for i in WorkItem.objects.filter(pk__in=[i.pk for i in items])
    )


def test_the_page_sets_and_clears_it_with_the_picker(world: Any, client: Any) -> None:
    client.force_login(world.alice)
    today = timezone.localdate()
    response = client.post(
        URL,
        {
            "action": "save",
            "starts_on": today.isoformat(),
            "ends_on": (today + dt.timedelta(days=7)).isoformat(),
            "pick": f"user:{world.bob.pk}",
            "delegate": "Bob Doe (bob)",
        },
        follow=True,
    )
    said = [str(m) for m in response.context["messages"]]
    assert said == [
        f"Saved: from {today} to {today + dt.timedelta(days=7)}, new work for Alice Doe goes to Bob Doe."
    ]
    row = OutOfOffice.objects.get(user=world.alice)
    assert (row.delegate, row.set_by) == (world.bob, world.alice)
    assert "Away now" in response.content.decode()
    client.post(URL, {"action": "clear"})
    assert not OutOfOffice.objects.exists()


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"starts_on": "", "ends_on": "", "delegate": "bob"}, "Say from which day."),
        (
            {"starts_on": "2019-12-30", "ends_on": "2020-01-01", "delegate": "bob"},
            "That day is past: choose today or later.",
        ),
        ({"ends_on": "2020-01-01", "delegate": "bob"}, "The last day comes before the first."),
        ({"delegate": ""}, "Choose who takes the work meanwhile."),
        ({"delegate": "alice"}, "Alice Doe cannot be their own delegate."),
        ({"delegate": "bbo"}, "No user is called “bbo”."),
        ({"starts_on": "next week"}, "Enter a valid date."),
    ],
)
def test_bad_input_is_said_and_stores_nothing(
    world: Any, client: Any, data: dict[str, str], said: str
) -> None:
    today = timezone.localdate()
    post = {
        "action": "save",
        "starts_on": today.isoformat(),
        "ends_on": (today + dt.timedelta(days=2)).isoformat(),
    }
    client.force_login(world.alice)
    response = client.post(URL, {**post, **data})
    assert response.status_code == 400
    assert said in htmllib.unescape(response.content.decode())
    assert not OutOfOffice.objects.exists()


def test_a_manager_sets_it_for_their_team_and_nobody_else_can(world: Any, client: Any) -> None:
    PersonProfile.objects.create(user=world.alice, manager=world.bob)
    dora = UserFactory(username="dora")
    client.force_login(world.bob)
    page = client.get(URL).content.decode()
    assert "?user=alice" in page  # alice is in bob's team
    today = timezone.localdate()
    response = client.post(
        URL,
        {
            "user": "alice",
            "action": "save",
            "starts_on": today.isoformat(),
            "ends_on": today.isoformat(),
            "delegate": "dora",
        },
    )
    assert response.status_code == 302 and response["Location"] == f"{URL}?user=alice"
    row = OutOfOffice.objects.get(user=world.alice)
    assert (row.delegate, row.set_by) == (dora, world.bob)
    # dora manages nobody: alice's page is not hers to see or change (as if alice did not exist).
    client.force_login(dora)
    assert client.get(URL, {"user": "alice"}).status_code == 404
    assert client.post(URL, {"user": "alice", "action": "clear"}).status_code == 404
    assert OutOfOffice.objects.filter(user=world.alice).exists()
    # Someone who may reassign work (charlie, a manager of the site) may.
    client.force_login(world.charlie)
    assert client.post(URL, {"user": "alice", "action": "clear"}).status_code == 302
    assert not OutOfOffice.objects.exists()
