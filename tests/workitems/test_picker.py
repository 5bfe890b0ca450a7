"""The people picker: who it finds (by username, first, last or full name; groups; queues), who
may ask, that it runs the same queries for 3 people as for 40, and that reassigning and the Work
Items filter take a pick or exactly typed text and answer a typo with the near matches."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.models import RunEvent
from tests.factories import UserFactory, grant, make_case
from workitems import picker
from workitems.models import Queue, WorkItem

from .mywork_support import everyone_process, item, launch

pytestmark = pytest.mark.django_db

PICK = "/people/pick/"
VIEW = "workitems.view_workitem"


def options(html: str) -> list[str]:
    """The options' data-label, in order."""
    return [htmllib.unescape(m) for m in re.findall(r'role="option"[^>]*data-label="([^"]*)"', html)]


@pytest.fixture
def people(personas):  # type: ignore[no-untyped-def]
    UserFactory(username="dana", first_name="Dana", last_name="Whitfield")
    UserFactory(username="dwhite", first_name="Dana", last_name="White")
    UserFactory(username="gone", first_name="Dana", last_name="Left", is_active=False)
    UserFactory(username="slee", first_name="Sam", last_name="Lee")
    UserFactory(username="slee2", first_name="Sam", last_name="Lee")
    Group.objects.create(name="Dana's team")
    Queue.objects.create(api_name="danish_desk", label="Danish desk")
    return personas


def test_it_finds_people_by_any_part_of_their_name_then_groups_and_queues(client, people):
    client.force_login(grant(people.charlie, VIEW))
    html = client.get(PICK, {"q": "dan", "list": "x"}).content.decode()
    assert options(html) == ["Dana White (dwhite)", "Dana Whitfield (dana)", "Dana's team", "Danish desk"]
    assert 'data-token="group:' in html and 'data-kind="queue" data-value="danish_desk"' in html
    # By last name, by full name, by username; an inactive person is never offered.
    assert options(client.get(PICK, {"q": "whitf"}).content.decode()) == ["Dana Whitfield (dana)"]
    assert options(client.get(PICK, {"q": "dana white"}).content.decode()) == ["Dana White (dwhite)"]
    assert options(client.get(PICK, {"q": "gone"}).content.decode()) == []
    # The text input sends its own name (`target` in the reassign forms); kinds narrow the list.
    assert options(client.get(PICK, {"target": "dan", "kinds": "queue"}).content.decode()) == ["Danish desk"]
    assert options(client.get(PICK, {"who": "dan", "kinds": "user"}).content.decode()) == [
        "Dana White (dwhite)",
        "Dana Whitfield (dana)",
    ]
    empty = client.get(PICK, {"q": "zzz", "list": "row-4-target-list"}).content.decode()
    assert "No one matches “zzz”" in empty and 'id="row-4-target-list-none"' in empty


def test_a_hostile_list_id_or_name_is_not_written_into_the_page(client, people):
    UserFactory(username="evil", first_name="<script>alert(1)</script>", last_name="")
    client.force_login(grant(people.charlie, VIEW))
    html = client.get(PICK, {"q": "script", "list": '"><img src=x onerror=alert(1)>'}).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror" not in html and 'id="picker-list-1"' in html


def test_everyone_may_look_people_up_but_only_managers_see_groups_and_queues(client, people):
    assert client.get(PICK, {"q": "a"}).status_code == 302  # to log in
    client.force_login(people.alice)  # no view or reassign permission: people only
    html = client.get(PICK, {"q": "dan", "kinds": "user,group,queue"}).content.decode()
    assert options(html) == ["Dana White (dwhite)", "Dana Whitfield (dana)"]
    assert 'data-kind="group"' not in html and 'data-kind="queue"' not in html
    client.force_login(people.charlie)  # a manager: reassign_workitem through the managers group
    assert client.get(PICK, {"q": "a"}).status_code == 200
    client.force_login(grant(people.bob, VIEW))
    assert client.get(PICK, {"q": "a"}).status_code == 200


def count(client, params: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(PICK, params).status_code == 200
    return len(ctx.captured_queries)


# session, user, the user's permissions (own, groups'), then one query per kind asked for.
PICK_QUERIES = 4 + 3


def test_the_picker_runs_the_same_queries_for_three_people_as_for_forty(client, people):
    client.force_login(people.admin)  # a superuser: no permission queries
    few = count(client, {"q": "a"})
    for n in range(40):
        UserFactory(username=f"agent{n}", first_name="Agent", last_name=f"Number {n}")
        Group.objects.create(name=f"Area {n}")
        Queue.objects.create(api_name=f"area_{n}", label=f"Area queue {n}")
    many = count(client, {"q": "a"})
    assert few == many == PICK_QUERIES - 2  # a superuser's permissions are not read
    assert len(options(client.get(PICK, {"q": "a"}).content.decode())) == 3 * picker.LIMIT
    assert count(client, {"q": "a", "kinds": "user"}) == PICK_QUERIES - 2 - 2
    client.force_login(grant(people.bob, VIEW))
    assert count(client, {"q": "a"}) == PICK_QUERIES


# --- reassigning with the picker -----------------------------------------------------------------

POST = "/work-items/reassign/"


@pytest.fixture
def open_item(people):  # type: ignore[no-untyped-def]
    grant(people.charlie, VIEW)  # charlie may also reassign, through the managers group
    everyone_process()
    return item(launch("proc", make_case("Case 1")), "mine")  # alice's


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_a_pick_reassigns_to_that_person_and_says_their_name(client, people, open_item):
    dana = picker.resolve_text("dana")[0]
    client.force_login(people.charlie)
    response = client.post(
        POST, {"items": [open_item.pk], "pick": dana.token, "target": dana.label, "reason": "x"}, follow=True
    )
    assert messages_of(response) == ["1 item reassigned to Dana Whitfield."]
    open_item.refresh_from_db()
    assert open_item.assignee_user.username == "dana"
    event = RunEvent.objects.get(run=open_item.run, name="workitems.item.reassigned")
    assert event.payload["new"] == "Dana Whitfield"


@pytest.mark.parametrize(
    ("typed", "kind", "username"),
    [
        ("dana", "user", "dana"),  # a username
        ("Dana Whitfield", "user", "dana"),  # a full name, any case below
        ("dana WHITE", "user", "dwhite"),
        ("Dana Whitfield (dana)", "user", "dana"),  # a picker label, pasted
        ("support", "group", ""),
        ("triage", "queue", ""),
        ("Triage", "queue", ""),
    ],
)
def test_text_typed_without_picking_is_taken_when_it_names_exactly_one(
    client, people, open_item, typed, kind, username
):
    client.force_login(people.charlie)
    response = client.post(POST, {"items": [open_item.pk], "target": typed}, follow=True)
    assert response.redirect_chain, messages_of(response)
    open_item.refresh_from_db()
    if kind == "user":
        assert open_item.assignee_user.username == username
    else:
        assert getattr(open_item, f"assignee_{kind}") is not None and open_item.assignee_user is None


@pytest.mark.parametrize(
    ("data", "said"),
    [
        # A typo: no dead end, the near matches are named.
        ({"target": "Dana Whitfeld"}, "No user, group or queue is called “Dana Whitfeld”. Did you mean "),
        ({"target": "danna"}, "Did you mean Dana White (dwhite), Dana Whitfield (dana), group Dana's team"),
        # Two people of the same name: which one is for the manager to say.
        ({"target": "sam lee"}, "“sam lee” names more than one: Sam Lee (slee), Sam Lee (slee2). Pick one"),
        ({"pick": "user:999999", "target": "Ghost"}, "That choice is no longer available: pick again"),
        ({"pick": "robot:1", "target": "x"}, "That choice is no longer available"),
    ],
)
def test_a_name_that_is_no_one_or_several_is_answered_with_who_it_could_be(
    client, people, open_item, data, said
):
    client.force_login(people.charlie)
    response = client.post(POST, {"items": [open_item.pk], "reason": "kept", **data})
    assert response.status_code == 400
    html = htmllib.unescape(response.content.decode())
    assert said in html
    assert 'value="kept"' in html  # the reason stays
    open_item.refresh_from_db()
    assert open_item.assignee_user == people.alice
    assert not RunEvent.objects.filter(name="workitems.item.reassigned").exists()


def test_an_inactive_persons_stale_pick_is_refused(client, people, open_item):
    gone = picker.Choice("user", people.bob.pk, "bob", "bob", people.bob)
    people.bob.is_active = False
    people.bob.save()
    client.force_login(people.charlie)
    response = client.post(POST, {"items": [open_item.pk], "pick": gone.token, "target": "bob"})
    assert response.status_code == 400
    assert WorkItem.objects.get(pk=open_item.pk).assignee_user == people.alice


def test_a_row_dialog_that_failed_opens_again_with_its_message(client, people, open_item):
    client.force_login(people.charlie)
    response = client.post(POST, {"items": [open_item.pk], "row": open_item.pk, "target": "nobody-at-all"})
    html = response.content.decode()
    assert response.status_code == 400
    dialog = re.search(rf'<div class="work-item-dialog[^>]*id="item-{open_item.pk}-dialog"[^>]*>', html)
    assert dialog and "data-open-on-load" in dialog.group(0)
    assert f'id="row-{open_item.pk}-target-error"' in html
    assert 'id="reassign-target-error"' not in html  # the bulk form is left clean


# --- the Work Items filter -----------------------------------------------------------------------


def test_the_assigned_to_filter_shows_the_persons_name_and_takes_typed_text(client, people, open_item):
    client.force_login(people.charlie)
    html = client.get("/work-items/", {"user": "alice"}).content.decode()
    assert re.search(r'id="filter-who" name="who" value="alice"', html)  # alice has no full name
    assert 'data-picker-field="user"' in html and 'name="user" value="alice"' in html
    WorkItem.objects.filter(pk=open_item.pk).update(assignee_user=people.bob)
    people.bob.first_name, people.bob.last_name = "Bob", "Builder"
    people.bob.save()
    html = htmllib.unescape(client.get("/work-items/", {"user": "bob"}).content.decode())
    assert 'value="Bob Builder (bob)"' in html and f'data-item="{open_item.pk}"' in html
    # Typed without JavaScript: an exact name filters; a typo says who it could be.
    by_text = client.get("/work-items/", {"who": "bob builder"}).content.decode()
    assert f'data-item="{open_item.pk}"' in by_text
    typo = htmllib.unescape(client.get("/work-items/", {"who": "bbo"}).content.decode())
    assert "No user, group or queue is called “bbo”." in typo
