"""The Work Guide: the record page's panel that lists the viewer's open items on the record and
runs an opened item's screen flow in place.

`WorkitemsConfig.ready()` registers it with records' panel registry (`register`). The same
context is built by the panel on the record page (GET, `?item=<id>` opens an item, as the
assignment email links do) and by the views in views/guide.py after an htmx action, so both
show exactly the same thing. Listing costs one query whatever the number of items
(selectors.workitems_actionable); opening an item adds its draft and what its screen needs."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from orchestration.definitions import DataType, Screen, ScreenFlow
from orchestration.people import person_name
from records.models import Record
from records.panels import register_record_panel, register_view_grant

from . import history, selectors
from .forms import ScreenForm
from .models import Priority, WorkItem, WorkItemDraft, WorkItemStatus
from .selectors import actionable_q
from .services import claim_needed, may_see_item, screen_flow_for, workitem_screen_defaults

PANEL = "work_guide"
TEMPLATE = "workitems/guide/panel.html"
HISTORY_PANEL = "task_history"
HISTORY_TEMPLATE = "workitems/guide/history_panel.html"

# Priority shown beside an item's title, in words (never by colour alone); Normal, the default,
# is not shown, so that a badge means "not the usual".
PRIORITY_BADGES = {
    Priority.LOW: ("Low priority", "text-bg-light border"),
    Priority.HIGH: ("High priority", "text-bg-warning"),
    Priority.URGENT: ("Urgent", "text-bg-danger"),
}


@dataclass
class Notice:
    """A message at the top of the panel or of one item; `values` is input shown back."""

    text: str
    level: str = "info"  # a Bootstrap alert colour
    values: list[tuple[str, str]] = field(default_factory=list)
    focus: bool = True


@dataclass
class ScreenState:
    flow: ScreenFlow
    index: int
    form: ScreenForm

    @property
    def screen(self) -> Screen:
        return self.flow.screens[self.index]

    @property
    def count(self) -> int:
        return len(self.flow.screens)

    @property
    def is_first(self) -> bool:
        return self.index == 0

    @property
    def is_last(self) -> bool:
        return self.index == self.count - 1


@dataclass
class ItemRow:
    """One item as the viewer sees it in the Work Guide."""

    item: WorkItem
    viewer: Any
    href: str  # the record page with this item open: the link that works without JavaScript
    screen: ScreenState | None = None
    notice: Notice | None = None
    # Opened without its screens (held by someone else, or closed): its history and comments show.
    opened: bool = False
    # Whether the viewer may see the item's comments and history, when the caller knows it
    # (the viewer's own open items); asked (services.may_see_item) otherwise.
    may_see: bool | None = None

    @property
    def stage(self) -> str:
        return selectors.stage_label(self.item)

    @property
    def orchestration(self) -> str:
        return str(self.item.run.orchestration)

    @property
    def assignee(self) -> str:
        return _("you") if self.item.assignee_user_id == self.viewer.pk else self.item.assignee_label

    @property
    def age(self) -> str:
        """How long the item has waited, humanized: "Waiting 3 hours"."""
        if timezone.now() - self.item.created_at < dt.timedelta(minutes=1):
            return _("Assigned just now")
        return _("Waiting %(age)s") % {"age": timesince(self.item.created_at, depth=1)}

    @property
    def has_actions(self) -> bool:
        """Open (when not open yet and nobody else holds it), Claim (while the form is not
        open: whoever fills it in completes it, claimed or not), or Release."""
        can_open = not self.screen and not self.holder
        return not self.notice and (can_open or (self.can_claim and not self.screen) or self.viewer_holds)

    @property
    def overdue(self) -> bool:
        return self.item.due_at is not None and self.item.due_at < timezone.now()

    @property
    def shared(self) -> bool:
        """A group or queue item: any member may work it, one may hold it."""
        return self.item.assignee_user_id is None

    @property
    def viewer_holds(self) -> bool:
        return self.item.claimed_by_id is not None and self.item.claimed_by_id == self.viewer.pk

    @property
    def holder(self) -> str:
        """Who else holds the item ("" when nobody or the viewer does)."""
        if self.item.claimed_by_id is None or self.viewer_holds:
            return ""
        return person_name(self.item.claimed_by)

    @property
    def can_claim(self) -> bool:
        return self.shared and self.item.claimed_by_id is None and self.item.status == WorkItemStatus.ASSIGNED

    @property
    def claim_needed(self) -> bool:
        """The step says `claim_required` and the viewer has not claimed this shared item: the
        last screen offers Claim instead of Finish."""
        return self.item.status == WorkItemStatus.ASSIGNED and claim_needed(self.item, self.viewer)

    @property
    def is_open(self) -> bool:
        return self.item.status == WorkItemStatus.ASSIGNED

    @property
    def priority(self) -> tuple[str, str] | None:
        """(words, badge classes) for a priority other than Normal."""
        return (
            PRIORITY_BADGES.get(Priority(self.item.priority))
            if self.item.priority in Priority.values
            else None
        )

    @property
    def shows_activity(self) -> bool:
        """History and comments show on an item opened in the panel, to those who may see them."""
        if self.screen is None and not self.opened:
            return False
        if self.may_see is None:
            self.may_see = may_see_item(self.item, self.viewer)
        return self.may_see

    @functools.cached_property
    def activity(self) -> history.ItemHistory:
        """The item's history and comments (one query, read when the template shows them)."""
        return history.workitem_history(item=self.item)


def item_href(item: WorkItem, record: Record | None, **extra: str) -> str:
    """The record page with `item` open (or, for an item on no record, My Work)."""
    from urllib.parse import urlencode

    base = record.get_absolute_url() if record is not None else "/my-work/"
    return f"{base}?{urlencode({'item': item.pk, **extra})}#work-item-{item.pk}"


def record_of(item: WorkItem) -> Record | None:
    """The record page an item belongs on (None for a run on no record, or another model)."""
    if item.record_id is None or item.record_type_id != ContentType.objects.get_for_model(Record).pk:
        return None
    return Record.objects.select_related("record_type").filter(pk=item.record_id).first()


# --- messages ---------------------------------------------------------------------------------


def closed_message(item: WorkItem, viewer: Any) -> str:
    """Why an item is no longer there to complete, naming who completed it."""
    if item.status == WorkItemStatus.COMPLETED:
        if item.completed_by_id is not None and item.completed_by_id == viewer.pk:
            who = _("you")
        else:
            who = person_name(item.completed_by, default=_("the system"))
        when = (
            date_format(timezone.localtime(item.completed_at), "DATETIME_FORMAT") if item.completed_at else ""
        )
        text = f"This item was already completed by {who}" + (f" on {when}" if when else "")
        return text if text.endswith(".") else f"{text}."  # "6:22 p.m." already ends one
    if item.status == WorkItemStatus.CANCELED:
        return (
            "This item was canceled: the step it belonged to ended or the run was stopped. "
            "Nothing is left to do."
        )
    return ""


REASSIGNED = "This item is now assigned to someone else: you no longer need to act on it."


def held_message(holder: str) -> str:
    return (
        f"{holder} holds this item and is working on it: only they can complete it now. "
        "Ask them to release it if it should come back to the team."
    )


def shown_values(flow: ScreenFlow, values: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) for every field the person gave a value, for showing input back."""
    users = {
        v for f in flow.fields() if f.type == DataType.user and isinstance(v := values.get(f.name), int | str)
    }
    names: dict[str, str] = {}
    ids = {int(u) for u in users if str(u).isdigit()}
    if ids:
        User = get_user_model()
        names = {
            str(pk): name
            for pk, name in User.objects.filter(pk__in=ids).values_list("pk", User.USERNAME_FIELD)
        }
    rows = []
    for f in flow.fields():
        if f.name not in values:
            continue
        v = values[f.name]
        if f.type == DataType.boolean:
            text = "Yes" if v is True or str(v).lower() in {"true", "on", "1", "yes"} else "No"
        elif isinstance(v, list):
            text = ", ".join(str(x) for x in v) or "—"
        elif v is None or v == "":
            text = "—"
        elif f.type == DataType.user:
            text = names.get(str(v), str(v))
        else:
            text = str(v)
        rows.append((f.label or f.name, text))
    return rows


# --- opening an item --------------------------------------------------------------------------


def screen_state(
    item: WorkItem,
    *,
    draft: WorkItemDraft | None,
    index: int | None = None,
    form: ScreenForm | None = None,
    check: bool = False,
    errors: dict[str, list[str]] | None = None,
) -> ScreenState:
    """The screen to show: the one given, or where the viewer's draft is (else the first).

    `form` is a form already bound to what was just posted. Otherwise the form shows the
    draft's values, with the screen's defaults for fields not answered yet; with `check`
    (or service `errors`), the values are checked again so their errors show."""
    flow = screen_flow_for(item)
    if index is None:
        index = draft.screen if draft is not None else 0
    index = min(max(index, 0), len(flow.screens) - 1)
    screen = flow.screens[index]
    id_prefix = f"wi{item.pk}"
    if form is None:
        values = dict(draft.values) if draft is not None else {}
        values = {**workitem_screen_defaults(item=item, screen=index, skip=values.keys()), **values}
        if check or errors:
            form = ScreenForm.bound_to(screen=screen, values=values, id_prefix=id_prefix)
            form.is_valid()
            # The service's messages that the form did not find itself (this screen's only).
            extra = {k: v for k, v in (errors or {}).items() if k in form.fields or k == "__all__"}
            form.add_errors({k: v for k, v in extra.items() if k not in form.errors})
        else:
            form = ScreenForm(screen=screen, values=values, id_prefix=id_prefix)
    form.focus_first()
    return ScreenState(flow=flow, index=index, form=form)


def link_notice(*, pk: int, record: Record, viewer: Any, item: WorkItem | None = None) -> Notice:
    """What to say about an item named in the link (`?item=`) that the viewer cannot open: it
    was completed, canceled or moved to someone else. Never its data or its screens; only the
    viewer's own input, if they had typed some, so that nothing of theirs is lost."""
    item = item or selectors.workitem_on_record(pk=pk, record=record)
    if item is None:
        return Notice("The work item in your link is not on this record.", "warning")
    draft = selectors.workitem_draft(item=item, user=viewer)
    values = shown_values(screen_flow_for(item), draft.values) if draft and draft.values else []
    text = closed_message(item, viewer) or REASSIGNED
    return Notice(text, "info" if item.completed_by_id == viewer.pk else "warning", values)


def closed_item_row(*, pk: int, record: Record, viewer: Any) -> ItemRow | None:
    """A completed or canceled item of the link, shown with what happened to it (its history,
    answers and comments) to those who may see it; None otherwise (then `link_notice` says
    why it is not there)."""
    item = selectors.workitem_on_record(pk=pk, record=record)
    if item is None or item.status == WorkItemStatus.ASSIGNED or not may_see_item(item, viewer):
        return None
    notice = link_notice(pk=pk, record=record, viewer=viewer, item=item)
    return ItemRow(
        item=item, viewer=viewer, href=item_href(item, record), notice=notice, opened=True, may_see=True
    )


def guide_context(
    request: HttpRequest,
    record: Record,
    *,
    open_pk: int | None = None,
    check: bool = False,
    notice: Notice | None = None,
) -> dict[str, Any]:
    """The panel's context: `open_pk` is an item to open where the viewer's draft is (a link,
    or after a claim), `check` shows that screen's errors, `notice` is a message at the top."""
    user = request.user
    rows = [
        ItemRow(item=i, viewer=user, href=item_href(i, record), may_see=True)
        for i in selectors.workitems_actionable(user=user, record=record)
    ]
    closed_row = None
    if open_pk is not None:
        row = next((r for r in rows if r.item.pk == open_pk), None)
        if row is None:
            closed_row = closed_item_row(pk=open_pk, record=record, viewer=user)
            if closed_row is None:
                notice = notice or link_notice(pk=open_pk, record=record, viewer=user)
        elif row.holder:
            row.notice = Notice(held_message(row.holder), "warning")
            row.opened = True
        else:
            draft = selectors.workitem_draft(item=row.item, user=user)
            row.screen = screen_state(row.item, draft=draft, check=check)
    return {
        "rows": rows,
        "closed_row": closed_row,
        "notice": notice,
        "record": record,
        "panel_url": panel_url(record),
        "record_url": record.get_absolute_url(),
    }


def panel_url(record: Record) -> str:
    from django.urls import reverse

    return reverse("records:panel", args=[record.record_type.api_name, record.pk, PANEL])


def work_guide_context(request: HttpRequest, record: Record) -> dict[str, Any] | None:
    """The registered panel: `?item=<id>` opens that item (the email link); `check=1` shows
    the errors of the draft's screen (the no-JavaScript path after a refused Next)."""
    if not request.user.is_authenticated:
        return None
    raw = request.GET.get("item", "")
    open_pk = int(raw) if raw.isdigit() and len(raw) < 19 else None
    return guide_context(request, record, open_pk=open_pk, check=request.GET.get("check") == "1")


def task_history_context(request: HttpRequest, record: Record) -> dict[str, Any] | None:
    """The record page's Task history: each completed item of the record's runs that the
    viewer may see, with who completed it and their answers, reassignments, claims and
    comments (history.record_task_history: two queries, three with person fields)."""
    user = request.user
    if not user.is_authenticated:
        return None
    items, truncated = history.record_task_history(record=record, viewer=user)
    return {"histories": items, "truncated": truncated, "sees_all": history.sees_every_item(user)}


def register() -> None:
    # Order 10: the Work Guide comes before the runs panel (50), at the top of the side column;
    # the Task history (60) after the runs.
    register_record_panel(PANEL, TEMPLATE, work_guide_context, order=10)
    register_record_panel(HISTORY_PANEL, HISTORY_TEMPLATE, task_history_context, order=60)
    register_view_grant(has_work_on_record)


def has_work_on_record(user: Any, record: Any) -> bool:
    """Someone with work on a record may open it (from the email link) without the general
    records.view_record permission: items they may act on, or items they completed."""
    if not (user.is_authenticated and user.is_active):
        return False
    ct = ContentType.objects.get_for_model(record)
    return WorkItem.objects.filter(
        actionable_q(user) | Q(completed_by=user), record_type=ct, record_id=record.pk
    ).exists()
