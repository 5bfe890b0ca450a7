"""What happened to work items, as people read it: who was given the work, who claimed, released
or moved it and why, who commented, and who completed it with which answers (the screen fields'
labels, the values formatted for people, never the stored JSON).

Selectors for the Work Guide (one item, `workitem_history`) and the record page's Task history
panel (every completed item of a record, `record_task_history`). Each costs a fixed number of
queries whatever the number of items, events and comments (asserted in
tests/workitems/test_history.py): the items, then their events with each comment's text in the
same statement, then — only when a completed screen has a person field — those people's names.
The people who acted come with the events (one join), the assignees as names the events kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Case, OuterRef, Q, Subquery, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime

from orchestration.definitions import DataType, ScreenField, ScreenFlow
from orchestration.models import RunEvent
from orchestration.people import person_name

from .models import WorkItem, WorkItemComment, WorkItemStatus
from .selectors import actionable_q
from .services import VIEW_PERMISSION, screen_flow_for

# The events work item services write (services/completion.py, services/comments.py).
CLAIMED = "workitems.item.claimed"
RELEASED = "workitems.item.released"
REASSIGNED = "workitems.item.reassigned"
COMMENTED = "workitems.item.commented"
RESCHEDULED = "workitems.item.rescheduled"  # services/schedule.py: due date and priority
ITEM_EVENTS = (CLAIMED, RELEASED, REASSIGNED, COMMENTED, RESCHEDULED)

# The record page lists this many completed items, the latest first.
RECORD_LIMIT = 50
NOTHING = "—"


@dataclass(frozen=True)
class Answer:
    """One screen field of a completed item: its label and the value as a person reads it."""

    label: str
    text: str
    long: bool = False  # long text: shown with its line breaks (`linebreaksbr`, which escapes)


@dataclass(frozen=True)
class Entry:
    """One thing that happened to an item. `who` is a person's name ("" for the system);
    `text` says what they did ("reassigned it from Dana to group support"); `detail` is a
    comment's body or a reassignment's reason."""

    kind: str  # assigned, claimed, released, reassigned, rescheduled, commented, completed, canceled
    at: dt.datetime
    who: str
    text: str
    detail: str = ""
    answers: tuple[Answer, ...] = ()

    @property
    def is_comment(self) -> bool:
        return self.kind == "commented"


@dataclass
class ItemHistory:
    item: WorkItem
    entries: list[Entry] = field(default_factory=list)  # in time order, comments included
    answers: list[Answer] = field(default_factory=list)  # what it was completed with

    @property
    def comments(self) -> list[Entry]:
        return [e for e in self.entries if e.is_comment]

    @property
    def events(self) -> list[Entry]:
        """Everything but the comments (the Work Guide lists those on their own)."""
        return [e for e in self.entries if not e.is_comment]

    @property
    def changed_hands(self) -> bool:
        """Whether anything happened beyond the item being assigned (worth a History list on an
        open item)."""
        return any(e.kind != "assigned" for e in self.events)

    @property
    def completed_by(self) -> str:
        return person_name(self.item.completed_by, default="the system")


# --- formatting -------------------------------------------------------------------------------


def answer_text(f: ScreenField, value: Any, people: dict[str, str]) -> str:
    """A stored screen value as a person reads it: Yes/No, choices as shown in the form, dates
    in the project's format, people by name, several choices joined."""
    if f.type == DataType.boolean:
        return "Yes" if value is True else "No"
    if value is None or value == "" or value == []:
        return NOTHING
    if f.type == DataType.multi_choice:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if f.type == DataType.date:
        day = parse_date(str(value))
        return formats.date_format(day, "DATE_FORMAT") if day else str(value)
    if f.type == DataType.datetime:
        moment = parse_datetime(str(value))
        if moment is None:
            return str(value)
        if timezone.is_aware(moment):
            moment = timezone.localtime(moment)
        return formats.date_format(moment, "DATETIME_FORMAT")
    if f.type == DataType.user:
        return people.get(str(value), f"user #{value}" if str(value).isdigit() else str(value))
    return str(value)


def _people_named(values: Iterable[Any]) -> dict[str, str]:
    """{id or username: name} of the people in person fields' values (stored as a user id, or
    a username): one query, none when there are none."""
    wanted = {str(v) for v in values if isinstance(v, int | str) and str(v)}
    if not wanted:
        return {}
    User = get_user_model()
    ids = {int(v) for v in wanted if v.isdigit() and len(v) < 19}
    usernames = wanted - {str(i) for i in ids}
    found = User._default_manager.filter(Q(pk__in=ids) | Q(**{f"{User.USERNAME_FIELD}__in": usernames}))
    names: dict[str, str] = {}
    for user in found:
        names[str(user.pk)] = names[str(user.get_username())] = person_name(user)
    return names


def _person_values(flow: ScreenFlow, outputs: dict[str, Any]) -> list[Any]:
    return [outputs.get(f.name) for f in flow.fields() if f.type == DataType.user]


def _answers(flow: ScreenFlow, outputs: dict[str, Any], people: dict[str, str]) -> list[Answer]:
    return [
        Answer(f.label or f.name, answer_text(f, outputs.get(f.name), people), f.type == DataType.long_text)
        for f in flow.fields()
    ]


# --- events -----------------------------------------------------------------------------------


def _events(run_ids: set[int]) -> list[RunEvent]:
    """The work item events of these runs, oldest first, with who acted and each comment's text:
    one statement (the text is a subquery on the comment the event names)."""
    comment_id = Case(
        When(name=COMMENTED, then=Cast(KT("payload__comment"), models.BigIntegerField())),
        default=None,
        output_field=models.BigIntegerField(),
    )
    body = WorkItemComment.objects.filter(pk=OuterRef("comment_id")).values("body")[:1]
    return list(
        RunEvent.objects.filter(run_id__in=run_ids, name__in=ITEM_EVENTS)
        .select_related("actor")
        .annotate(comment_id=comment_id, comment_body=Subquery(body))
        .order_by("created_at", "id")
    )


def _due_text(iso: Any) -> str:
    moment = parse_datetime(str(iso)) if iso else None
    if moment is None:
        return "none"
    return formats.date_format(
        timezone.localtime(moment) if timezone.is_aware(moment) else moment, "DATETIME_FORMAT"
    )


def _rescheduled(payload: dict[str, Any]) -> str:
    """ "changed the due date from 2026-03-04 09:00 to none and the priority from Normal to High"."""
    old, new = payload.get("old") or {}, payload.get("new") or {}
    changes = []
    if old.get("due_at") != new.get("due_at"):
        changes.append(f"the due date from {_due_text(old.get('due_at'))} to {_due_text(new.get('due_at'))}")
    if old.get("priority") != new.get("priority"):
        changes.append(f"the priority from {old.get('priority')} to {new.get('priority')}")
    return "changed " + (" and ".join(changes) or "the schedule")


def _entries(item: WorkItem, events: Sequence[RunEvent], answers: list[Answer]) -> list[Entry]:
    reassigned = [e for e in events if e.name == REASSIGNED]
    # Who the item went to first: the first reassignment says whom it moved from.
    first = str(reassigned[0].payload.get("old", "")) if reassigned else item.assignee_label
    entries = [Entry("assigned", item.created_at, "", f"Assigned to {first}")]
    for e in events:
        who = person_name(e.actor, default="someone")
        if e.name == CLAIMED:
            entries.append(Entry("claimed", e.created_at, who, "claimed it"))
        elif e.name == RELEASED:
            entries.append(Entry("released", e.created_at, who, "released it to the team"))
        elif e.name == REASSIGNED:
            old, new = e.payload.get("old", ""), e.payload.get("new", "")
            reason = str(e.payload.get("reason", "") or "")
            entries.append(
                Entry("reassigned", e.created_at, who, f"reassigned it from {old} to {new}", reason)
            )
        elif e.name == RESCHEDULED:
            reason = str(e.payload.get("reason", "") or "")
            entries.append(Entry("rescheduled", e.created_at, who, _rescheduled(e.payload), reason))
        elif e.name == COMMENTED:
            body = getattr(e, "comment_body", None)
            if body is not None:  # a comment deleted since (in the admin) is not shown
                entries.append(Entry("commented", e.created_at, who, "commented", body))
    if item.status == WorkItemStatus.COMPLETED and item.completed_at is not None:
        who = person_name(item.completed_by, default="the system")
        entries.append(Entry("completed", item.completed_at, who, "completed it", answers=tuple(answers)))
    elif item.status == WorkItemStatus.CANCELED and item.completed_at is not None:
        entries.append(
            Entry(
                "canceled",
                item.completed_at,
                "",
                "Canceled: the step it belonged to ended or the run was stopped",
            )
        )
    # The events came oldest first, all after the item was created; the item's end is last.
    return entries


def _histories(items: Sequence[WorkItem]) -> list[ItemHistory]:
    by_item: dict[int, list[RunEvent]] = {i.pk: [] for i in items}
    if items:
        for event in _events({i.run_id for i in items}):
            found = by_item.get(event.payload.get("work_item"))  # type: ignore[arg-type]
            if found is not None:
                found.append(event)
    completed = [(i, screen_flow_for(i)) for i in items if i.status == WorkItemStatus.COMPLETED]
    people = _people_named(v for i, flow in completed for v in _person_values(flow, i.outputs))
    answers = {i.pk: _answers(flow, i.outputs, people) for i, flow in completed}
    return [
        ItemHistory(
            item=i, entries=_entries(i, by_item[i.pk], answers.get(i.pk, [])), answers=answers.get(i.pk, [])
        )
        for i in items
    ]


# --- the selectors ----------------------------------------------------------------------------


def workitem_history(*, item: WorkItem) -> ItemHistory:
    """One item's history for the Work Guide. `item` comes with its step run (and flow version),
    who completed it and its assignee, as the guide loads it: one query for its events, and one
    more only when it was completed with a person field."""
    return _histories([item])[0]


def sees_every_item(user: Any) -> bool:
    """Managers (`workitems.view_workitem`) see the history of every item on a record."""
    return bool(user.has_perm(VIEW_PERMISSION))


def record_task_history(
    *, record: models.Model, viewer: Any, limit: int = RECORD_LIMIT
) -> tuple[list[ItemHistory], bool]:
    """The completed items of `record`'s runs that `viewer` may see (managers: all; anyone else:
    those assigned to them, their groups or queues, or completed by them), the latest first, at
    most `limit`; and whether there are more. Two queries, three with person fields."""
    ct = ContentType.objects.get_for_model(record)
    qs = WorkItem.objects.filter(record_type=ct, record_id=record.pk, status=WorkItemStatus.COMPLETED)
    if not sees_every_item(viewer):
        qs = qs.filter(actionable_q(viewer) | Q(completed_by=viewer))
    rows = list(
        qs.select_related(
            "completed_by",
            "assignee_user",
            "assignee_group",
            "assignee_queue",
            "run__orchestration",
            "step_run__flow_version",
        )
        # What the rows never show: the run's and step's data, the flow's document (parsed
        # definitions are cached by version id and checksum, orchestration/documents.py).
        .defer(
            "run__variables",
            "run__inputs",
            "run__step_outputs",
            "step_run__inputs",
            "step_run__outputs",
            "step_run__flow_version__document",
        )
        .order_by("-completed_at", "-id")[: limit + 1]
    )
    return _histories(rows[:limit]), len(rows) > limit
