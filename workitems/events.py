"""The events work items write on their run's history (`workitem_log`), with what each means;
registered with orchestration/events.py when the app loads."""

from __future__ import annotations

EVENTS = {
    "workitems.item.reassigned": "a manager moved the item to another user, group or queue (old, new, why)",
    "workitems.item.claimed": "someone in the item's group or queue took it",
    "workitems.item.released": "the person holding the item gave it back to its group or queue",
    "workitems.item.commented": "someone wrote a comment on the item",
    "workitems.item.escalated": (
        "an SLA rule fired: the rule, which occurrence, and what it did (emails, reassignment, priority)"
    ),
    "workitems.item.rescheduled": "a manager changed the item's due date or priority (old, new, reason)",
}
