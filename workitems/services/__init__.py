"""Writes for work items: creation by the interactive step kind and who may act (`assignment`),
completion, claim/release and reassignment (`completion`), drafts and screen defaults
(`drafts`), comments and who sees an item's history (`comments`). Import from here."""

from __future__ import annotations

from .assignment import (
    InteractiveKind,
    WorkItemClosed,
    check_assignee,
    may_act,
    models_q_member,
    resolve_assignee,
)
from .comments import VIEW_PERMISSION, comment_text, may_see_item, workitem_comment
from .completion import (
    CLAIM_REQUIRED,
    ClaimRequired,
    ReassignOutcome,
    claim_needed,
    screen_flow_for,
    step_of,
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
from .schedule import may_schedule, workitem_set_schedule

__all__ = [
    "CLAIM_REQUIRED",
    "VIEW_PERMISSION",
    "ClaimRequired",
    "InteractiveKind",
    "ReassignOutcome",
    "WorkItemClosed",
    "check_assignee",
    "claim_needed",
    "comment_text",
    "may_act",
    "may_schedule",
    "may_see_item",
    "models_q_member",
    "resolve_assignee",
    "saved_view_create",
    "saved_view_delete",
    "screen_flow_for",
    "step_of",
    "workitem_claim",
    "workitem_comment",
    "workitem_complete",
    "workitem_draft_discard",
    "workitem_draft_save",
    "workitem_drafts_cleanup",
    "workitem_log",
    "workitem_reassign",
    "workitem_release",
    "workitem_screen_defaults",
    "workitem_set_schedule",
    "workitems_reassign_many",
]
