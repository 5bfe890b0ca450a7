"""Comments on work items: notes that the item's people and managers leave for each other, shown
with the item's history in the Work Guide and on the record page."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from ..models import WorkItem, WorkItemComment
from .assignment import _user_id, may_act
from .completion import _in_item_context, workitem_log

VIEW_PERMISSION = "workitems.view_workitem"


def may_see_item(item: WorkItem, user: Any) -> bool:
    """Who sees an item's comments and history, and may comment: the people it is for (its
    user, the members of its group or queue: `may_act`), whoever completed it, and managers
    (`workitems.view_workitem`, the Work Items page's viewers). Open or closed alike."""
    if not (user.is_authenticated and user.is_active):
        return False
    if item.completed_by_id is not None and item.completed_by_id == user.pk:
        return True
    return bool(user.has_perm(VIEW_PERMISSION)) or may_act(item, user)


def comment_text(body: str) -> str:
    """The text that would be stored for `body`: trimmed, one kind of line break, and without NUL
    characters (PostgreSQL's text type cannot hold them, and nobody types them)."""
    return body.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").strip()


@_in_item_context
def workitem_comment(*, item: WorkItem, author: Any, body: str) -> WorkItemComment:
    """Add `author`'s comment to `item` (open or closed: a note on finished work belongs to its
    history too) and record a `workitems.item.commented` event on the item's run.

    Raises PermissionDenied for someone who may not see the item (`may_see_item`), and
    ValidationError, with a sentence to show, for an empty or too long comment."""
    if not may_see_item(item, author):
        raise PermissionDenied("you may not comment on this work item")
    text = comment_text(body)
    if not text:
        raise ValidationError("Write something before you send the comment.", code="empty")
    limit = WorkItemComment.MAX_LENGTH
    if len(text) > limit:
        raise ValidationError(
            f"A comment is at most {limit:,} characters; this one has {len(text):,}. "
            "Shorten it and send it again.",
            code="too_long",
        )
    # No run lock: a comment changes nothing the engine reads, and taking the lock would make
    # people wait behind a run's transitions to leave a note. The comment and its event are one
    # write: neither exists without the other.
    with transaction.atomic():
        comment = WorkItemComment.objects.create(item=item, author_id=_user_id(author), body=text)
        workitem_log(item, "commented", _user_id(author), comment=comment.pk)
    return comment
