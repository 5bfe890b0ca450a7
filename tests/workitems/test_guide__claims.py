"""Group and queue items in the Work Guide: any member can work one, "Claim" takes it
(the others see who holds it), "Release" gives it back. When two people finish the same item,
exactly one completion counts; the other is told who completed it and sees their input."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from orchestration.models import StepStatus
from tests.factories import RECORD_PERMS, UserFactory, grant
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus

from .guide_support import define, item_of, page_url, panel, post_screen, start, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(personas):  # type: ignore[no-untyped-def]
    """alice and erin, both in "engineering", both allowed on record pages."""
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    grant(personas.alice, *RECORD_PERMS)
    grant(erin, *RECORD_PERMS)
    return personas.alice, erin


def logged_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_assign_to_me_claims_the_item_and_opens_it(team):
    alice, erin = team
    define(assignee={"queue": "eng_queue"})
    case, run = start()
    item = item_of(run)
    response = logged_in(alice).post(f"/work-items/{item.pk}/claim", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response["HX-Retarget"] == "#panel-work_guide"
    assert "“Check the claim” is assigned to you" in text(html)
    assert "Held by you" in text(html)
    assert 'name="f-amount"' in html  # opened, ready to work
    assert WorkItem.objects.get(pk=item.pk).claimed_by == alice
    others = panel(logged_in(erin).get(page_url(case)).content.decode())
    assert "Held by alice" in text(others)


def test_release_gives_the_item_back_to_the_team(team):
    alice, erin = team
    define(assignee={"group": "engineering"})
    case, run = start()
    item = item_of(run)
    client = logged_in(alice)
    client.post(f"/work-items/{item.pk}/claim")
    response = client.post(f"/work-items/{item.pk}/release", HTTP_HX_REQUEST="true")
    assert "is back with the team" in text(response.content.decode())
    assert WorkItem.objects.get(pk=item.pk).claimed_by is None
    assert ">Claim</button>" in panel(logged_in(erin).get(page_url(case)).content.decode())
    # Releasing what one does not hold changes nothing and says so.
    again = client.post(f"/work-items/{item.pk}/release", HTTP_HX_REQUEST="true")
    assert "You do not hold this item" in text(again.content.decode())


def test_claiming_an_item_someone_already_holds_names_them(team):
    alice, erin = team
    define(assignee={"group": "engineering"})
    _, run = start()
    item = item_of(run)
    logged_in(alice).post(f"/work-items/{item.pk}/claim")
    html = logged_in(erin).post(f"/work-items/{item.pk}/claim", HTTP_HX_REQUEST="true").content.decode()
    assert "alice holds this item" in text(html)
    assert WorkItem.objects.get(pk=item.pk).claimed_by == alice


def test_without_javascript_claim_and_release_redirect_to_the_record_page(team):
    alice, _ = team
    define(assignee={"group": "engineering"})
    case, run = start()
    item = item_of(run)
    client = logged_in(alice)
    claimed = client.post(f"/work-items/{item.pk}/claim")
    assert claimed["Location"] == f"/records/case/{case.pk}/?item={item.pk}#work-item-{item.pk}"
    page = client.get(claimed["Location"]).content.decode()
    assert "is assigned to you" in page and 'name="f-amount"' in panel(page)
    released = client.post(f"/work-items/{item.pk}/release")
    assert released["Location"] == f"/records/case/{case.pk}/"


def test_someone_who_does_not_hold_a_claimed_item_cannot_complete_it_and_keeps_their_input(team):
    alice, erin = team
    define(assignee={"group": "engineering"})
    _, run = start()
    item = item_of(run)
    erin_client = logged_in(erin)
    post_screen(erin_client, item, 0, "next", amount="70", kind="repair")
    logged_in(alice).post(f"/work-items/{item.pk}/claim")
    html = post_screen(erin_client, item, 1, "finish", reason="Looks fine").content.decode()
    assert "alice holds this item and is working on it" in text(html)
    assert "Your input (not saved):" in text(html)
    assert "Looks fine" in html and "70" in html
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED
    assert WorkItemDraft.objects.get(item=item, user=erin).values["reason"] == "Looks fine"


def test_the_second_of_two_finishes_is_told_who_completed_it_and_sees_their_input(team):
    alice, erin = team
    define(assignee={"group": "engineering"})
    case, run = start()
    item = item_of(run)
    alice_client, erin_client = logged_in(alice), logged_in(erin)
    for client in (alice_client, erin_client):
        post_screen(client, item, 0, "next", amount="10", kind="repair")
    post_screen(alice_client, item, 1, "finish", reason="Alice says yes")
    html = post_screen(erin_client, item, 1, "finish", approved="on", reason="Erin says no").content.decode()
    assert "This item was already completed by alice on" in text(html)
    assert "Erin says no" in html
    item.refresh_from_db()
    assert item.completed_by == alice
    assert item.outputs["reason"] == "Alice says yes"
    # Her input stays hers: the record page shows it again after a reload.
    again = panel(erin_client.get(page_url(case, item=item.pk)).content.decode())
    assert "already completed by alice" in text(again) and "Erin says no" in again
    # Without JavaScript, the same message comes as a page message, and the input on the page.
    nojs = post_screen(erin_client, item, 1, "finish", htmx=False, reason="Erin again")
    page = erin_client.get(nojs["Location"]).content.decode()
    assert "already completed by alice" in page and "Erin again" in page


@pytest.mark.django_db(transaction=True)
def test_two_people_finishing_at_the_same_moment_complete_the_step_once(personas):
    alice = personas.alice
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    define(assignee={"group": "engineering"})
    _, run = start()
    item = item_of(run)
    for user in (alice, erin):
        post_screen(logged_in(user), item, 0, "next", amount="10", kind="repair")
    barrier = threading.Barrier(2)
    pages: dict[str, str] = {}

    def finish(user) -> None:  # type: ignore[no-untyped-def]
        try:
            client = logged_in(user)
            barrier.wait()
            pages[user.username] = post_screen(
                client, item, 1, "finish", reason=user.username
            ).content.decode()
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(u,)) for u in (alice, erin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    item.refresh_from_db()
    winner = item.completed_by.username  # type: ignore[union-attr]
    loser = "erin" if winner == "alice" else "alice"
    assert item.outputs["reason"] == winner
    assert "is completed" in text(pages[winner])
    assert f"This item was already completed by {winner} on" in text(pages[loser])
    assert f'<dd class="col-sm-7 text-break mb-1">{loser}</dd>' in pages[loser]
    assert item.step_run.status == StepStatus.COMPLETED
    assert WorkItem.objects.filter(run=run, status=WorkItemStatus.COMPLETED).count() == 1


def test_a_claim_that_loses_the_race_with_a_reassignment_is_refused(personas):
    # alice opened the queue item, then a manager moved it to bob's queue before her
    # "Claim" took the run lock. The claim used to be checked only on the item alice
    # had loaded: she then held an item she may not act on, and bob, who may, was locked out of
    # it ("another person has claimed this item") with nobody able to release it but alice.
    from django.core.exceptions import PermissionDenied

    from workitems.services import workitem_claim, workitem_complete, workitem_reassign

    define(assignee={"queue": "eng_queue"})
    _case, run = start()
    stale = item_of(run)  # what alice's page loaded
    workitem_reassign(item=item_of(run), actor=personas.charlie, queue=personas.triage)

    with pytest.raises(PermissionDenied, match="reassigned"):
        workitem_claim(item=stale, user=personas.alice)

    item = WorkItem.objects.get(pk=stale.pk)
    assert item.claimed_by is None
    assert item.assignee_queue == personas.triage
    assert list(run.events.filter(name="workitems.item.claimed")) == []
    workitem_complete(item=item, user=personas.bob, data={"amount": "10", "kind": "repair", "reason": "fine"})
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.COMPLETED


def test_a_closed_item_cannot_be_released_and_keeps_who_held_it(team):  # type: ignore[no-untyped-def]
    from orchestration.models import RunEvent
    from workitems.services import WorkItemClosed, workitem_claim, workitem_release

    alice, _erin = team
    define(assignee={"group": "engineering"})
    _, run = start()
    held = workitem_claim(item=item_of(run), user=alice)
    WorkItem.objects.filter(pk=held.pk).update(status=WorkItemStatus.CANCELED)  # its stage ended
    with pytest.raises(WorkItemClosed):
        workitem_release(item=held, user=alice)
    html = logged_in(alice).post(f"/work-items/{held.pk}/release", HTTP_HX_REQUEST="true").content.decode()
    assert "There is nothing to release." in text(html)
    held.refresh_from_db()
    assert held.claimed_by == alice and held.status == WorkItemStatus.CANCELED
    assert not RunEvent.objects.filter(name="workitems.item.released").exists()
