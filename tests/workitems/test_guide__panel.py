"""The Work Guide panel on the record page: whose items it lists, what it says about each, its
empty state, and what a link to one item (`?item=`, as in the assignment email) opens."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.factories import RECORD_PERMS, UserFactory, grant, make_case
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import workitem_claim, workitem_complete, workitem_reassign

from .guide_support import define, item_of, page_url, panel, post_screen, start, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(personas):  # type: ignore[no-untyped-def]
    for user in (personas.alice, personas.bob, personas.charlie):
        grant(user, *RECORD_PERMS)
    return personas


def guide(client, user, case, **params) -> str:  # type: ignore[no-untyped-def]
    client.force_login(user)
    response = client.get(page_url(case, **params))
    assert response.status_code == 200
    return panel(response.content.decode())


def test_lists_the_viewers_item_with_step_orchestration_stage_assignee_and_age(client, people):
    define()
    case, run = start()
    WorkItem.objects.filter(run=run).update(created_at=timezone.now() - timezone.timedelta(hours=3))
    html = guide(client, people.alice, case)
    assert "Check the claim" in html
    words = text(html)
    assert "Claim handling" in words
    assert "Stage: Review" in words
    assert "Assigned to you" in words
    assert "Waiting 3 hours" in words
    item = item_of(run)
    assert f'href="/records/case/{case.pk}/?item={item.pk}#work-item-{item.pk}"' in html
    assert f'hx-get="/work-items/{item.pk}/"' in html


def test_someone_elses_item_is_not_listed_and_the_panel_says_there_is_nothing_to_do(client, people):
    define(assignee={"user": "bob"})
    case, _ = start()
    html = guide(client, people.alice, case)
    assert "Check the claim" not in html
    assert "Nothing for you to do on this record." in text(html)
    assert "Check the claim" in guide(client, people.bob, case)


@pytest.mark.parametrize(
    ("assignee", "member", "outsider", "shown_as"),
    [
        ({"group": "support"}, "bob", "alice", "group support"),
        ({"queue": "triage"}, "bob", "alice", "queue Triage"),  # bob is a direct member
        ({"queue": "eng_queue"}, "alice", "bob", "queue Engineering queue"),  # through "engineering"
    ],
)
def test_group_and_queue_items_are_listed_for_their_members_only(
    client, people, assignee, member, outsider, shown_as
):
    define(assignee=assignee)
    case, _ = start()
    html = guide(client, getattr(people, member), case)
    assert "Check the claim" in html
    assert f"Assigned to {shown_as}" in text(html)
    assert ">Claim</button>" in html
    assert "Check the claim" not in guide(client, getattr(people, outsider), case)


def test_claim_is_offered_only_while_the_form_is_closed(client, people):
    """Whoever fills the form in completes the item, claimed or not: a Claim button beside the
    open form was one more thing to press that changed nothing."""
    define(assignee={"group": "support"})
    case, run = start()
    item = item_of(run)
    assert ">Claim</button>" in guide(client, people.bob, case)
    opened = guide(client, people.bob, case, item=item.pk)
    assert f'action="/work-items/{item.pk}/screen"' in opened
    assert ">Claim</button>" not in opened and "Assign to me" not in opened


def test_only_this_records_open_items_are_listed(client, people):
    define()
    case, run = start("Mine")
    other, _ = start("Other")
    item = item_of(run)
    html = guide(client, people.alice, case)
    assert html.count('class="work-item ') == 1
    workitem_complete(item=item, user=people.alice, data={"amount": "5", "kind": "repair", "reason": "ok"})
    assert "Nothing for you to do on this record." in text(guide(client, people.alice, case))
    assert "Check the claim" in guide(client, people.alice, other)


def test_a_link_to_an_item_opens_it_at_its_first_screen(client, people):
    define()
    case, run = start()
    item = item_of(run)
    html = guide(client, people.alice, case, item=item.pk)
    assert f'action="/work-items/{item.pk}/screen"' in html
    assert "Screen 1 of 2" in text(html)
    assert "Amount claimed" in html
    assert "In euros, without the sign." in html
    assert "What happened, in numbers." in html


def test_a_link_to_an_item_someone_completed_names_them_and_shows_no_screens(client, people):
    define(assignee={"group": "support"})
    case, run = start()
    item = item_of(run)
    helper = UserFactory(username="dora")
    helper.groups.add(people.support)
    workitem_complete(item=item, user=helper, data={"amount": "5", "kind": "repair", "reason": "ok"})
    html = guide(client, people.bob, case, item=item.pk)
    assert "This item was already completed by dora on" in text(html)
    assert 'name="f-amount"' not in html


def test_a_link_to_an_item_the_viewer_completed_says_so(client, people):
    define()
    case, run = start()
    item = item_of(run)
    workitem_complete(item=item, user=people.alice, data={"amount": "5", "kind": "repair", "reason": "ok"})
    assert "already completed by you" in text(guide(client, people.alice, case, item=item.pk))


def test_a_link_to_a_canceled_item_says_it_was_canceled(client, people):
    from orchestration.services import run_cancel

    define()
    case, run = start()
    item = item_of(run)
    run_cancel(run_id=run.pk, actor=people.admin)
    html = guide(client, people.alice, case, item=item.pk)
    assert "This item was canceled" in text(html)
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.CANCELED
    assert 'name="f-amount"' not in html


def test_a_link_to_an_item_moved_to_someone_else_says_so_and_reveals_nothing(client, people):
    define()
    case, run = start()
    item = item_of(run)
    # alice typed something, then a manager gave the item to bob.
    client.force_login(people.alice)
    post_screen(client, item, 0, "next", amount="42", kind="repair")
    workitem_reassign(item=item, actor=people.charlie, user=people.bob)
    html = guide(client, people.alice, case, item=item.pk)
    assert "now assigned to someone else" in text(html)
    assert 'name="f-amount"' not in html
    assert "bob" not in text(html)
    # What she typed is hers: it is shown back to her.
    assert "Your input (not saved):" in text(html)
    assert "42" in text(html)


def test_a_link_to_someone_elses_item_reveals_neither_its_screens_nor_its_data(client, people):
    define(assignee={"user": "bob"})
    case, run = start()
    item = item_of(run)
    client.force_login(people.bob)
    post_screen(client, item, 0, "next", amount="777", kind="repair")
    html = guide(client, people.alice, case, item=item.pk)
    assert "now assigned to someone else" in text(html)
    assert "777" not in html
    assert "Amount claimed" not in html
    assert "Your input" not in html


def test_a_link_to_an_item_of_another_record_or_none_at_all_says_so(client, people):
    define()
    case, _ = start("Here")
    _, other_run = start("There")
    for pk in (item_of(other_run).pk, 999999, "junk"):
        html = guide(client, people.alice, case, item=pk)
        if pk == "junk":
            assert "not on this record" not in html
        else:
            assert "The work item in your link is not on this record." in text(html)
        assert 'name="f-amount"' not in html


def test_a_claimed_item_shows_who_holds_it_to_the_others(client, people):
    define(assignee={"group": "engineering"})
    case, run = start()
    item = item_of(run)
    erin = UserFactory(username="erin")
    erin.groups.add(people.engineering)
    grant(erin, *RECORD_PERMS)
    workitem_claim(item=item, user=people.alice)
    html = guide(client, erin, case)
    assert "Held by alice" in text(html)
    assert ">Claim</button>" not in html
    assert ">Open<" not in html
    # Followed from the email, the item says who has it instead of opening.
    opened = guide(client, erin, case, item=item.pk)
    assert "alice holds this item and is working on it" in text(opened)
    assert 'name="f-amount"' not in opened
    mine = guide(client, people.alice, case)
    assert "Held by you" in text(mine)
    assert "Release" in mine


def test_record_values_and_labels_are_escaped(client, people):
    define(
        label="<script>alert('orch')</script>",
        screens=[
            {
                "key": "s",
                "label": "<script>alert('screen')</script>",
                "help": "<img src=x onerror=alert(1)>",
                "fields": [
                    {
                        "name": "note",
                        "label": "<script>alert('label')</script>",
                        "help": "<script>alert('help')</script>",
                        "default": "record.name",
                    },
                    {"name": "pick", "type": "choice", "choices": ["<b>bold</b>", "plain"]},
                ],
            }
        ],
    )
    case, run = start("<script>alert('record')</script>")
    html = guide(client, people.alice, case, item=item_of(run).pk)
    assert "<script>" not in html
    assert "<img" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(&#x27;record&#x27;)&lt;/script&gt;" in html  # the default, escaped
    assert "&lt;script&gt;alert(&#x27;help&#x27;)&lt;/script&gt;" in html


def test_the_panel_comes_before_the_runs_panel(client, people):
    case = make_case()
    client.force_login(people.alice)
    page = client.get(page_url(case)).content.decode()
    assert page.index('id="panel-work_guide"') < page.index('id="panel-runs"')


def test_priority_shows_in_words_beside_the_title_unless_normal_and_the_due_date_with_overdue(client, people):
    from workitems.models import Priority

    define()
    case, run = start()
    item = item_of(run)
    due = timezone.now().replace(microsecond=0) + timezone.timedelta(days=2)
    WorkItem.objects.filter(pk=item.pk).update(priority=Priority.HIGH, due_at=due)
    words = text(guide(client, people.alice, case))
    assert "High priority" in words
    assert f"Due {timezone.localtime(due):%Y-%m-%d %H:%M}" in words
    assert "Overdue" not in words
    past = timezone.now().replace(microsecond=0) - timezone.timedelta(hours=5)
    WorkItem.objects.filter(pk=item.pk).update(priority=Priority.URGENT, due_at=past)
    words = text(guide(client, people.alice, case))
    assert "Urgent" in words and "Overdue" in words
    assert f"Was due {timezone.localtime(past):%Y-%m-%d %H:%M}" in words
    WorkItem.objects.filter(pk=item.pk).update(priority=Priority.NORMAL, due_at=None)
    html = guide(client, people.alice, case)
    assert "work-item-priority" not in html and "Due " not in text(html)
    WorkItem.objects.filter(pk=item.pk).update(priority=Priority.LOW)
    assert "Low priority" in text(guide(client, people.alice, case))
