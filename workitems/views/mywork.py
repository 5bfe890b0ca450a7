"""My Work: every open item the viewer may act on, on every record, with a search, filters and
sorts, the viewer's saved views of it, and claim and release for items of their groups and queues."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from ..models import Priority, WorkItem
from ..selectors_mywork import (
    PARAMS,
    SEARCH_MAX_LENGTH,
    SORTS,
    MyWorkView,
    actionable_items,
    my_work_count,
    my_work_items,
    my_work_orchestrations,
    my_work_record_types,
    my_work_rows,
    my_work_stage_labels,
    my_work_view,
    saved_view,
    saved_views,
)
from ..services import (
    WorkItemClosed,
    saved_view_create,
    saved_view_delete,
    workitem_claim,
    workitem_release,
)

PER_PAGE = 25


def _actionable_item(request: HttpRequest, pk: int) -> WorkItem:
    """An open item the viewer may act on; anything else is a 404 (an item of someone else's
    queue is not revealed to exist)."""
    return get_object_or_404(actionable_items(user=request.user), pk=pk)


def _url(view: MyWorkView, **extra: str) -> str:
    """My Work showing `view`: the address is built here from known parameters only, so a
    redirect to it can never point elsewhere."""
    query = "&".join(part for part in (view.query, urlencode({k: v for k, v in extra.items() if v})) if part)
    url = reverse("workitems:my_work")
    return f"{url}?{query}" if query else url


@login_required
@require_GET
@vary_on_headers("HX-Request")
def my_work(request: HttpRequest) -> HttpResponse:
    """The page; for htmx (the live search) the results alone, without the filters' choices."""
    view = my_work_view(request.GET)
    # A search matches stage labels: those of every version the viewer has items in are read
    # once (instead of the page's versions' only), so a search costs no extra query.
    stages = my_work_stage_labels(user=request.user) if view.q else None
    items = my_work_items(
        user=request.user,
        orchestration=view.orchestration,
        record_type=view.record_type,
        sort=view.sort,
        q=view.q,
        stages=stages,
    )
    page = Paginator(items, PER_PAGE).get_page(request.GET.get("page"))
    highlight = request.GET.get("item", "")
    rows = my_work_rows(
        items=list(page.object_list),
        user=request.user,
        highlight=int(highlight) if highlight.isdigit() else None,
        stages=stages,
    )
    views = saved_views(user=request.user)
    # `save`: the name typed into "Save this view" when saving was refused, to type it again.
    save_name = request.GET.get("save", "").strip()[:200]
    context = {
        "page": page,
        "rows": rows,
        "view": view,
        "sort": view.sort,
        "sorts": SORTS,
        "sort_label": SORTS[view.sort],
        "orchestration": view.orchestration,
        "record_type": view.record_type,
        "q": view.typed,
        "search_error": view.error,
        "search_max_length": SEARCH_MAX_LENGTH,
        "filtered": view.filtered,
        "priorities": Priority,
        "saved_views": [(v, v.query == view.query) for v in views],
        "save_name": save_name,
        "save_taken": bool(save_name) and any(v.name.casefold() == save_name.casefold() for v in views),
    }
    if getattr(request, "htmx", False):
        return render(request, "workitems/mywork.html#results", context)
    context["orchestrations"] = my_work_orchestrations(user=request.user)
    context["record_types"] = my_work_record_types(user=request.user)
    return render(request, "workitems/mywork.html", context)


@login_required
@require_GET
def my_work_badge(request: HttpRequest) -> HttpResponse:
    """The navigation's My Work count, re-fetched by htmx when the viewer's items change."""
    variant = "phone" if request.GET.get("variant") == "phone" else "nav"
    return render(
        request, "workitems/_my_work_badge.html", {"variant": variant, "n": my_work_count(user=request.user)}
    )


def _back(request: HttpRequest) -> HttpResponseRedirect:
    """Back to My Work as it was (search, filters, sort, page): only those parameters are
    carried over, so the redirect can never point elsewhere."""
    page = request.POST.get("page", "")
    return HttpResponseRedirect(_url(my_work_view(request.POST), page=page if page.isdigit() else ""))


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
    except (PermissionDenied, WorkItemClosed) as exc:
        messages.error(request, _reason(exc))
    else:
        messages.success(request, f"You released “{item.label}”: anyone in its group or queue can take it.")
    return _back(request)


# --- saved views --------------------------------------------------------------------------------


@login_required
@require_POST
def my_work_view_save(request: HttpRequest) -> HttpResponse:
    """Save the view the form was posted from (its search, filters and sort) under a name. A
    refusal goes back to the same view with the name typed, so nothing is lost."""
    view = my_work_view(request.POST)
    name = request.POST.get("name", "")
    try:
        saved = saved_view_create(user=request.user, name=name, params={k: getattr(view, k) for k in PARAMS})
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(_url(view, save=name.strip()[:200]))
    messages.success(request, f"Saved this view as “{saved.name}”: it is listed above the table.")
    return HttpResponseRedirect(_url(view))


@login_required
@require_GET
def my_work_view_open(request: HttpRequest, pk: int) -> HttpResponse:
    """A saved view: My Work with its query, read again as any address would be (a process
    since removed, a sort since renamed: what no longer applies is left out)."""
    saved = saved_view(user=request.user, pk=pk)
    if saved is None:
        raise Http404("no such saved view")
    url = _url(my_work_view(QueryDict(saved.query)))
    # htmx follows a redirect inside the element it swaps: the whole page goes there instead.
    return HttpResponseClientRedirect(url) if getattr(request, "htmx", False) else HttpResponseRedirect(url)


@login_required
@require_POST
def my_work_view_delete(request: HttpRequest, pk: int) -> HttpResponse:
    saved = saved_view(user=request.user, pk=pk)
    if saved is None:
        raise Http404("no such saved view")
    saved_view_delete(saved=saved, user=request.user)
    messages.success(request, f"Deleted the saved view “{saved.name}”.")
    return _back(request)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
