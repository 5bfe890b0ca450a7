"""`claim_required: true` on an interactive step (claim before complete): a group or queue item
is completed only by the member who claimed it. The service refuses anyone else, the Work Guide
offers Claim (keeping what was typed) where Finish would be; an item for one user is theirs."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from orchestration.models import RunEvent, StepStatus
from orchestration.validation import validate_documents
from tests.factories import RECORD_PERMS, UserFactory, grant, load, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus
from workitems.services import (
    CLAIM_REQUIRED,
    ClaimRequired,
    workitem_claim,
    workitem_complete,
    workitem_reassign,
    workitem_release,
)

from .guide_support import TWO_SCREENS, check_step, item_of, page_url, panel, post_screen, start, text

pytestmark = pytest.mark.django_db

DONE = {"amount": "5", "kind": "repair", "reason": "ok"}


def define_claimed(assignee: dict[str, str], **extra: Any) -> None:
    """The claim process (guide_support) with its "check" step saying claim_required."""
    load(
        {**screen_flow("claim_check", screens=TWO_SCREENS), "label": "Claim check"},
        orchestration(
            "claims",
            stages=[
                {
                    "key": "review",
                    "label": "Review",
                    "steps": [check_step(assignee, claim_required=True, **extra)],
                }
            ],
        ),
    )


@pytest.fixture
def team(personas):  # type: ignore[no-untyped-def]
    """alice and erin, both in "engineering" (and so in its queue eng_queue)."""
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    for user in (personas.alice, erin):
        grant(user, *RECORD_PERMS)
    return personas.alice, erin


def logged_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def completed(item: WorkItem) -> bool:
    item.refresh_from_db()
    return item.status == WorkItemStatus.COMPLETED


# --- the service ---------------------------------------------------------------------------------


@pytest.mark.parametrize("assignee", [{"group": "engineering"}, {"queue": "eng_queue"}])
def test_finish_is_refused_until_the_member_has_claimed_the_item(team, assignee):
    alice, _ = team
    define_claimed(assignee)
    _, run = start()
    item = item_of(run)
    with pytest.raises(ClaimRequired) as refused:
        workitem_complete(item=item, user=alice, data=DONE)
    assert (
        str(refused.value)
        == CLAIM_REQUIRED
        == ("Claim this item to complete it: this step is completed by the team member who holds it.")
    )
    assert not completed(item)
    assert item.step_run.status == StepStatus.IN_PROGRESS
    assert not RunEvent.objects.filter(run=run, name="orchestration.step.completed").exists()
    workitem_claim(item=item, user=alice)
    workitem_complete(item=item, user=alice, data=DONE)
    assert completed(item) and item.completed_by == alice


def test_only_the_member_who_claimed_completes_it(team):
    alice, erin = team
    define_claimed({"group": "engineering"})
    _, run = start()
    item = item_of(run)
    workitem_claim(item=item, user=erin)
    with pytest.raises(PermissionDenied, match="another person has claimed this item"):
        workitem_complete(item=item, user=alice, data=DONE)
    assert not completed(item)
    workitem_complete(item=item, user=erin, data=DONE)
    assert completed(item) and item.completed_by == erin


def test_a_released_claim_or_a_reassignment_needs_a_new_claim(team, personas):
    alice, erin = team
    define_claimed({"group": "engineering"})
    _, run = start()
    item = item_of(run)
    workitem_claim(item=item, user=alice)
    workitem_release(item=item, user=alice)
    with pytest.raises(ClaimRequired):
        workitem_complete(item=item, user=alice, data=DONE)
    workitem_claim(item=item, user=alice)
    # A manager moves it to the queue: the claim goes with the old assignment.
    workitem_reassign(item=item, actor=personas.charlie, queue=personas.eng_queue, reason="queue it")
    item.refresh_from_db()
    assert item.claimed_by is None
    with pytest.raises(ClaimRequired):
        workitem_complete(item=item, user=erin, data=DONE)
    workitem_claim(item=item, user=erin)
    workitem_complete(item=item, user=erin, data=DONE)
    assert completed(item)


def test_an_item_for_one_user_counts_as_claimed_by_them(team):
    alice, _ = team
    define_claimed({"user": "alice"})
    _, run = start()
    item = item_of(run)
    workitem_complete(item=item, user=alice, data=DONE)
    assert completed(item) and item.claimed_by is None


def test_without_claim_required_any_member_finishes_unclaimed(team):
    alice, _ = team
    load(
        screen_flow("claim_check", screens=TWO_SCREENS),
        orchestration("claims", stages=[{"key": "review", "steps": [check_step({"group": "engineering"})]}]),
    )
    _, run = start()
    item = item_of(run)
    workitem_complete(item=item, user=alice, data=DONE)
    assert completed(item)


def test_claim_required_is_false_by_default_and_refused_on_background_steps():
    from orchestration.definitions import Step

    assert Step(key="a", kind="background", flow="f").claim_required is False
    doc = orchestration(
        "bad",
        stages=[
            {
                "key": "s",
                "steps": [{"key": "score", "kind": "background", "flow": "f", "claim_required": True}],
            }
        ],
    )
    result = validate_documents([("x.yaml", doc)], known_flows={"f": ("autolaunched_flow", None)})
    assert [str(e) for e in result.errors] == [
        "x.yaml: stages[0].steps[0]: background step 'score' has no work item to claim: no claim_required"
    ]


# --- the Work Guide ------------------------------------------------------------------------------


def last_screen(client: Client, item: WorkItem) -> str:
    post_screen(client, item, 0, "next", amount="70", kind="repair")
    return client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true").content.decode()


def test_the_last_screen_offers_claim_instead_of_an_active_finish(team):
    alice, _ = team
    define_claimed({"group": "engineering"})
    _, run = start()
    item = item_of(run)
    client = logged_in(alice)
    first = client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'value="next"' in first and "Claim this item to complete it." not in first
    html = last_screen(client, item)
    assert "Screen 2 of 2" in text(html)
    assert "Claim this item to complete it." in text(html)
    assert '<button class="btn btn-primary" type="submit" name="action" value="claim"' in html
    assert 'value="finish"' not in html
    assert 'type="button" disabled' in html  # Finish is there, inactive


def test_claim_from_the_last_screen_keeps_the_typed_answer_and_activates_finish(team):
    alice, _ = team
    define_claimed({"group": "engineering"})
    case, run = start()
    item = item_of(run)
    client = logged_in(alice)
    last_screen(client, item)
    response = post_screen(client, item, 1, "claim", reason="Receipts attached")
    html = response.content.decode()
    assert response["HX-Retarget"] == "#panel-work_guide"
    assert "“Check the claim” is assigned to you" in text(html)
    assert "Held by you" in text(html)
    assert 'value="finish"' in html and "Claim this item to complete it." not in text(html)
    assert 'value="Receipts attached"' in html  # what was typed, still in the field
    item.refresh_from_db()
    assert item.claimed_by == alice
    assert WorkItemDraft.objects.get(item=item, user=alice).values["reason"] == "Receipts attached"
    post_screen(client, item, 1, "finish", reason="Receipts attached")
    assert completed(item)
    assert item.outputs["reason"] == "Receipts attached"
    assert "Task history" in client.get(page_url(case)).content.decode()


def test_a_finish_sent_without_a_claim_shows_the_screen_again_with_the_message(team):
    alice, _ = team
    define_claimed({"group": "engineering"})
    _, run = start()
    item = item_of(run)
    client = logged_in(alice)
    last_screen(client, item)
    html = post_screen(client, item, 1, "finish", reason="Skipping the claim").content.decode()
    assert CLAIM_REQUIRED in html
    assert 'value="claim"' in html and 'value="Skipping the claim"' in html
    assert not completed(item)
    # Without JavaScript: the same message on the record page, the item open where it was.
    response = post_screen(client, item, 1, "finish", htmx=False, reason="Still no claim")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert CLAIM_REQUIRED in page
    assert "Screen 2 of 2" in text(panel(page)) and 'value="Still no claim"' in page
    assert not completed(item)


def test_a_claim_someone_else_made_first_shows_who_holds_it_and_the_input(team):
    alice, erin = team
    define_claimed({"group": "engineering"})
    _, run = start()
    item = item_of(run)
    client = logged_in(alice)
    last_screen(client, item)
    erin.first_name, erin.last_name = "Erin", "Eastwood"
    erin.save()
    workitem_claim(item=item, user=erin)
    html = post_screen(client, item, 1, "claim", reason="Mine").content.decode()
    assert "Erin Eastwood holds this item and is working on it" in text(html)  # by name
    assert "Your input (not saved):" in text(html) and "Mine" in html
    item.refresh_from_db()
    assert item.claimed_by == erin


def test_a_claim_sent_for_an_item_of_one_user_says_there_is_nothing_to_claim(team):
    alice, _ = team
    define_claimed({"user": "alice"})
    _, run = start()
    item = item_of(run)
    client = logged_in(alice)
    post_screen(client, item, 0, "next", amount="70", kind="repair")
    html = post_screen(client, item, 1, "claim", reason="Mine anyway").content.decode()
    assert "this item is assigned to one person; there is nothing to claim" in html
    assert "Mine anyway" in html
    item.refresh_from_db()
    assert item.claimed_by is None and item.status == WorkItemStatus.ASSIGNED
