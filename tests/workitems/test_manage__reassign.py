"""Reassigning from the Work Items page: one item or many, to a user, a group or a queue, with a
reason; the event, the email to the new assignee, failures per item, bad input, and refusals."""

from __future__ import annotations

import html as htmllib
import re

import pytest

from orchestration.models import RunEvent
from tests.factories import grant, make_case
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_complete

from .mywork_support import everyone_process, item, launch

# Emails go out on commit: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/work-items/"
POST = "/work-items/reassign/"
VIEW = "workitems.view_workitem"


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def cases(personas):  # type: ignore[no-untyped-def]
    """Three runs of "proc" (five items each); charlie is a manager who may view the page."""
    everyone_process()
    grant(personas.charlie, VIEW)
    return [launch("proc", make_case(f"Case {n}")) for n in (1, 2, 3)]


def test_a_manager_reassigns_three_items_to_a_user_with_a_reason(client, personas, cases, mailoutbox):
    items = [item(run, "mine") for run in cases]  # alice's
    mailoutbox.clear()  # the emails of the launches
    client.force_login(personas.charlie)
    response = client.post(
        POST,
        {
            "items": [i.pk for i in items],
            "kind": "user",
            "target": "bob",
            "reason": "Alice is on leave",
            "view": "stalled",
            "orchestration": "proc",
        },
        follow=True,
    )
    # Back to the same filtered list, with the outcome.
    assert response.redirect_chain == [(f"{URL}?view=stalled&orchestration=proc", 302)]
    assert messages_of(response) == ["3 items reassigned to bob."]
    for i in items:
        i.refresh_from_db()
        assert i.assignee_user == personas.bob
        assert i.status == WorkItemStatus.ASSIGNED
        event = RunEvent.objects.get(run=i.run, name="workitems.item.reassigned")
        assert event.actor == personas.charlie
        assert event.payload == {
            "work_item": i.pk,
            "old": "alice",
            "new": "bob",
            "reason": "Alice is on leave",
        }
    # The new assignee is told about each item, with a link to it.
    assert sorted(m.to for m in mailoutbox) == [["bob@example.com"]] * 3
    bodies = " ".join(m.body for m in mailoutbox)
    for i in items:
        assert f"item={i.pk}" in bodies
    # ... and finds them on My Work.
    client.force_login(personas.bob)
    mywork = client.get("/my-work/").content.decode()
    for i in items:
        assert f'data-item="{i.pk}"' in mywork


@pytest.mark.parametrize(
    ("kind", "target", "said", "field"),
    [
        ("group", "support", "group support", "assignee_group"),
        ("queue", "triage", "queue Triage", "assignee_queue"),
        ("queue", "Triage", "queue Triage", "assignee_queue"),  # by its label too
    ],
)
def test_one_item_is_reassigned_to_a_group_or_a_queue_from_its_row(
    client, personas, cases, mailoutbox, kind, target, said, field
):
    one = item(cases[0], "group")  # group engineering
    mailoutbox.clear()
    client.force_login(personas.charlie)
    response = client.post(
        POST, {"items": [one.pk], "kind": kind, "target": target, "reason": ""}, follow=True
    )
    assert messages_of(response) == [f"1 item reassigned to {said}."]
    one.refresh_from_db()
    assert getattr(one, field) is not None and one.assignee_user is None
    event = RunEvent.objects.get(run=one.run, name="workitems.item.reassigned")
    assert (event.payload["old"], event.payload["new"]) == ("group engineering", said)
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]  # bob is in support and in Triage


def test_a_closed_item_is_reported_and_the_others_still_move(client, personas, cases, mailoutbox):
    done, still_open = item(cases[0], "mine"), item(cases[1], "mine")
    workitem_complete(item=done, user=personas.alice, data={"approved": "true"})
    mailoutbox.clear()
    client.force_login(personas.charlie)
    response = client.post(
        POST, {"items": [done.pk, still_open.pk], "kind": "user", "target": "bob", "reason": "x"}, follow=True
    )
    said = messages_of(response)
    assert said[0] == "1 item reassigned to bob."
    assert said[1].startswith(
        f"“Check the facts” (item {done.pk}) was not reassigned: already completed by alice"
    )
    done.refresh_from_db()
    assert done.assignee_user == personas.alice and done.completed_by == personas.alice
    assert not RunEvent.objects.filter(run=done.run, name="workitems.item.reassigned").exists()
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]


def test_a_viewer_who_may_not_reassign_sees_no_control_and_a_forged_post_is_refused(
    client, personas, cases, mailoutbox
):
    grant(personas.alice, VIEW)
    mine = item(cases[0], "mine")
    mailoutbox.clear()
    client.force_login(personas.alice)
    html = client.get(URL).content.decode()
    assert 'name="items"' not in html and "/work-items/reassign/" not in html
    response = client.post(POST, {"items": [mine.pk], "kind": "user", "target": "bob", "reason": "mine now"})
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.assignee_user == personas.alice
    assert not RunEvent.objects.filter(name="workitems.item.reassigned").exists()
    assert mailoutbox == []
    # Someone who may reassign but not see the page is refused too; anonymous goes to log in.
    client.force_login(grant(personas.bob, "workitems.reassign_workitem"))
    assert client.post(POST, {"items": [mine.pk], "kind": "user", "target": "bob"}).status_code == 403
    client.logout()
    assert client.post(POST, {"items": [mine.pk], "kind": "user", "target": "bob"}).status_code == 302


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "user", "target": "zed"}, "There is no active user “zed”."),
        ({"kind": "group", "target": "nope"}, "There is no group “nope”."),
        ({"kind": "queue", "target": "nope"}, "There is no queue “nope”."),
        ({"kind": "user", "target": ""}, "Name the user, group or queue to reassign to."),
        ({"kind": "user", "target": "bob", "items": []}, "Select at least one item to reassign."),
    ],
)
def test_bad_input_says_what_is_wrong_and_keeps_the_selection_and_the_reason(
    client, personas, cases, data, message
):
    picked = [item(run, "mine").pk for run in cases[:2]]
    client.force_login(personas.charlie)
    post = {"items": picked, "reason": "Alice is on leave", "view": "open", "user": "alice", **data}
    response = client.post(POST, post)
    assert response.status_code == 400
    html = htmllib.unescape(response.content.decode())
    assert message in html
    assert "Nothing was reassigned" in html
    assert 'value="Alice is on leave"' in html  # the reason is kept
    ticked = set(re.findall(r'name="items" value="(\d+)" id="select-\d+" checked', html))
    assert ticked == {str(pk) for pk in post["items"]}
    # The list is the one the manager was on (filtered on alice), and nothing moved.
    assert len(re.findall(r'<tr data-item="', html)) == 3
    assert WorkItem.objects.filter(assignee_user=personas.alice, status="assigned").count() == 3
    assert not RunEvent.objects.filter(name="workitems.item.reassigned").exists()
