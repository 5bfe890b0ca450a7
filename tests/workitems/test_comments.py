"""Comments on a work item: who may write and read them (its assignee, its group's or queue's
members, who completed it, managers with workitems.view_workitem; nobody else), what is refused
(empty, too long) with the text kept, the event each one writes, and how the Work Guide shows
them (htmx in place, or a plain post and a redirect), escaped."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from orchestration.models import RunEvent
from orchestration.services import run_cancel
from tests.factories import RECORD_PERMS, UserFactory, grant
from workitems.models import WorkItemComment
from workitems.services import workitem_comment, workitem_complete

from .guide_support import define, item_of, page_url, panel, start, text

pytestmark = pytest.mark.django_db

DONE = {"amount": "5", "kind": "repair", "reason": "ok"}


@pytest.fixture
def people(personas):  # type: ignore[no-untyped-def]
    for user in (personas.alice, personas.bob, personas.charlie):
        grant(user, *RECORD_PERMS)
    personas.alice.first_name, personas.alice.last_name = "Alice", "Archer"
    personas.alice.save()
    return personas


def logged_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def comments_block(html: str, item) -> str:  # type: ignore[no-untyped-def]
    match = re.search(
        rf'<div class="work-item-comments[^"]*" id="work-item-{item.pk}-comments">(.*?)</form>', html, re.S
    )
    assert match, "no comments block for the item"
    return match.group(1)


def commented_events(item) -> list[RunEvent]:  # type: ignore[no-untyped-def]
    return list(RunEvent.objects.filter(run=item.run, name="workitems.item.commented").order_by("id"))


# --- the service: who may comment -----------------------------------------------------------------


def test_the_assignee_comments_and_an_event_names_the_comment_and_its_author(people):
    define()
    _, run = start()
    item = item_of(run)
    comment = workitem_comment(item=item, author=people.alice, body="  Photos are blurry, asked again.\r\n ")
    assert comment.body == "Photos are blurry, asked again."
    assert list(WorkItemComment.objects.filter(item=item).values_list("author__username", "body")) == [
        ("alice", "Photos are blurry, asked again.")
    ]
    [event] = commented_events(item)
    assert event.actor == people.alice
    assert event.step == "check"
    assert event.payload == {"work_item": item.pk, "comment": comment.pk}


@pytest.mark.parametrize(
    ("assignee", "member"),
    [({"group": "support"}, "bob"), ({"queue": "triage"}, "bob"), ({"queue": "eng_queue"}, "alice")],
)
def test_members_of_the_items_group_or_queue_comment(people, assignee, member):
    define(assignee=assignee)
    _, run = start()
    item = item_of(run)
    workitem_comment(item=item, author=getattr(people, member), body="On it after lunch")
    assert WorkItemComment.objects.filter(item=item, author=getattr(people, member)).count() == 1
    assert len(commented_events(item)) == 1


def test_a_manager_with_view_workitem_comments_a_manager_without_it_does_not(people):
    define()
    _, run = start()
    item = item_of(run)
    with pytest.raises(PermissionDenied):
        workitem_comment(item=item, author=people.charlie, body="Please hurry")
    assert WorkItemComment.objects.count() == 0
    grant(people.charlie, "workitems.view_workitem")
    workitem_comment(item=item, author=people.charlie, body="Please hurry")
    assert WorkItemComment.objects.filter(item=item, author=people.charlie).count() == 1


def test_an_outsider_is_refused_and_nothing_is_written(people):
    define()  # alice's item
    _, run = start()
    item = item_of(run)
    outsider = UserFactory(username="oscar")
    for who in (people.bob, outsider):
        with pytest.raises(PermissionDenied):
            workitem_comment(item=item, author=who, body="Let me in")
    inactive = UserFactory(username="gone", is_active=False)
    with pytest.raises(PermissionDenied):
        workitem_comment(item=item, author=inactive, body="Still here?")
    assert WorkItemComment.objects.count() == 0
    assert commented_events(item) == []


@pytest.mark.parametrize("body", ["", "   ", "\r\n\t ", "\x00"])
def test_an_empty_comment_is_refused_with_a_message(people, body):
    define()
    _, run = start()
    item = item_of(run)
    with pytest.raises(ValidationError) as refused:
        workitem_comment(item=item, author=people.alice, body=body)
    assert refused.value.messages == ["Write something before you send the comment."]
    assert WorkItemComment.objects.count() == 0
    assert commented_events(item) == []


def test_a_comment_is_at_most_4000_characters(people):
    define()
    _, run = start()
    item = item_of(run)
    with pytest.raises(ValidationError) as refused:
        workitem_comment(item=item, author=people.alice, body="x" * 4001)
    assert refused.value.messages == [
        "A comment is at most 4,000 characters; this one has 4,001. Shorten it and send it again."
    ]
    assert WorkItemComment.objects.count() == 0
    # Exactly the limit is fine, and a Windows line break counts as one character.
    workitem_comment(item=item, author=people.alice, body="y" * 3998 + "\r\nz")
    assert len(WorkItemComment.objects.get().body) == 4000


def test_closed_items_take_comments_for_their_history(people):
    define()
    _, run = start()
    item = item_of(run)
    workitem_complete(item=item, user=people.alice, data=DONE)
    item.refresh_from_db()
    workitem_comment(item=item, author=people.alice, body="Paid on Friday")
    _, other = start("Other")
    canceled = item_of(other)
    run_cancel(run_id=other.pk, actor=people.admin)
    canceled.refresh_from_db()
    workitem_comment(item=canceled, author=people.alice, body="Customer withdrew")
    assert WorkItemComment.objects.count() == 2
    assert len(commented_events(item)) == len(commented_events(canceled)) == 1


# --- the Work Guide ------------------------------------------------------------------------------


def test_an_open_item_shows_its_comments_and_a_form(people):
    define()
    case, run = start()
    item = item_of(run)
    grant(people.charlie, "workitems.view_workitem")
    workitem_comment(item=item, author=people.charlie, body="Customer called twice")
    html = panel(logged_in(people.alice).get(page_url(case, item=item.pk)).content.decode())
    block = comments_block(html, item)
    assert "Comments (1)" in text(block)
    assert "charlie" in block and "Customer called twice" in block
    assert f'hx-post="/work-items/{item.pk}/comments"' in block
    assert f'hx-target="#work-item-{item.pk}-comments"' in block
    assert f'action="/work-items/{item.pk}/comments"' in block
    # A closed list (no item open) shows no comments: they come with the opened item.
    assert "work-item-comments" not in panel(logged_in(people.alice).get(page_url(case)).content.decode())


def test_an_htmx_comment_comes_back_as_the_comments_block_with_the_new_comment(people):
    define()
    _, run = start()
    item = item_of(run)
    response = logged_in(people.alice).post(
        f"/work-items/{item.pk}/comments", {"body": "Waiting for the invoice"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(
        f'<div class="work-item-comments mt-2" id="work-item-{item.pk}-comments">'
    )
    assert "<html" not in html
    comment = WorkItemComment.objects.get(item=item)
    assert comment.body == "Waiting for the invoice"
    # The author by name, the time in the project's format, the form empty again.
    assert "Alice Archer" in html
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d</time>", html)
    assert re.search(r'name="body"[^>]*>\s*</textarea>', html)
    assert "Comments (1)" in text(html)
    assert 'role="status">Your comment is added.' in html


def test_a_refused_htmx_comment_keeps_the_text_and_says_why(people):
    define()
    _, run = start()
    item = item_of(run)
    long = "Too much " * 500
    response = logged_in(people.alice).post(
        f"/work-items/{item.pk}/comments", {"body": long}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "A comment is at most 4,000 characters; this one has 4,499." in html
    assert long.strip() in html  # what was typed, back in the box
    assert 'aria-invalid="true"' in html
    assert WorkItemComment.objects.count() == 0
    blank = logged_in(people.alice).post(
        f"/work-items/{item.pk}/comments", {"body": "  "}, HTTP_HX_REQUEST="true"
    )
    assert "Write something before you send the comment." in blank.content.decode()
    assert WorkItemComment.objects.count() == 0


def test_a_plain_post_redirects_to_the_item_on_the_record_page_and_shows_the_comment(people):
    define()
    case, run = start()
    item = item_of(run)
    client = logged_in(people.alice)
    response = client.post(f"/work-items/{item.pk}/comments", {"body": "Checked the photos"})
    assert response.status_code == 302
    assert response["Location"] == f"/records/case/{case.pk}/?item={item.pk}#work-item-{item.pk}-comments"
    page = client.get(response["Location"]).content.decode()
    assert "Your comment is added." in page
    assert "Checked the photos" in comments_block(panel(page), item)
    assert WorkItemComment.objects.filter(item=item).count() == 1


def test_a_refused_plain_post_shows_a_page_with_the_text_and_the_message(people):
    define()
    _, run = start()
    item = item_of(run)
    response = logged_in(people.alice).post(f"/work-items/{item.pk}/comments", {"body": "x" * 4001})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Comments on “Check the claim”" in html
    assert "A comment is at most 4,000 characters" in html
    assert "x" * 4001 in html
    assert WorkItemComment.objects.count() == 0


def test_a_manager_reads_and_writes_comments_on_a_page_of_their_own(people):
    define()
    case, run = start()
    item = item_of(run)
    workitem_comment(item=item, author=people.alice, body="Need a second opinion")
    grant(people.charlie, "workitems.view_workitem")
    client = logged_in(people.charlie)
    page = client.get(f"/work-items/{item.pk}/comments")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Need a second opinion" in html and "Alice Archer" in html
    assert f'href="{case.get_absolute_url()}"' in html  # charlie may view records
    response = client.post(f"/work-items/{item.pk}/comments", {"body": "Approved, go ahead"})
    # Charlie has no Work Guide item here: back to the comments page.
    assert response["Location"] == f"/work-items/{item.pk}/comments"
    assert "Approved, go ahead" in client.get(response["Location"]).content.decode()


def test_outsiders_get_a_404_and_write_nothing(people):
    define()
    _, run = start()
    item = item_of(run)
    bob = logged_in(people.bob)
    assert bob.get(f"/work-items/{item.pk}/comments").status_code == 404
    assert bob.post(f"/work-items/{item.pk}/comments", {"body": "hi"}).status_code == 404
    assert (
        bob.post(f"/work-items/{item.pk}/comments", {"body": "hi"}, HTTP_HX_REQUEST="true").status_code == 404
    )
    assert bob.post("/work-items/999999/comments", {"body": "hi"}).status_code == 404
    anonymous = Client().post(f"/work-items/{item.pk}/comments", {"body": "hi"})
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert WorkItemComment.objects.count() == 0
    assert commented_events(item) == []


def test_a_comment_body_is_escaped_and_keeps_its_line_breaks(people):
    define()
    case, run = start()
    item = item_of(run)
    body = '<script>alert("x")</script>\nSecond line & <b>bold</b>'
    response = logged_in(people.alice).post(
        f"/work-items/{item.pk}/comments", {"body": body}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>Second line &amp; &lt;b&gt;bold&lt;/b&gt;"
        in html
    )
    page = logged_in(people.alice).get(page_url(case, item=item.pk)).content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;<br>" in page


def test_a_completed_item_in_the_link_shows_its_comments_to_its_team_and_takes_more(people):
    define(assignee={"group": "support"})
    case, run = start()
    item = item_of(run)
    dora = UserFactory(username="dora")
    dora.groups.add(people.support)
    workitem_comment(item=item, author=dora, body="Started")
    workitem_complete(item=item, user=dora, data=DONE)
    client = logged_in(people.bob)
    html = panel(client.get(page_url(case, item=item.pk)).content.decode())
    assert "This item was already completed by dora on" in text(html)
    assert "Started" in comments_block(html, item)
    response = client.post(f"/work-items/{item.pk}/comments", {"body": "Thanks dora"}, HTTP_HX_REQUEST="true")
    assert "Thanks dora" in response.content.decode()
    assert list(WorkItemComment.objects.filter(item=item).values_list("body", flat=True)) == [
        "Started",
        "Thanks dora",
    ]
