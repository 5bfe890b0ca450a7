"""When an open work item is due and how urgent it is, changed by a manager (who holds
`workitems.reassign_workitem`; superusers do): anyone else gets a 403, before the item is read.

GET shows the item with its form (workitems/_schedule_form.html, the partial the Work Items page
also includes for each row). POST changes it through `workitem_set_schedule` and goes back to
`next` when that is an address on this site, else to this page. Bad input, or an item closed
meanwhile: the form again, with the message beside the field and what was typed. htmx requests
get the form alone (swapped in place) and, once saved, a client redirect to `next`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from records.models import Record

from ..models import Priority, WorkItem
from ..rows import item_link
from ..services import WorkItemClosed, may_schedule, workitem_set_schedule
from ..services.schedule import REASON_MAX_LENGTH

# What a browser's datetime-local input sends (seconds when the page asked for them).
DATETIME_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


class ScheduleForm(forms.Form):
    due_at = forms.DateTimeField(
        required=False,
        input_formats=DATETIME_LOCAL_FORMATS,
        error_messages={"invalid": "Enter the due date as a date and a time, e.g. 2026-12-31 17:00."},
    )
    priority = forms.TypedChoiceField(
        choices=Priority.choices,
        coerce=int,
        error_messages={"invalid_choice": "Choose one of the listed priorities."},
    )
    reason = forms.CharField(required=False, max_length=REASON_MAX_LENGTH)


def _next(request: HttpRequest, item: WorkItem) -> str:
    """Where to go once saved: `next` if it is an address on this site, else this page."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("workitems:schedule", args=[item.pk])


def _record(item: WorkItem) -> Record | None:
    """The record the item is on, for the page's heading (None for a run on another model)."""
    ct = item.record_type
    if ct is None or item.record_id is None:
        return None
    if (ct.app_label, ct.model) != (Record._meta.app_label, Record._meta.model_name):
        return None
    return Record.objects.select_related("record_type").filter(pk=item.record_id).first()


def _show(
    request: HttpRequest,
    item: WorkItem,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> HttpResponse:
    context = {"item": item, "errors": errors or {}, "values": values, "next": _next(request, item)}
    if getattr(request, "htmx", False):
        return render(request, "workitems/_schedule_form.html", context)
    record = _record(item)
    link = item_link(item, record.record_type.api_name) if record is not None else ""
    return render(request, "workitems/schedule.html", {**context, "record": record, "record_link": link})


def _said(exc: ValidationError) -> dict[str, str]:
    """{field: message} of the service's refusal ("" for one not about a field)."""
    if hasattr(exc, "error_dict"):
        return {field: " ".join(ValidationError(e).messages) for field, e in exc.error_dict.items()}
    return {"": " ".join(exc.messages)}


@login_required
@require_http_methods(["GET", "POST"])
def schedule(request: HttpRequest, pk: int) -> HttpResponse:
    if not may_schedule(request.user):
        raise PermissionDenied("you may not change when work items are due")
    item = get_object_or_404(
        WorkItem.objects.select_related(
            "run__orchestration", "record_type", "assignee_user", "assignee_group", "assignee_queue"
        ),
        pk=pk,
    )
    if request.method == "GET":
        return _show(request, item)
    form = ScheduleForm(request.POST)
    typed = {k: request.POST.get(k, "") for k in ("due_at", "priority", "reason")}
    if not form.is_valid():
        return _show(
            request,
            item,
            errors={k: " ".join(str(m) for m in v) for k, v in form.errors.items()},
            values=typed,
        )
    before = (item.due_at, item.priority)
    data = form.cleaned_data
    try:
        item = workitem_set_schedule(
            item=item,
            actor=request.user,
            due_at=data["due_at"],
            priority=data["priority"],
            reason=data["reason"],
        )
    except ValidationError as exc:
        return _show(request, item, errors=_said(exc), values=typed)
    except WorkItemClosed as exc:
        return _show(request, exc.item, errors={"": str(exc)}, values=typed)
    if (item.due_at, item.priority) == before:
        messages.info(request, f"“{item.label}”: nothing changed.")
    else:
        due = f"due {timezone.localtime(item.due_at):%Y-%m-%d %H:%M}" if item.due_at else "with no due date"
        messages.success(
            request, f"“{item.label}” is now {item.get_priority_display().lower()} priority, {due}."
        )
    target = _next(request, item)
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(target)
    return HttpResponseRedirect(target)
