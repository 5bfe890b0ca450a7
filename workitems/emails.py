"""Assignment emails: a text and an HTML version with a link to the record page that opens the item.

Who writes what:
- the step's definition (`email: {enabled, subject, body}`) gives the subject and an opening
  paragraph as Jinja2 templates over `record`, `step`, `assignee`, `run` and `vars`, rendered in
  the expression sandbox; without them a default subject and text are used;
- the Django templates `workitems/email/assigned.{txt,html}` lay the message out. The admin's
  text is rendered as plain text and escaped into the HTML version, so a record value such as
  `<script>` arrives as text, never as markup.

When: services call `assignment_emails_write(item=…)` inside the assignment's transaction. It
writes one outbox row per recipient (orchestration/outbox.py), committed with the assignment: a
rolled-back assignment owes nothing, a committed one cannot lose its emails (a broker that is
down leaves them pending until the sweep relays them), and a mail server that is down cannot
roll back an assignment. The message is rendered at the first delivery by
`assignment_email_render`, which also cancels an email whose item was closed or reassigned
before it went out.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode

from orchestration import engine, expressions
from orchestration.models import OutboxEmail
from orchestration.outbox import outbox_email, outbox_write_many

from .models import WorkItem, WorkItemStatus

log = logging.getLogger(__name__)

SUBJECT_MAX = 200


def assignee_key(item: WorkItem) -> str:
    """Who the item is assigned to, as a short string: "user:3", "group:2" or "queue:1"."""
    if item.assignee_user_id:
        return f"user:{item.assignee_user_id}"
    if item.assignee_group_id:
        return f"group:{item.assignee_group_id}"
    return f"queue:{item.assignee_queue_id}"


def assignment_email_key(item: WorkItem, user_id: int) -> str:
    """One email per recipient per assignment of the item (`item.assignments` counts them): a
    retried or repeated write for the same assignment finds its row; a reassignment is new."""
    return f"workitem:{item.pk}:assignment:{item.assignments}:user:{user_id}"


def assignment_emails_write(*, item: WorkItem) -> int:
    """Write the assignment email of `item` to the outbox, one row per recipient, in the
    caller's transaction (the assignment's); delivered once it commits. Returns the rows asked
    for (a row already written for this assignment is kept as it is).

    The caller decides that the step's emails are on. Each row carries the assignee it was
    written for: if the item is reassigned or closed before the row is delivered, the delivery
    cancels it (the reassignment wrote its own)."""
    rows = []
    seen: set[str] = set()
    for user in recipients(item):
        address = user.email.strip().lower()
        if address in seen:  # two accounts sharing an address get one message
            continue
        seen.add(address)
        rows.append(
            outbox_email(
                kind="assignment",
                key=assignment_email_key(item, user.pk),
                to=[user.email],
                run_id=item.run_id,
                step_run_id=item.step_run_id,
                work_item_id=item.pk,
                assignee=assignee_key(item),
                recipient_id=user.pk,
            )
        )
    outbox_write_many(emails=rows)
    return len(rows)


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


def assignment_emails_enabled(item: WorkItem) -> bool:
    """Whether the item's step sends assignment emails (`email: {enabled: false}` switches
    them off, on assignment and reassignment alike)."""
    try:
        _, step = _step_of(item)
    except LookupError:
        return False
    return bool(step.email.enabled)


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


def assignment_email_render(row: OutboxEmail) -> str:
    """The outbox renderer of assignment emails: fill in the row's message at its first try
    (later tries send what was rendered then) and return "" while the email still applies, or
    why it no longer does: the item is closed or gone, it was reassigned since the row was
    written, its step switches emails off, or the recipient can no longer receive it."""
    item = (
        WorkItem.objects.select_related(
            "run__version", "step_run__stage_run", "assignee_group", "assignee_queue"
        )
        .filter(pk=row.work_item_id or 0)
        .first()
    )
    if item is None:
        return "the work item no longer exists"
    if item.status != WorkItemStatus.ASSIGNED:
        return f"the item was {item.get_status_display().lower()} before the email went out"
    if row.assignee and row.assignee != assignee_key(item):
        return "the item was reassigned before the email went out"
    try:
        doc, step = _step_of(item)
    except LookupError as exc:
        log.error("work item %s: no assignment email: %s", item.pk, exc)
        return str(exc)
    if not step.email.enabled:
        return "emails are switched off for this step"
    if row.subject:
        return ""  # rendered at an earlier try: send the same message again
    User = get_user_model()
    user = User._default_manager.filter(pk=row.recipient_id or 0, is_active=True).exclude(email="").first()
    if user is None:
        return "the recipient is no longer active or has no address"
    msg = assignment_email_build(
        item=item, doc=doc, step=step, record=engine.record_context(item.run), user=user, url=item_url(item)
    )
    html = next((content for content, mimetype in msg.alternatives if mimetype == "text/html"), "")
    row.to = [user.email]
    row.subject = str(msg.subject)
    row.body = str(msg.body)
    row.html = str(html)
    row.headers = {**row.headers, **msg.extra_headers}
    return ""
