"""Writes for work items: creation by the interactive step kind and who may act (`assignment`),
completion, claim/release and reassignment (`completion`), drafts and screen defaults
(`drafts`). Import from here."""

from __future__ import annotations

from .assignment import (
    InteractiveKind,
    WorkItemClosed,
    check_assignee,
    may_act,
    models_q_member,
    resolve_assignee,
)
from .completion import (
    ReassignOutcome,
    screen_flow_for,
    workitem_claim,
    workitem_complete,
    workitem_log,
    workitem_reassign,
    workitem_release,
    workitems_reassign_many,
)
from .drafts import (
    workitem_draft_discard,
    workitem_draft_save,
    workitem_drafts_cleanup,
    workitem_screen_defaults,
)
from .saved_views import saved_view_create, saved_view_delete

__all__ = [
    "InteractiveKind",
    "ReassignOutcome",
    "WorkItemClosed",
    "check_assignee",
    "may_act",
    "models_q_member",
    "resolve_assignee",
    "saved_view_create",
    "saved_view_delete",
    "screen_flow_for",
    "workitem_claim",
    "workitem_complete",
    "workitem_draft_discard",
    "workitem_draft_save",
    "workitem_drafts_cleanup",
    "workitem_log",
    "workitem_reassign",
    "workitem_release",
    "workitem_screen_defaults",
    "workitems_reassign_many",
]
