"""Assignment emails: a text and an HTML version with a link to the record page that opens the item.

Who writes what:
- the step's definition (`email: {enabled, subject, body}`) gives the subject and an opening
  paragraph as Jinja2 templates over `record`, `step`, `assignee`, `run` and `vars`, rendered in
  the expression sandbox; without them a default subject and text are used;
- the Django templates `workitems/email/assigned.{txt,html}` lay the message out. The admin's
  text is rendered as plain text and escaped into the HTML version, so a record value such as
  `<script>` arrives as text, never as markup.

When: services call `assignment_email_on_commit(item)` inside their transaction; the Celery task
`send_assignment_email` runs after the commit, so a rolled-back assignment sends nothing and a
mail server that is down cannot roll back an assignment (the task retries, see tasks.py).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, mailers
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode

from orchestration import engine, expressions

from .models import WorkItem, WorkItemStatus

log = logging.getLogger(__name__)

SUBJECT_MAX = 200


class EmailSendFailed(Exception):
    """The mail server refused a message or could not be reached. `unsent` are the ids of the
    recipients still owed the email, so a retry does not send twice to the ones already served."""

    def __init__(self, cause: BaseException, unsent: list[int]):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.unsent = unsent


def assignee_key(item: WorkItem) -> str:
    """Who the item is assigned to, as a short string: "user:3", "group:2" or "queue:1"."""
    if item.assignee_user_id:
        return f"user:{item.assignee_user_id}"
    if item.assignee_group_id:
        return f"group:{item.assignee_group_id}"
    return f"queue:{item.assignee_queue_id}"


def assignment_email_on_commit(item: WorkItem) -> None:
    """Queue the assignment email for when the current transaction commits.

    The task carries the assignee it was queued for: if the item is reassigned before the task
    runs, the stale task sends nothing (the reassignment queued its own). `robust=True` because
    the assignment is already committed when this runs: a broker that is briefly unreachable is
    logged, and must not turn the completed action of whoever caused the assignment into an error.
    """
    from .tasks import send_assignment_email

    item_id, key = item.pk, assignee_key(item)
    transaction.on_commit(lambda: send_assignment_email.delay(item_id, key), robust=True)


def recipients(item: WorkItem) -> list[Any]:
    """The active users with an address who should hear about `item`: the assignee, or every
    member of the group, or every member of the queue (directly or through one of its groups)."""
    User = get_user_model()
    if item.assignee_user_id:
        users = User._default_manager.filter(pk=item.assignee_user_id)
    elif item.assignee_group_id:
        users = User._default_manager.filter(groups=item.assignee_group_id)
    else:
        users = User._default_manager.filter(
            Q(work_queues=item.assignee_queue_id) | Q(groups__work_queues=item.assignee_queue_id)
        )
    return list(users.filter(is_active=True).exclude(email="").distinct().order_by("pk"))


def item_path(item: WorkItem) -> str:
    """The record page with the item opened; My Work for an item whose run has no record."""
    from orchestration.services import record_accessor_for

    accessor = record_accessor_for(item.run)
    path = accessor.url(item.record_id) if accessor and item.record_id else ""
    return f"{path or reverse('workitems:my_work')}?{urlencode({'item': item.pk})}"


def item_url(item: WorkItem) -> str:
    """`item_path` made absolute with SITE_URL: the email is read outside any request."""
    return f"{settings.SITE_URL}{item_path(item)}"


def _step_of(item: WorkItem) -> tuple[Any, Any]:
    """The orchestration document and the step definition the item was created from."""
    doc = engine.orchestration_doc(item.run.version)
    stage_key = item.step_run.stage_run.key
    for stage in doc.stages:
        if stage.key == stage_key:
            for step in stage.steps:
                if step.key == item.step_run.key:
                    return doc, step
    raise LookupError(f"step {stage_key}.{item.step_run.key} is not in {item.run.version}")


def _render(source: str | None, ctx: dict[str, Any], what: str, item: WorkItem) -> str | None:
    """Render an admin-written template; None when absent or when it fails (logged, so the
    admin can fix the definition; the person still gets the email with the default text)."""
    if not source:
        return None
    try:
        return expressions.render(source, ctx)
    except expressions.ExpressionError as exc:
        log.warning("work item %s: the email %s template failed, using the default: %s", item.pk, what, exc)
        return None


def _via(item: WorkItem) -> str:
    if item.assignee_group_id:
        return f"the group {item.assignee_group.name}"  # type: ignore[union-attr]
    if item.assignee_queue_id:
        return f"the queue {item.assignee_queue.label}"  # type: ignore[union-attr]
    return ""


def assignment_email_build(
    *, item: WorkItem, doc: Any, step: Any, record: dict[str, Any], user: Any, url: str
) -> EmailMultiAlternatives:
    """The message for one recipient (the assignee's name is in the templates' context);
    `record` is the run's record as expressions see it."""
    step_label = step.label or step.key
    ctx = {
        "record": record,
        "step": {"key": step.key, "label": step_label},
        "assignee": {
            "username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),
        },
        "run": {"id": item.run_id, "orchestration": doc.label or doc.api_name},
        "vars": item.run.variables,
    }
    subject = _render(step.email.subject, ctx, "subject", item)
    if not (subject and subject.strip()):
        what = record.get("name") or item.run.record_label or ctx["run"]["orchestration"]
        subject = f"{step_label}: {what}"
    # A header is one line: newlines from a template or a record value would be refused.
    subject = " ".join(subject.split())[:SUBJECT_MAX]
    intro = (_render(step.email.body, ctx, "body", item) or "").strip()
    tctx = {
        **ctx,
        "item": item,
        "url": url,
        "intro": intro,
        "via": _via(item),
        "record_label": record.get("name") or item.run.record_label,
    }
    text = render_to_string("workitems/email/assigned.txt", tctx)
    html = render_to_string("workitems/email/assigned.html", tctx)
    msg = EmailMultiAlternatives(
        subject,
        text,
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
        # Tells well-behaved auto-responders (out-of-office) not to answer a robot.
        headers={"Auto-Submitted": "auto-generated"},
    )
    msg.attach_alternative(html, "text/html")
    return msg


def assignment_email_send(
    *, work_item_id: int, assignee: str | None = None, user_ids: list[int] | None = None
) -> int:
    """Email everyone the item is assigned to; returns how many messages were sent.

    Sends nothing when the item is no longer open, when it has been reassigned since the email
    was queued for `assignee`, or when its step switches emails off. `user_ids` (on a retry)
    limits the send to the recipients not yet served. Raises EmailSendFailed when the mail
    server fails, naming who is still owed the message."""
    item = (
        WorkItem.objects.select_related(
            "run__version", "step_run__stage_run", "assignee_group", "assignee_queue"
        )
        .filter(pk=work_item_id)
        .first()
    )
    if item is None or item.status != WorkItemStatus.ASSIGNED:
        return 0
    if assignee is not None and assignee != assignee_key(item):
        return 0
    try:
        doc, step = _step_of(item)
    except LookupError as exc:
        log.error("work item %s: no assignment email: %s", item.pk, exc)
        return 0
    if not step.email.enabled:
        return 0
    people = recipients(item)
    if user_ids is not None:
        wanted = set(user_ids)
        people = [u for u in people if u.pk in wanted]
    if not people:
        return 0
    url = item_url(item)
    record = engine.record_context(item.run)
    sent = 0
    seen: set[str] = set()
    # One connection for the whole batch: a queue of fifty people is one SMTP session.
    connection = mailers.default
    try:
        connection.open()
        for i, user in enumerate(people):
            address = user.email.strip().lower()
            if address in seen:  # two accounts sharing an address get one message
                continue
            seen.add(address)
            msg = assignment_email_build(item=item, doc=doc, step=step, record=record, user=user, url=url)
            try:
                connection.send_messages([msg])
            except OSError as exc:  # smtplib.SMTPException is an OSError too
                raise EmailSendFailed(exc, [u.pk for u in people[i:]]) from exc
            sent += 1
    except OSError as exc:  # could not even connect
        raise EmailSendFailed(exc, [u.pk for u in people]) from exc
    finally:
        # The server going away after the last message leaves nothing unsent.
        with contextlib.suppress(OSError):
            connection.close()
    return sent
