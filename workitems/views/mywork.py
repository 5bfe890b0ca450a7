"""My Work: every open item the viewer may act on, on every record, with claim and release for
items of their groups and queues."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from ..models import WorkItem
from ..selectors_mywork import (
    DEFAULT_SORT,
    SORTS,
    actionable_items,
    my_work_count,
    my_work_items,
    my_work_orchestrations,
    my_work_record_types,
    my_work_rows,
)
from ..services import WorkItemClosed, workitem_claim, workitem_release

PER_PAGE = 25
FILTERS = ("orchestration", "record_type", "sort")


def _actionable_item(request: HttpRequest, pk: int) -> WorkItem:
    """An open item the viewer may act on; anything else is a 404 (an item of someone else's
    queue is not revealed to exist)."""
    return get_object_or_404(actionable_items(user=request.user), pk=pk)


@login_required
@require_GET
def my_work(request: HttpRequest) -> HttpResponse:
    orchestration = request.GET.get("orchestration", "").strip()
    record_type = request.GET.get("record_type", "").strip()
    sort = request.GET.get("sort", "")
    if sort not in SORTS:
        sort = DEFAULT_SORT
    items = my_work_items(user=request.user, orchestration=orchestration, record_type=record_type, sort=sort)
    page = Paginator(items, PER_PAGE).get_page(request.GET.get("page"))
    highlight = request.GET.get("item", "")
    rows = my_work_rows(
        items=list(page.object_list),
        user=request.user,
        highlight=int(highlight) if highlight.isdigit() else None,
    )
    return render(
        request,
        "workitems/mywork.html",
        {
            "page": page,
            "rows": rows,
            "sort": sort,
            "sorts": SORTS,
            "sort_label": SORTS[sort],
            "orchestration": orchestration,
            "record_type": record_type,
            "filtered": bool(orchestration or record_type),
            "orchestrations": my_work_orchestrations(user=request.user),
            "record_types": my_work_record_types(user=request.user),
        },
    )


@login_required
@require_GET
def my_work_badge(request: HttpRequest) -> HttpResponse:
    """The navigation's My Work count, re-fetched by htmx when the viewer's items change."""
    variant = "phone" if request.GET.get("variant") == "phone" else "nav"
    return render(
        request, "workitems/_my_work_badge.html", {"variant": variant, "n": my_work_count(user=request.user)}
    )


def _back(request: HttpRequest) -> HttpResponseRedirect:
    """Back to My Work as it was (filters, sort, page): only those parameters are carried over,
    so the redirect can never point elsewhere."""
    keep = {k: request.POST[k] for k in (*FILTERS, "page") if request.POST.get(k)}
    url = reverse("workitems:my_work")
    return HttpResponseRedirect(f"{url}?{urlencode(keep)}" if keep else url)


@login_required
@require_POST
def my_work_claim(request: HttpRequest, pk: int) -> HttpResponse:
    item = _actionable_item(request, pk)
    try:
        workitem_claim(item=item, user=request.user)
    except (ValidationError, PermissionDenied, WorkItemClosed) as exc:
        messages.error(request, _reason(exc))
    else:
        messages.success(request, f"You now hold “{item.label}”: others see that you are on it.")
    return _back(request)


@login_required
@require_POST
def my_work_release(request: HttpRequest, pk: int) -> HttpResponse:
    item = _actionable_item(request, pk)
    try:
        workitem_release(item=item, user=request.user)
    except PermissionDenied as exc:
        messages.error(request, _reason(exc))
    else:
        messages.success(request, f"You released “{item.label}”: anyone in its group or queue can take it.")
    return _back(request)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
