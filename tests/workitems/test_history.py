"""Task history (workitems/history.py): who completed which step with which answers, read as
people read them (the screen fields' labels, values formatted by type, never the stored JSON),
reassignments, claims, releases and comments in time order; who sees which items on the record
page; and a fixed number of queries however many items, events and comments there are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orchestration.services import run_launch
from tests.factories import RECORD_PERMS, grant, load, make_case, orchestration, screen_flow
from workitems.history import record_task_history, workitem_history
from workitems.models import WorkItem, WorkItemComment, WorkItemStatus
from workitems.services import (
    workitem_claim,
    workitem_comment,
    workitem_complete,
    workitem_reassign,
    workitem_release,
)

from .guide_support import text

pytestmark = pytest.mark.django_db

EVERY_TYPE = [
    {"name": "summary", "type": "text", "label": "Summary"},
    {"name": "notes", "type": "long_text", "label": "Notes"},
    {"name": "parts", "type": "number", "label": "Parts replaced"},
    {"name": "cost", "type": "decimal", "label": "Cost"},
    {"name": "visit", "type": "date", "label": "Visit day"},
    {"name": "booked", "type": "datetime", "label": "Booked for"},
    {"name": "approved", "type": "boolean", "label": "Approved"},
    {"name": "insured", "type": "boolean", "label": "Insured"},
    {"name": "kind", "type": "choice", "label": "Kind of work", "choices": ["repair", "replace"]},
    {"name": "rooms", "type": "multi_choice", "label": "Rooms", "choices": ["kitchen", "bath", "hall"]},
    {"name": "contact", "type": "email", "label": "Contact email"},
    {"name": "expert", "type": "user", "label": "Expert"},
    {"name": "extra", "type": "text"},  # no label: its name is shown
]


@pytest.fixture
def people(personas):  # type: ignore[no-untyped-def]
    for user, (first, last) in ((personas.alice, ("Alice", "Archer")), (personas.bob, ("Bob", "Baker"))):
        user.first_name, user.last_name = first, last
        user.save()
        grant(user, *RECORD_PERMS)
    grant(personas.charlie, *RECORD_PERMS)
    return personas


def define_inspection(assignee: dict[str, str] | None = None) -> None:
    load(
        screen_flow("inspection", screens=[{"key": "all", "fields": EVERY_TYPE}]),
        orchestration(
            "inspect",
            stages=[
                {
                    "key": "visit",
                    "label": "Visit",
                    "steps": [
                        {
                            "key": "inspect",
                            "label": "Inspect the damage",
                            "kind": "interactive",
                            "flow": "inspection",
                            "assignee": assignee or {"user": "alice"},
                        }
                    ],
                }
            ],
        ),
    )


def answers_for(bob_pk: int) -> dict[str, object]:
    return {
        "summary": "Water under the sink",
        "notes": "Pipe cracked.\nReplaced the seal.",
        "parts": "3",
        "cost": "120.50",
        "visit": "2026-03-04",
        "booked": "2026-03-05T09:30",
        "approved": "on",
        "insured": "",
        "kind": "replace",
        "rooms": ["kitchen", "hall"],
        "contact": "owner@example.com",
        "expert": str(bob_pk),
        "extra": "",
    }


def open_item(case) -> WorkItem:  # type: ignore[no-untyped-def]
    run = run_launch(orchestration="inspect", record=case)
    return WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)


def test_the_answers_read_with_labels_and_values_formatted_for_people(people):
    define_inspection()
    case = make_case("Leaking sink")
    item = open_item(case)
    workitem_complete(item=item, user=people.alice, data=answers_for(people.bob.pk))
    [h], more = record_task_history(record=case, viewer=people.alice)
    assert not more
    assert [(a.label, a.text) for a in h.answers] == [
        ("Summary", "Water under the sink"),
        ("Notes", "Pipe cracked.\nReplaced the seal."),
        ("Parts replaced", "3"),
        ("Cost", "120.50"),
        ("Visit day", "2026-03-04"),
        ("Booked for", "2026-03-05 09:30"),
        ("Approved", "Yes"),
        ("Insured", "No"),
        ("Kind of work", "replace"),
        ("Rooms", "kitchen, hall"),
        ("Contact email", "owner@example.com"),
        ("Expert", "Bob Baker"),
        ("extra", "—"),
    ]
    assert [a.long for a in h.answers].count(True) == 1  # the long text keeps its line breaks
    assert h.completed_by == "Alice Archer"
    assert [e.kind for e in h.entries] == ["assigned", "completed"]
    assert h.entries[0].text == "Assigned to Alice Archer"


def test_a_person_field_holding_a_username_is_shown_by_name_too(people):
    define_inspection()
    case = make_case()
    item = open_item(case)
    workitem_complete(item=item, user=people.alice, data={**answers_for(people.bob.pk), "expert": "bob"})
    [h], _ = record_task_history(record=case, viewer=people.alice)
    assert dict((a.label, a.text) for a in h.answers)["Expert"] == "Bob Baker"


def test_the_record_page_shows_labels_and_readable_values_never_json(people):
    define_inspection()
    case = make_case("Leaking sink")
    item = open_item(case)
    workitem_complete(item=item, user=people.alice, data=answers_for(people.bob.pk))
    client = Client()
    client.force_login(people.alice)
    html = client.get(f"/records/case/{case.pk}/").content.decode()
    start = html.index('id="panel-task_history"')
    panel = html[start : html.index("</section>", start)]
    words = text(panel)
    assert "Task history" in words
    assert "Inspect the damage" in words
    assert "Alice Archer completed it" in words
    for label, value in [("Rooms", "kitchen, hall"), ("Approved", "Yes"), ("Expert", "Bob Baker")]:
        assert f"{label} {value}" in words
    assert "Pipe cracked.<br>Replaced the seal." in panel
    assert "[" not in words and "true" not in words and "2026-03-05T09:30" not in panel


def test_reassignments_claims_releases_and_comments_in_time_order(people):
    define_inspection()
    case = make_case()
    item = open_item(case)
    workitem_reassign(item=item, actor=people.charlie, group=people.engineering, reason="Alice is away")
    item.refresh_from_db()
    workitem_claim(item=item, user=people.alice)
    workitem_comment(item=item, author=people.alice, body="Looking at it")
    workitem_release(item=item, user=people.alice)
    item.refresh_from_db()
    workitem_claim(item=item, user=people.alice)
    item.refresh_from_db()
    workitem_complete(item=item, user=people.alice, data=answers_for(people.bob.pk))
    grant(people.charlie, "workitems.view_workitem")
    [h], _ = record_task_history(record=case, viewer=people.charlie)
    assert [(e.kind, e.who, e.text, e.detail) for e in h.entries[:-1]] == [
        ("assigned", "", "Assigned to Alice Archer", ""),
        ("reassigned", "charlie", "reassigned it from Alice Archer to group engineering", "Alice is away"),
        ("claimed", "Alice Archer", "claimed it", ""),
        ("commented", "Alice Archer", "commented", "Looking at it"),
        ("released", "Alice Archer", "released it to the team", ""),
        ("claimed", "Alice Archer", "claimed it", ""),
    ]
    assert h.entries[-1].kind == "completed"
    times = [e.at for e in h.entries]
    assert times == sorted(times)
    # The Work Guide lists comments on their own, the rest as History.
    single = workitem_history(item=WorkItem.objects.get(pk=item.pk))
    assert [e.detail for e in single.comments] == ["Looking at it"]
    assert "commented" not in [e.kind for e in single.events]


def test_a_new_due_date_or_priority_reads_as_a_sentence_with_its_reason(people):
    import datetime as dt

    from django.utils import timezone

    from workitems.models import Priority
    from workitems.services import workitem_set_schedule

    define_inspection()
    case = make_case()
    item = open_item(case)
    due = timezone.now().replace(microsecond=0) + dt.timedelta(days=3)
    workitem_set_schedule(
        item=item, actor=people.charlie, due_at=due, priority=Priority.HIGH, reason="Storm week"
    )
    [entry] = [e for e in workitem_history(item=item).events if e.kind == "rescheduled"]
    assert entry.who == "charlie"
    assert (
        entry.text
        == f"changed the due date from none to {due:%Y-%m-%d %H:%M} and the priority from Normal to High"
    )
    assert entry.detail == "Storm week"


def test_a_comment_deleted_since_is_left_out(people):
    define_inspection()
    case = make_case()
    item = open_item(case)
    workitem_comment(item=item, author=people.alice, body="Rude remark")
    workitem_comment(item=item, author=people.alice, body="Kept")
    WorkItemComment.objects.filter(body="Rude remark").delete()
    assert [e.detail for e in workitem_history(item=item).comments] == ["Kept"]


def test_who_sees_which_completed_items_on_the_record(people):
    define_inspection(assignee={"group": "support"})
    case = make_case()
    item = open_item(case)
    workitem_complete(item=item, user=people.bob, data=answers_for(people.bob.pk))
    assert len(record_task_history(record=case, viewer=people.bob)[0]) == 1  # his group's
    assert record_task_history(record=case, viewer=people.alice)[0] == []  # not hers
    assert record_task_history(record=case, viewer=people.charlie)[0] == []  # no permission
    grant(people.charlie, "workitems.view_workitem")
    assert len(record_task_history(record=case, viewer=people.charlie)[0]) == 1  # a manager
    # Bob left the group: he still sees what he completed.
    people.bob.groups.remove(people.support)
    assert len(record_task_history(record=case, viewer=people.bob)[0]) == 1


def test_open_and_canceled_items_are_not_in_the_record_history(people):
    define_inspection()
    case = make_case()
    open_item(case)
    assert record_task_history(record=case, viewer=people.alice) == ([], False)


def _busy_record(case, people, n: int) -> None:  # type: ignore[no-untyped-def]
    """`n` completed items on `case`, each reassigned, claimed, commented twice."""
    for i in range(n):
        item = open_item(case)
        workitem_reassign(item=item, actor=people.charlie, group=people.engineering, reason=f"r{i}")
        item.refresh_from_db()
        workitem_claim(item=item, user=people.alice)
        workitem_comment(item=item, author=people.alice, body=f"first {i}")
        workitem_comment(item=item, author=people.charlie, body=f"second {i}")
        item.refresh_from_db()
        workitem_complete(item=item, user=people.alice, data=answers_for(people.bob.pk))


def _count(case, viewer) -> tuple[int, list]:  # type: ignore[no-untyped-def]
    # The rows come formatted (answers, sentences): nothing is read later, in the template.
    with CaptureQueriesContext(connection) as ctx:
        rows, _ = record_task_history(record=case, viewer=viewer)
    return len(ctx.captured_queries), rows


@pytest.mark.parametrize("viewer", ["alice", "charlie"])
def test_the_record_history_costs_three_queries_for_one_item_or_five(people, viewer):
    grant(people.charlie, "workitems.view_workitem")
    define_inspection()
    case = make_case()
    _busy_record(case, people, 1)
    who = getattr(people, viewer)
    record_task_history(record=case, viewer=who)  # the flow document parsed once, as a server has
    one, rows = _count(case, who)
    assert len(rows) == 1
    _busy_record(case, people, 4)
    five, rows = _count(case, who)
    assert len(rows) == 5
    assert sum(len(h.comments) for h in rows) == 10
    # The items, their events with the comments' text, the people named in person fields.
    assert one == five == 3


def test_one_items_history_costs_one_query_and_one_more_for_person_fields(people):
    define_inspection()
    case = make_case()
    item = open_item(case)
    for i in range(5):
        workitem_comment(item=item, author=people.alice, body=f"note {i}")
    # As the Work Guide loads an item: with its step, flow version, assignee and completer.
    related = ("step_run__flow_version", "completed_by", "assignee_user", "assignee_group", "assignee_queue")
    loaded = WorkItem.objects.select_related(*related).get(pk=item.pk)
    with CaptureQueriesContext(connection) as ctx:
        h = workitem_history(item=loaded)
    assert len(h.comments) == 5 and len(ctx.captured_queries) == 1
    workitem_complete(item=item, user=people.alice, data=answers_for(people.bob.pk))
    loaded = WorkItem.objects.select_related(*related).get(pk=item.pk)
    workitem_history(item=loaded)
    with CaptureQueriesContext(connection) as ctx:
        h = workitem_history(item=loaded)
    assert len(h.answers) == len(EVERY_TYPE) and len(ctx.captured_queries) == 2


def test_the_users_own_item_in_the_guide_shows_history_after_completion(people):
    define_inspection()
    case = make_case("Leaking sink")
    item = open_item(case)
    workitem_reassign(item=item, actor=people.charlie, user=people.bob, reason="Bob knows pipes")
    item.refresh_from_db()
    workitem_complete(item=item, user=people.bob, data=answers_for(people.alice.pk))
    client = Client()
    client.force_login(people.bob)
    html = client.get(f"/records/case/{case.pk}/?item={item.pk}").content.decode()
    start = html.index('id="panel-work_guide"')
    guide = text(html[start : html.index('id="panel-runs"')])
    assert "This item was already completed by you" in guide
    assert "History" in guide
    assert "charlie reassigned it from Alice Archer to Bob Baker Reason: Bob knows pipes" in guide
    assert "Bob Baker completed it" in guide
    assert "Expert Alice Archer" in guide
