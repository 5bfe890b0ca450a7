"""Assignment emails: a text and an HTML version with a link to the record page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string

from orchestration import engine, expressions

from .models import WorkItem, WorkItemStatus

DEFAULT_SUBJECT = "{{ step.label }}: {{ record.name }}"


def recipients(item: WorkItem) -> list[Any]:
    User = get_user_model()
    if item.assignee_user_id:
        users = User.objects.filter(pk=item.assignee_user_id)
    elif item.assignee_group_id:
        users = User.objects.filter(groups=item.assignee_group_id)
    else:
        users = User.objects.filter(
            Q(work_queues=item.assignee_queue_id) | Q(groups__work_queues=item.assignee_queue_id)
        )
    return list(users.filter(is_active=True).exclude(email="").distinct())


def item_url(item: WorkItem) -> str:
    from orchestration.services import record_accessor_for

    accessor = record_accessor_for(item.run)
    path = accessor.url(item.record_id) if accessor and item.record_id else "/my-work/"
    return f"{settings.SITE_URL}{path}?item={item.pk}"


def assignment_email_send(*, work_item_id: int) -> int:
    """Send the assignment email to every recipient; returns how many were sent."""
    item = WorkItem.objects.select_related("run__version", "step_run").filter(pk=work_item_id).first()
    if item is None or item.status != WorkItemStatus.ASSIGNED:
        return 0
    doc = engine.orchestration_doc(item.run.version)
    step = next(s for st in doc.stages for s in st.steps if s.key == item.step_run.key)
    record = engine.record_context(item.run)
    url = item_url(item)
    sent = 0
    for user in recipients(item):
        ctx = {
            "record": record,
            "step": {"key": step.key, "label": step.label or step.key},
            "assignee": {
                "username": user.get_username(),
                "name": user.get_full_name() or user.get_username(),
            },
            "run": {"id": item.run_id, "orchestration": doc.label or doc.api_name},
            "vars": item.run.variables,
        }
        try:
            subject = expressions.render(step.email.subject or DEFAULT_SUBJECT, ctx)
            intro = expressions.render(step.email.body, ctx) if step.email.body else ""
        except expressions.ExpressionError:
            subject = f"{ctx['step']['label']}: {record.get('name', '')}"
            intro = ""
        subject = " ".join(subject.split())[:200]
        tctx = {"item": item, "url": url, "intro": intro, **ctx}
        text = render_to_string("workitems/email/assigned.txt", tctx)
        html = render_to_string("workitems/email/assigned.html", tctx)
        msg = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [user.email])
        msg.attach_alternative(html, "text/html")
        msg.send()
        sent += 1
    return sent
