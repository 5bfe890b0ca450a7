"""Work Guide actions: open an item, move through its screens (Next / Back / Finish), keep it
for later, claim and release group or queue items.

htmx requests get the part of the panel that changed (one item, or the whole panel after
Finish, claim and release). Plain requests (no JavaScript) get a redirect to the record page
with the item open (`?item=<id>`, plus `check=1` to show the errors of a refused screen):
post/redirect/get, so a reload never posts twice. Values typed are kept in the person's draft
before anything else happens, so no path loses them.

Only people who may act on an item reach it: anyone else gets a 404, as for an item that does
not exist. The one exception is a person whose item was moved to someone else while they had
it open: they have a draft, and are told what happened, with their input shown back."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, replace_url, reswap, retarget

from records.panels import panel_render, record_panels

from .. import panels, selectors
from ..forms import ScreenForm
from ..models import WorkItem, WorkItemDraft, WorkItemStatus
from ..panels import ItemRow, Notice
from ..services import (
    WorkItemClosed,
    may_act,
    screen_flow_for,
    workitem_claim,
    workitem_complete,
    workitem_draft_discard,
    workitem_draft_save,
    workitem_release,
)

ITEM_TEMPLATE = "workitems/guide/panel.html#item"
ACTIONS = {"next", "back", "finish", "save"}


def _load(pk: int) -> WorkItem:
    return get_object_or_404(
        WorkItem.objects.select_related(*selectors.LIST_RELATED, "step_run__flow_version", "completed_by"),
        pk=pk,
    )


def _item(request: HttpRequest, pk: int) -> WorkItem:
    """The item, if the viewer may act on it; a 404 otherwise (as if it did not exist)."""
    item = _load(pk)
    if not may_act(item, request.user):
        raise Http404("no such work item")
    return item


def _record(item: WorkItem) -> Any:
    """The item's record page, looked up once per request (None for an item on no record)."""
    if not hasattr(item, "_guide_record"):
        item._guide_record = panels.record_of(item)  # type: ignore[attr-defined]
    return item._guide_record  # type: ignore[attr-defined]


def _row(request: HttpRequest, item: WorkItem, **parts: Any) -> ItemRow:
    return ItemRow(item=item, viewer=request.user, href=panels.item_href(item, _record(item)), **parts)


def _render_item(request: HttpRequest, row: ItemRow) -> HttpResponse:
    return HttpResponse(render_to_string(ITEM_TEMPLATE, {"row": row}, request=request))


def _render_panel(
    request: HttpRequest, item: WorkItem, *, notice: Notice | None = None, open_pk: int | None = None
) -> HttpResponse:
    """The whole Work Guide (swapped into `#panel-work_guide`), and the record's other panels
    out of band: finishing a step moves the run, and the runs panel shows it at once."""
    record = _record(item)
    if record is None:
        return HttpResponseClientRedirect(panels.item_href(item, None))
    context = panels.guide_context(request, record, notice=notice, open_pk=open_pk)
    others = [panel_render(request, record, p) for p in record_panels() if p.name != panels.PANEL]
    html = render_to_string(
        "workitems/guide/refresh.html",
        {**context, "panel_name": panels.PANEL, "others": [o for o in others if o is not None]},
        request=request,
    )
    response = HttpResponse(html)
    retarget(response, f"#panel-{panels.PANEL}")
    reswap(response, "innerHTML")
    return response


def _redirect_to(item: WorkItem, *, check: bool = False, open_item: bool = True) -> HttpResponse:
    record = _record(item)
    if not open_item and record is not None:
        return redirect(record.get_absolute_url())
    return redirect(panels.item_href(item, record, **({"check": "1"} if check else {})))


# --- opening ----------------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def guide_item(request: HttpRequest, pk: int) -> HttpResponse:
    """One item opened at the screen the viewer's draft is on (htmx), or the record page with
    it open (a plain link)."""
    item = _item(request, pk)
    if not request.htmx:
        return _redirect_to(item)
    row = _row(request, item)
    if item.status != WorkItemStatus.ASSIGNED:
        row.notice = Notice(panels.closed_message(item, request.user), "info")
    elif row.holder:
        row.notice = Notice(panels.held_message(row.holder), "warning")
    else:
        draft = selectors.workitem_draft(item=item, user=request.user)
        row.screen = panels.screen_state(item, draft=draft)
    response = _render_item(request, row)
    return replace_url(response, row.href)


# --- the screen flow --------------------------------------------------------------------------


def _not_open_reason(item: WorkItem, user: Any, allowed: bool) -> str:
    """Why the viewer cannot go on with this item now ("" when they can)."""
    if not allowed:
        return panels.REASSIGNED
    if item.status != WorkItemStatus.ASSIGNED:
        return panels.closed_message(item, user)
    if item.claimed_by_id is not None and item.claimed_by_id != user.pk:
        return panels.held_message(item.claimed_by.get_username())  # type: ignore[union-attr]
    return ""


def _input_shown_back(
    request: HttpRequest, item: WorkItem, text: str, values: dict[str, Any], level: str = "warning"
) -> HttpResponse:
    """The item is out of the viewer's hands: say why, and show what they typed (kept in their
    draft, so the record page shows it again after a reload)."""
    shown = panels.shown_values(screen_flow_for(item), values)
    if not request.htmx:
        messages.warning(request, text)
        return _redirect_to(item)
    notice = Notice(text, level, shown)
    return _render_item(request, _row(request, item, notice=notice))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def guide_screen(request: HttpRequest, pk: int) -> HttpResponse:
    """Next / Back / Finish / Save for later, with the current screen's values."""
    item = _load(pk)
    user = request.user
    allowed = may_act(item, user)
    draft = WorkItemDraft.objects.filter(item=item, user_id=user.pk).first()
    if not allowed and draft is None:
        raise Http404("no such work item")
    action = request.POST.get("action", "next")
    flow = screen_flow_for(item)
    try:
        index = int(request.POST.get("screen", ""))
    except ValueError:
        index = -1
    if action not in ACTIONS or not 0 <= index < len(flow.screens):
        # Not something our form sends: show the item as it stands rather than guess.
        return _show(request, item, draft)
    form = ScreenForm(screen=flow.screens[index], data=request.POST, id_prefix=f"wi{item.pk}")
    typed = form.typed()

    reason = _not_open_reason(item, user, allowed)
    if reason:
        if allowed:
            draft = workitem_draft_save(item=item, user=user, screen=index, values=typed)
        values = {**(draft.values if draft else {}), **typed}
        return _input_shown_back(request, item, reason, values)

    if action in {"back", "save"}:
        # Going back or keeping it for later checks nothing: half-typed input is kept as is.
        target = max(index - 1, 0) if action == "back" else index
        draft = workitem_draft_save(item=item, user=user, screen=target, values=typed)
        if action == "save":
            return _saved_for_later(request, item)
        return _show(request, item, draft)

    if not form.is_valid():
        workitem_draft_save(item=item, user=user, screen=index, values=typed)
        if not request.htmx:
            return _redirect_to(item, check=True)
        row = _row(request, item, screen=panels.screen_state(item, draft=None, index=index, form=form))
        return _render_item(request, row)

    last = index == len(flow.screens) - 1
    if not last:
        draft = workitem_draft_save(item=item, user=user, screen=index + 1, values=form.cleaned_data)
        return _show(request, item, draft)
    draft = workitem_draft_save(item=item, user=user, screen=index, values=form.cleaned_data)
    return _finish(request, item, draft)


def _show(request: HttpRequest, item: WorkItem, draft: WorkItemDraft | None) -> HttpResponse:
    """The screen the draft is on (after Next or Back)."""
    if not request.htmx:
        return _redirect_to(item)
    return _render_item(request, _row(request, item, screen=panels.screen_state(item, draft=draft)))


def _saved_for_later(request: HttpRequest, item: WorkItem) -> HttpResponse:
    text = f"Your answers to “{item.label}” are kept: open it again to go on where you left off."
    if not request.htmx:
        messages.info(request, text)
        return _redirect_to(item, open_item=False)
    response = _render_panel(request, item, notice=Notice(text, "info"))
    record = _record(item)
    return replace_url(response, record.get_absolute_url()) if record is not None else response


def _finish(request: HttpRequest, item: WorkItem, draft: WorkItemDraft) -> HttpResponse:
    """Complete the item with every screen's values; exactly one of two racing Finishes counts."""
    user = request.user
    try:
        workitem_complete(item=item, user=user, data=draft.values)
    except ValidationError as exc:
        # The service checks every screen again; show the first screen with an error.
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        flow = screen_flow_for(item)
        index = next(
            (i for i, s in enumerate(flow.screens) if any(f.name in errors for f in s.fields)), draft.screen
        )
        draft = workitem_draft_save(item=item, user=user, screen=index, values={})
        if not request.htmx:
            for message in errors.get("__all__", []):
                messages.error(request, message)
            return _redirect_to(item, check=True)
        state = panels.screen_state(item, draft=draft, errors=errors)
        return _render_item(request, _row(request, item, screen=state))
    except WorkItemClosed as exc:
        closed = exc.item
        text = panels.closed_message(closed, user) if closed.status != WorkItemStatus.ASSIGNED else str(exc)
        return _input_shown_back(request, item, text, draft.values)
    except PermissionDenied as exc:
        # Claimed or reassigned between the page load and this Finish.
        fresh = _load(item.pk)
        text = _not_open_reason(fresh, user, may_act(fresh, user)) or str(exc)
        return _input_shown_back(request, fresh, text, draft.values)
    workitem_draft_discard(item=item, user=user)
    text = f"Done: “{item.label}” is completed."
    if not request.htmx:
        messages.success(request, text)
        return _redirect_to(item, open_item=False)
    response = _render_panel(request, item, notice=Notice(text, "success"))
    record = _record(item)
    return replace_url(response, record.get_absolute_url()) if record is not None else response


# --- claim and release ------------------------------------------------------------------------


@login_required
@require_POST
@vary_on_headers("HX-Request")
def guide_claim(request: HttpRequest, pk: int) -> HttpResponse:
    """Assign a group or queue item to oneself: the others see who holds it."""
    item = _item(request, pk)
    try:
        workitem_claim(item=item, user=request.user)
    except WorkItemClosed as exc:
        notice = Notice(panels.closed_message(exc.item, request.user) or str(exc), "warning")
    except ValidationError:
        fresh = _load(pk)
        holder = fresh.claimed_by.get_username() if fresh.claimed_by else "Someone else"
        notice = Notice(panels.held_message(holder), "warning")
    else:
        notice = Notice(f"“{item.label}” is assigned to you: the others see that you hold it.", "success")
        if not request.htmx:
            messages.success(request, notice.text)
            return _redirect_to(item)
        return _render_panel(request, item, notice=notice, open_pk=item.pk)
    if not request.htmx:
        messages.warning(request, notice.text)
        return _redirect_to(item, open_item=False)
    return _render_panel(request, item, notice=notice)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def guide_release(request: HttpRequest, pk: int) -> HttpResponse:
    """Give a claimed item back to its group or queue."""
    item = _item(request, pk)
    try:
        workitem_release(item=item, user=request.user)
    except PermissionDenied:
        notice = Notice("You do not hold this item (any more), so there is nothing to release.", "warning")
    else:
        notice = Notice(f"“{item.label}” is back with the team: any member can take it.", "success")
    if not request.htmx:
        getattr(messages, notice.level if notice.level != "danger" else "error")(request, notice.text)
        return _redirect_to(item, open_item=False)
    response = _render_panel(request, item, notice=notice)
    record = _record(item)
    return replace_url(response, record.get_absolute_url()) if record is not None else response
