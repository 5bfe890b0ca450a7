"""Work Guide actions: open an item, move through its screens (Next / Back / Finish / Save for
later), claim and release group or queue items, read and add an item's comments.

htmx requests get the part of the panel that changed: one item, or the whole panel (with the
record's other panels out of band) after Finish, claim and release. Plain requests (no
JavaScript) get a redirect to the record page with the item open (`?item=<id>`, plus `check=1`
to show the errors of a refused screen): post/redirect/get, so a reload never posts twice.
What was typed is kept in the person's draft before anything else happens, so no path loses it.

Only people who may act on an item reach it: anyone else gets a 404, as for an item that does
not exist. The one exception is a person whose item was moved to someone else while they had
it open: they have a draft, and are told what happened, with their input shown back."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import (
    HttpResponseClientRedirect,
    replace_url,
    reswap,
    retarget,
    trigger_client_event,
)
from django_htmx.middleware import HtmxDetails

from orchestration.people import person_name
from records.models import Record
from records.panels import may_view_record, panel_render, record_panels

from .. import history, panels, selectors
from ..forms import ScreenForm
from ..models import WorkItem, WorkItemDraft, WorkItemStatus
from ..panels import ItemRow, Notice
from ..services import (
    ClaimRequired,
    WorkItemClosed,
    may_act,
    may_see_item,
    screen_flow_for,
    workitem_claim,
    workitem_comment,
    workitem_complete,
    workitem_draft_discard,
    workitem_draft_save,
    workitem_release,
)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


ITEM_TEMPLATE = "workitems/guide/panel.html#item"
# "claim": the last screen of a `claim_required` step offers Claim where Finish would be.
ACTIONS = {"next", "back", "finish", "save", "claim"}
# Sent with every response after which the viewer's open items changed, for other parts of the
# page (the My Work badge) to refresh: `hx-trigger="workitems-changed from:body"`.
CHANGED_EVENT = "workitems-changed"


class Target:
    """The item an action is about, its record page (None for a run on no record) and the
    request: what every response here needs."""

    def __init__(self, request: HtmxHttpRequest, item: WorkItem):
        self.request = request
        self.item = item
        self.record: Record | None = panels.record_of(item)

    def row(self, **parts: Any) -> ItemRow:
        return ItemRow(
            item=self.item, viewer=self.request.user, href=panels.item_href(self.item, self.record), **parts
        )

    def item_response(self, row: ItemRow) -> HttpResponse:
        """One item, swapped in place of itself (`#work-item-<id>`)."""
        return HttpResponse(render_to_string(ITEM_TEMPLATE, {"row": row}, request=self.request))

    def panel_response(self, notice: Notice, *, open_pk: int | None = None) -> HttpResponse:
        """The whole Work Guide, swapped into `#panel-work_guide`, and the record's other
        panels out of band: finishing a step moves the run, and the runs panel shows it."""
        if self.record is None:
            return HttpResponseClientRedirect(panels.item_href(self.item, None))
        context = panels.guide_context(self.request, self.record, notice=notice, open_pk=open_pk)
        others = [
            panel_render(self.request, self.record, p) for p in record_panels() if p.name != panels.PANEL
        ]
        html = render_to_string(
            "workitems/guide/refresh.html",
            {**context, "others": [o for o in others if o is not None]},
            request=self.request,
        )
        response = retarget(HttpResponse(html), f"#panel-{panels.PANEL}")
        response = reswap(response, "innerHTML")
        response = trigger_client_event(response, CHANGED_EVENT)
        # The address bar shows the item open while it is; afterwards, the record page itself.
        url = panels.item_href(self.item, self.record) if open_pk else self.record.get_absolute_url()
        return replace_url(response, url)

    def redirect(self, *, check: bool = False, open_item: bool = True) -> HttpResponse:
        """The no-JavaScript answer: the record page, with the item open unless it is done."""
        if not open_item and self.record is not None:
            return redirect(self.record.get_absolute_url())
        return redirect(panels.item_href(self.item, self.record, **({"check": "1"} if check else {})))


def _load(pk: int) -> WorkItem:
    return get_object_or_404(
        WorkItem.objects.select_related(*selectors.LIST_RELATED, "step_run__flow_version", "completed_by"),
        pk=pk,
    )


def _item(request: HtmxHttpRequest, pk: int) -> WorkItem:
    """The item, if the viewer may act on it; a 404 otherwise (as if it did not exist)."""
    item = _load(pk)
    if not may_act(item, request.user):
        raise Http404("no such work item")
    return item


# --- opening ----------------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def guide_item(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """One item opened at the screen the viewer's draft is on (htmx), or the record page with
    it open (a plain link)."""
    target = Target(request, _item(request, pk))
    if not request.htmx:
        return target.redirect()
    item = target.item
    # The viewer may act on it (`_item`): its history and comments are theirs to see.
    row = target.row(may_see=True)
    if item.status != WorkItemStatus.ASSIGNED:
        row.notice = Notice(panels.closed_message(item, request.user), "info")
        row.opened = True
    elif row.holder:
        row.notice = Notice(panels.held_message(row.holder), "warning")
        row.opened = True
    else:
        row.screen = panels.screen_state(item, draft=selectors.workitem_draft(item=item, user=request.user))
    # A reload (or a copied address) opens the same item again.
    return replace_url(target.item_response(row), row.href)


# --- the screen flow --------------------------------------------------------------------------


def _not_open_reason(item: WorkItem, user: Any, allowed: bool) -> str:
    """Why the viewer cannot go on with this item now ("" when they can)."""
    if not allowed:
        return panels.REASSIGNED
    if item.status != WorkItemStatus.ASSIGNED:
        return panels.closed_message(item, user)
    if item.claimed_by_id is not None and item.claimed_by_id != user.pk:
        return panels.held_message(person_name(item.claimed_by))
    return ""


def _input_shown_back(target: Target, text: str, values: dict[str, Any]) -> HttpResponse:
    """The item is out of the viewer's hands: say why, and show what they typed. It stays in
    their draft, so the record page shows it again after a reload."""
    if not target.request.htmx:
        messages.warning(target.request, text)
        return target.redirect()
    shown = panels.shown_values(screen_flow_for(target.item), values)
    return target.item_response(target.row(notice=Notice(text, "warning", shown)))


def _show(target: Target, draft: WorkItemDraft | None, **state: Any) -> HttpResponse:
    """The screen the draft is on (after Next or Back), or the one `state` names."""
    if not target.request.htmx:
        return target.redirect(check=bool(state))
    return target.item_response(target.row(screen=panels.screen_state(target.item, draft=draft, **state)))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def guide_screen(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Next / Back / Finish / Save for later, with the values of the screen shown."""
    item = _load(pk)
    user = request.user
    allowed = may_act(item, user)
    draft = selectors.workitem_draft(item=item, user=user)
    if not allowed and draft is None:
        raise Http404("no such work item")
    target = Target(request, item)
    flow = screen_flow_for(item)
    action = request.POST.get("action", "next")
    raw_index = request.POST.get("screen", "")
    # isdigit() alone is true for superscripts like '²' (which int() refuses) and for 5000 digits
    # (int() refuses those too): only a short run of ASCII digits is a screen number.
    index = int(raw_index) if raw_index.isascii() and raw_index.isdigit() and len(raw_index) < 6 else -1
    if action not in ACTIONS or not 0 <= index < len(flow.screens):
        # Not something our form sends: show the item as it stands rather than guess.
        return _show(target, draft)
    form = ScreenForm(screen=flow.screens[index], data=request.POST, id_prefix=f"wi{item.pk}")
    typed = form.typed()

    reason = _not_open_reason(item, user, allowed)
    if reason:
        if allowed:
            draft = workitem_draft_save(item=item, user=user, screen=index, values=typed)
        return _input_shown_back(target, reason, {**(draft.values if draft else {}), **typed})

    if action == "claim":
        draft = workitem_draft_save(item=item, user=user, screen=index, values=typed)
        return _claim_from_screen(target, draft)

    if action in {"back", "save"}:
        # Going back, or keeping the item for later, checks nothing: half-typed input is kept.
        draft = workitem_draft_save(
            item=item, user=user, screen=max(index - 1, 0) if action == "back" else index, values=typed
        )
        return _saved_for_later(target) if action == "save" else _show(target, draft)

    if not form.is_valid():
        workitem_draft_save(item=item, user=user, screen=index, values=typed)
        return _show(target, None, index=index, form=form)

    if index < len(flow.screens) - 1:
        draft = workitem_draft_save(item=item, user=user, screen=index + 1, values=form.cleaned_data)
        return _show(target, draft)
    draft = workitem_draft_save(item=item, user=user, screen=index, values=form.cleaned_data)
    return _finish(target, draft)


def _saved_for_later(target: Target) -> HttpResponse:
    text = f"Your answers to “{target.item.label}” are kept: open it again to go on where you left off."
    if not target.request.htmx:
        messages.info(target.request, text)
        return target.redirect(open_item=False)
    return target.panel_response(Notice(text, "info"))


def _finish(target: Target, draft: WorkItemDraft) -> HttpResponse:
    """Complete the item with every screen's values: of two racing Finishes, exactly one
    counts (the service decides, under the run's lock); the other is told who completed it."""
    request, item, user = target.request, target.item, target.request.user
    try:
        workitem_complete(item=item, user=user, data=draft.values)
    except ValidationError as exc:
        # The service checks every screen again: show the first screen with an error.
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        index = next(
            (
                i
                for i, s in enumerate(screen_flow_for(item).screens)
                if any(f.name in errors for f in s.fields)
            ),
            draft.screen,
        )
        draft = workitem_draft_save(item=item, user=user, screen=index, values={})
        if not request.htmx:
            for message in errors.get("__all__", []):
                messages.error(request, message)
        return _show(target, draft, errors=errors)
    except WorkItemClosed as exc:
        closed = exc.item
        text = panels.closed_message(closed, user) if closed.status != WorkItemStatus.ASSIGNED else str(exc)
        return _input_shown_back(target, text, draft.values)
    except ClaimRequired as exc:
        # A claim_required step's item nobody (or no longer the viewer) holds: the last screen
        # again, with what they typed, the message and Claim where Finish was.
        if not request.htmx:
            messages.warning(request, str(exc))
            return target.redirect()
        return _show(target, draft, errors={"__all__": [str(exc)]})
    except PermissionDenied as exc:
        # Claimed by someone else, or reassigned, between the page load and this Finish.
        fresh = _load(item.pk)
        text = _not_open_reason(fresh, user, may_act(fresh, user)) or str(exc)
        return _input_shown_back(target, text, draft.values)
    workitem_draft_discard(item=item, user=user)
    text = f"Done: “{item.label}” is completed."
    if not request.htmx:
        messages.success(request, text)
        return target.redirect(open_item=False)
    return target.panel_response(Notice(text, "success"))


def _claim_from_screen(target: Target, draft: WorkItemDraft) -> HttpResponse:
    """Claim from the last screen of a `claim_required` step (what was typed is in the draft
    already): the panel comes back with the item open where it was, and Finish active."""
    request, item = target.request, target.item
    try:
        workitem_claim(item=item, user=request.user)
    except WorkItemClosed as exc:
        return _input_shown_back(
            target, panels.closed_message(exc.item, request.user) or str(exc), draft.values
        )
    except (ValidationError, PermissionDenied) as exc:
        # Someone else claimed it first, or it was moved to someone else, since the page loaded.
        fresh = _load(item.pk)
        said = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        text = _not_open_reason(fresh, request.user, may_act(fresh, request.user)) or said
        return _input_shown_back(target, text, draft.values)
    text = f"“{item.label}” is assigned to you: the others see that you hold it, and Finish completes it."
    if not request.htmx:
        messages.success(request, text)
        return target.redirect()
    return target.panel_response(Notice(text, "success"), open_pk=item.pk)


# --- claim and release ------------------------------------------------------------------------


@login_required
@require_POST
@vary_on_headers("HX-Request")
def guide_claim(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Assign a group or queue item to oneself (others then see who holds it), and open it."""
    target = Target(request, _item(request, pk))
    item = target.item
    try:
        workitem_claim(item=item, user=request.user)
    except WorkItemClosed as exc:
        notice = Notice(panels.closed_message(exc.item, request.user) or str(exc), "warning")
    except ValidationError as exc:
        fresh = _load(pk)
        text = (
            panels.held_message(person_name(fresh.claimed_by)) if fresh.claimed_by else " ".join(exc.messages)
        )
        notice = Notice(text, "warning")
    else:
        notice = Notice(f"“{item.label}” is assigned to you: the others see that you hold it.", "success")
        if not request.htmx:
            messages.success(request, notice.text)
            return target.redirect()
        return target.panel_response(notice, open_pk=item.pk)
    if not request.htmx:
        messages.warning(request, notice.text)
        return target.redirect(open_item=False)
    return target.panel_response(notice)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def guide_release(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Give a claimed item back to its group or queue."""
    target = Target(request, _item(request, pk))
    try:
        workitem_release(item=target.item, user=request.user)
    except PermissionDenied:
        notice = Notice("You do not hold this item (any more), so there is nothing to release.", "warning")
    except WorkItemClosed as exc:
        notice = Notice(f"{exc} There is nothing to release.", "warning")
    else:
        notice = Notice(f"“{target.item.label}” is back with the team: any member can take it.", "success")
    if not request.htmx:
        (messages.success if notice.level == "success" else messages.warning)(request, notice.text)
        return target.redirect(open_item=False)
    return target.panel_response(notice)


# --- comments ---------------------------------------------------------------------------------

COMMENTS_TEMPLATE = "workitems/guide/comments.html#comments"


def _comments_href(target: Target) -> str:
    """Where a comment sent without JavaScript comes back to: the item in the Work Guide for
    those who work it there, else (a manager, an item on no record) the item's comments page."""
    item, user = target.item, target.request.user
    in_guide = target.record is not None and (may_act(item, user) or item.completed_by_id == user.pk)
    if not in_guide:
        return reverse("workitems:guide_comments", args=[item.pk])
    return panels.item_href(item, target.record).split("#", 1)[0] + f"#work-item-{item.pk}-comments"


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def guide_comments(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """An item's comments, and (POST) a new one, for everyone who may see the item
    (services.may_see_item): htmx gets the comments block to swap in place; a plain GET, or a
    refused plain POST, a page of its own (the managers' way to an item outside their Work
    Guide); a plain POST that worked, a redirect back. A refused comment keeps what was typed."""
    item = _load(pk)
    if not may_see_item(item, request.user):
        raise Http404("no such work item")
    target = Target(request, item)
    typed, error, saved = "", "", False
    if request.method == "POST":
        typed = request.POST.get("body", "")
        try:
            workitem_comment(item=item, author=request.user, body=typed)
        except PermissionDenied as exc:
            raise Http404("no such work item") from exc
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            typed, saved = "", True
            if not request.htmx:
                messages.success(request, "Your comment is added.")
                return redirect(_comments_href(target))
    context = {
        "item": item,
        "history": history.workitem_history(item=item),
        "comment_body": typed,
        "comment_error": error,
        "comment_saved": saved,
    }
    if request.htmx:
        return HttpResponse(render_to_string(COMMENTS_TEMPLATE, context, request=request))
    record = target.record
    return render(
        request,
        "workitems/guide/comments_page.html",
        {
            **context,
            "row": target.row(opened=True, may_see=True),
            "record": record if record is not None and may_view_record(request.user, record) else None,
        },
    )
