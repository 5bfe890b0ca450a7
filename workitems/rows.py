"""One work item as a row of My Work and of the Work Items page: the same fields, drawn the
same way (who it is for, who holds it, how long it has waited, whether it is overdue)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils.http import urlencode
from django.utils.timesince import timesince

from .models import WorkItem, WorkItemStatus

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class WorkItemRow:
    item: WorkItem
    url: str  # the record page with the item opened; "" when the run has no record page
    record_name: str
    record_type_label: str
    orchestration_label: str
    stage_label: str
    assignee: str  # "you" or "bob", "group support", "queue Triage"
    held_by: str  # "" when nobody holds it, "you" or a username
    delegated_from: str  # whom it was for, when it went to their delegate (out of office); or ""
    age: str  # "3 days": how long the item has waited; "" for under a minute
    overdue: bool
    highlighted: bool = False  # My Work: the item a link pointed at (?item=)
    completed_by: str = ""  # the Work Items page lists closed items too
    # The outbox rows of the item's current assignment (one per recipient), on the Work Items page.
    emails: list[Any] = field(default_factory=list)


def item_link(item: WorkItem, record_type_name: str) -> str:
    if not (record_type_name and item.record_id):
        return ""
    path = reverse("records:detail", args=[record_type_name, item.record_id])
    # The anchor scrolls the record page to the item in the Work Guide (on a phone, below the fields).
    return f"{path}?{urlencode({'item': item.pk})}#work-item-{item.pk}"


def work_item_row(
    item: WorkItem,
    *,
    now: datetime,
    people: Mapping[int, str],
    group_name: str,
    queue_label: str,
    record_type_name: str,
    record_type_label: str,
    record_name: str,
    orchestration_label: str,
    stage_label: str,
    **extra: Any,
) -> WorkItemRow:
    """The row of `item`. `people` names the users it mentions by id (the viewer as "you" on My
    Work); the group's name or the queue's label is the assignee's when it is not a person."""
    if item.assignee_user_id is not None:
        assignee = people.get(item.assignee_user_id, "")
    elif item.assignee_group_id is not None:
        assignee = f"group {group_name}"
    else:
        assignee = f"queue {queue_label}"
    return WorkItemRow(
        item=item,
        url=item_link(item, record_type_name),
        record_name=record_name or "",
        record_type_label=record_type_label or "",
        orchestration_label=orchestration_label,
        stage_label=stage_label,
        assignee=assignee,
        held_by=people.get(item.claimed_by_id, "") if item.claimed_by_id is not None else "",
        delegated_from=people.get(item.delegated_from_id, "") if item.delegated_from_id is not None else "",
        age=timesince(item.created_at, now, depth=1) if now - item.created_at >= MINUTE else "",
        overdue=bool(item.status == WorkItemStatus.ASSIGNED and item.due_at and item.due_at < now),
        **extra,
    )
