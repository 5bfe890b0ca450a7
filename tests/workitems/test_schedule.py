"""Managers change when an open item is due and how urgent it is (workitem_set_schedule and
/work-items/<id>/schedule/): an event on the run says who changed what, from what, and why;
anyone else is refused and nothing changes."""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from orchestration.models import RunEvent
from tests.factories import make_case
from workitems.models import Priority, WorkItem
from workitems.services import WorkItemClosed, workitem_complete, workitem_set_schedule

from .mywork_support import interactive, item, launch, load_process

pytestmark = pytest.mark.django_db

EVENT = "workitems.item.rescheduled"
LATER = timezone.now().replace(microsecond=0, second=0) + dt.timedelta(days=30)


@pytest.fixture
def open_item(personas) -> WorkItem:  # type: ignore[no-untyped-def]
    load_process(
        "proc", "Case review", interactive("a", "Check the facts", {"user": "alice"}, due_in_hours=48)
    )
    return item(launch("proc", make_case("Printer on fire")), "a")


def url(it: WorkItem) -> str:
    return f"/work-items/{it.pk}/schedule/"


def local(value: dt.datetime) -> str:
    """What a datetime-local input sends for `value`, in the site's time zone."""
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


def events(it: WorkItem) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run_id=it.run_id, name=EVENT))


def state(it: WorkItem) -> tuple[dt.datetime | None, int]:
    it = WorkItem.objects.get(pk=it.pk)
    return it.due_at, it.priority


# --- the service --------------------------------------------------------------------------------


def test_a_manager_sets_due_date_and_priority_and_an_event_says_it(personas, open_item):
    old_due = open_item.due_at
    assert old_due is not None
    changed = workitem_set_schedule(
        item=open_item,
        actor=personas.charlie,
        due_at=LATER,
        priority=Priority.URGENT,
        reason="  customer waits  ",
    )
    assert state(open_item) == (LATER, Priority.URGENT) == (changed.due_at, changed.priority)
    [event] = events(open_item)
    assert event.actor_id == personas.charlie.pk
    assert event.step == "a"
    assert event.payload == {
        "work_item": open_item.pk,
        "old": {"due_at": old_due.isoformat(), "priority": "Normal"},
        "new": {"due_at": LATER.isoformat(), "priority": "Urgent"},
        "reason": "customer waits",
    }


def test_no_due_date_and_nothing_changed_writes_no_event(personas, open_item):
    workitem_set_schedule(item=open_item, actor=personas.charlie, due_at=None, priority=Priority.LOW)
    assert state(open_item) == (None, Priority.LOW)
    assert events(open_item)[0].payload["new"] == {"due_at": None, "priority": "Low"}
    workitem_set_schedule(item=open_item, actor=personas.charlie, due_at=None, priority=Priority.LOW)
    assert len(events(open_item)) == 1


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_who_may_not_reassign_may_not_reschedule(personas, open_item, who):
    """alice is the assignee and bob an outsider: neither holds workitems.reassign_workitem."""
    before = state(open_item)
    with pytest.raises(PermissionDenied):
        workitem_set_schedule(
            item=open_item, actor=getattr(personas, who), due_at=LATER, priority=Priority.URGENT
        )
    assert state(open_item) == before
    assert events(open_item) == []


def test_a_superuser_may(personas, open_item):
    workitem_set_schedule(item=open_item, actor=personas.admin, due_at=LATER, priority=Priority.HIGH)
    assert state(open_item) == (LATER, Priority.HIGH)


def test_a_closed_item_is_refused(personas, open_item):
    workitem_complete(item=open_item, user=personas.alice, data={})
    before = state(open_item)
    with pytest.raises(WorkItemClosed, match="already completed by alice"):
        workitem_set_schedule(item=open_item, actor=personas.charlie, due_at=LATER, priority=Priority.URGENT)
    assert state(open_item) == before
    assert events(open_item) == []


@pytest.mark.parametrize(
    ("due_at", "priority", "field", "says"),
    [
        (LATER, 9, "priority", "Choose one of the listed priorities."),
        (LATER.replace(tzinfo=None), 2, "due_at", "A due date needs its time zone."),
        (timezone.now() - dt.timedelta(hours=1), 2, "due_at", "The new due date is in the past"),
    ],
)
def test_bad_values_are_refused_by_field(personas, open_item, due_at, priority, field, says):
    before = state(open_item)
    with pytest.raises(ValidationError) as exc:
        workitem_set_schedule(item=open_item, actor=personas.charlie, due_at=due_at, priority=priority)
    assert says in " ".join(exc.value.message_dict[field])
    assert state(open_item) == before
    assert events(open_item) == []


def test_an_overdue_item_keeps_its_past_due_date_while_its_priority_changes(personas, open_item):
    past = timezone.now() - dt.timedelta(days=2)
    WorkItem.objects.filter(pk=open_item.pk).update(due_at=past)
    open_item.refresh_from_db()
    workitem_set_schedule(item=open_item, actor=personas.charlie, due_at=past, priority=Priority.URGENT)
    assert state(open_item) == (past, Priority.URGENT)


# --- the page -----------------------------------------------------------------------------------


def test_the_page_shows_the_item_and_its_form_to_a_manager(client, personas, open_item):
    WorkItem.objects.filter(pk=open_item.pk).update(priority=Priority.HIGH)
    client.force_login(personas.charlie)
    response = client.get(url(open_item))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Due date and priority: Check the facts · Flow Orchestration</title>" in html
    assert "High priority, due" in html
    assert f'value="{local(open_item.due_at)}"' in html  # type: ignore[arg-type]
    assert '<option value="3" selected>High</option>' in html
    # The most urgent first.
    assert re.findall(r'<option value="(\d)"', html) == ["4", "3", "2", "1"]
    assert f'action="/work-items/{open_item.pk}/schedule/"' in html


def test_a_manager_saves_and_goes_back_to_next(client, personas, open_item):
    client.force_login(personas.charlie)
    response = client.post(
        url(open_item),
        {"due_at": local(LATER), "priority": "4", "reason": "VIP", "next": "/work-items/?view=overdue"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/work-items/?view=overdue"
    assert state(open_item) == (LATER, Priority.URGENT)
    assert events(open_item)[0].payload["reason"] == "VIP"
    html = client.get(url(open_item)).content.decode()
    assert f"“Check the facts” is now urgent priority, due {local(LATER).replace('T', ' ')}." in html


def test_the_due_date_is_read_in_the_sites_time_zone(client, personas, open_item, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    client.force_login(personas.charlie)
    client.post(url(open_item), {"due_at": "2031-01-15T09:30", "priority": "2"})
    assert state(open_item)[0] == dt.datetime(2031, 1, 15, 8, 30, tzinfo=UTC)
    html = client.get(url(open_item)).content.decode()
    assert 'value="2031-01-15T09:30"' in html
    assert "(Europe/Berlin)" in html


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", ""]
)
def test_a_next_off_the_site_goes_back_to_the_page_itself(client, personas, open_item, next_url):
    client.force_login(personas.charlie)
    response = client.post(url(open_item), {"due_at": "", "priority": "2", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == url(open_item)


def test_an_empty_due_date_removes_it(client, personas, open_item):
    client.force_login(personas.charlie)
    client.post(url(open_item), {"due_at": "", "priority": "2"})
    assert state(open_item) == (None, Priority.NORMAL)
    assert "no due date" in client.get(url(open_item)).content.decode()


def test_nothing_changed_says_so(client, personas, open_item):
    client.force_login(personas.charlie)
    due = local(open_item.due_at)  # type: ignore[arg-type]
    WorkItem.objects.filter(pk=open_item.pk).update(due_at=dt.datetime.fromisoformat(due).replace(tzinfo=UTC))
    html = client.post(url(open_item), {"due_at": due, "priority": "2"}, follow=True).content.decode()
    assert "“Check the facts”: nothing changed." in html
    assert events(open_item) == []


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        (
            {"due_at": "2031-13-45T99:99"},
            "due",
            "Enter the due date as a date and a time, e.g. 2026-12-31 17:00.",
        ),
        ({"due_at": "next tuesday"}, "due", "Enter the due date as a date and a time"),
        ({"due_at": "2001-01-01T10:00"}, "due", "The new due date is in the past: choose a later one."),
        ({"priority": "9"}, "priority", "Choose one of the listed priorities."),
        ({"reason": "r" * 501}, "reason", "Ensure this value has at most 500 characters (it has 501)."),
    ],
)
def test_bad_input_shows_the_form_again_with_the_message_and_what_was_typed(
    client, personas, open_item, data, field, says
):
    client.force_login(personas.charlie)
    typed = {"due_at": local(LATER), "priority": "3", "reason": "because", **data}
    before = state(open_item)
    response = client.post(url(open_item), typed)
    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(rf'id="schedule-{open_item.pk}-{field}-error">([^<]*)</div>', html)
    assert error and says in error.group(1).replace("&#x27;", "'")
    assert f'value="{typed["due_at"]}"' in html
    assert f'value="{typed["reason"]}"' in html
    if typed["priority"] == "3":
        assert '<option value="3" selected>High</option>' in html
    assert state(open_item) == before
    assert events(open_item) == []


def test_a_closed_item_is_refused_on_the_page(client, personas, open_item):
    workitem_complete(item=open_item, user=personas.alice, data={})
    before = state(open_item)
    client.force_login(personas.charlie)
    html = client.post(url(open_item), {"due_at": local(LATER), "priority": "4"}).content.decode()
    assert "This item was already completed by alice" in html
    assert "This item is completed: its due date and priority no longer change." in html
    assert state(open_item) == before
    assert events(open_item) == []


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_anyone_but_a_manager_gets_403_and_nothing_changes(client, personas, open_item, who):
    client.force_login(getattr(personas, who))
    before = state(open_item)
    assert client.get(url(open_item)).status_code == 403
    assert client.post(url(open_item), {"due_at": local(LATER), "priority": "4"}).status_code == 403
    assert state(open_item) == before
    assert events(open_item) == []
    # Refused before the item is read: an id that does not exist gets the same answer.
    assert client.get(f"/work-items/{open_item.pk + 1000}/schedule/").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, open_item):
    response = client.get(url(open_item))
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_a_missing_item_is_a_404_for_a_manager(client, personas, open_item):
    client.force_login(personas.charlie)
    assert client.get(f"/work-items/{open_item.pk + 1000}/schedule/").status_code == 404


def test_htmx_gets_the_form_alone_and_a_client_redirect_once_saved(client, personas, open_item):
    client.force_login(personas.charlie)
    htmx = {"HX-Request": "true"}
    bad = client.post(url(open_item), {"due_at": "soon", "priority": "2"}, headers=htmx)
    assert bad.status_code == 200
    html = bad.content.decode()
    assert html.lstrip().startswith("<form") and "<html" not in html
    assert 'hx-target="this" hx-swap="outerHTML"' in html
    ok = client.post(url(open_item), {"due_at": "", "priority": "1", "next": "/work-items/"}, headers=htmx)
    assert ok.status_code == 200
    assert ok["HX-Redirect"] == "/work-items/"
    assert state(open_item) == (None, Priority.LOW)
