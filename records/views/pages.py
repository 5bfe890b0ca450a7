"""Record pages: the records home (counts per type, the newest records), list per record type,
detail (fields, panels, history), create and edit."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from .. import selectors
from ..forms import initial_for, record_form_class
from ..models import Record, RecordType
from ..panels import PANELS, may_view_record, panel_render, panels_render
from ..services import record_create, record_update
from .display import change_rows, change_user_ids, field_rows, format_value, list_columns

PER_PAGE = 25
MINE_LIMIT = 5


def _record_type(type_name: str) -> RecordType:
    return get_object_or_404(RecordType, api_name=type_name)


def _record(type_name: str, pk: int) -> Record:
    """The record with this id, if it is of this type: a record reached under another type's URL
    is a 404, not a redirect, so URLs never silently disagree with what they show."""
    return get_object_or_404(
        Record.objects.select_related("record_type", "owner"), pk=pk, record_type__api_name=type_name
    )


@login_required
@require_GET
def records_home(request: HttpRequest) -> HttpResponse:
    """Every record type with its counts, the viewer's newest records and everyone's. Counts
    and records are shown to those who may see records (records.view_record); anyone else sees
    the types only (a person with work on a record reaches it from My Work or the email)."""
    may_view = request.user.has_perm("records.view_record")
    context: dict[str, object] = {"may_view": may_view}
    if may_view:
        context |= {
            "counts": selectors.record_type_counts(),
            "mine": selectors.recent_records(owner=request.user, limit=MINE_LIMIT),
            "recent": selectors.recent_records(),
        }
    else:
        context["record_types"] = selectors.record_types()
    return render(request, "records/home.html", context)


@login_required
@permission_required("records.view_record", raise_exception=True)
@require_GET
def record_list(request: HttpRequest, type_name: str) -> HttpResponse:
    rt = _record_type(type_name)
    q = request.GET.get("q", "").strip()
    page = Paginator(selectors.record_list(record_type=rt, q=q), PER_PAGE).get_page(request.GET.get("page"))
    columns = list_columns(rt)
    records = list(page.object_list)
    usernames = selectors.usernames_by_id(selectors.user_ids_in(rt, [r.data for r in records]))
    rows = [
        (r, [format_value(c["type"], r.data.get(c["name"]), usernames) for c in columns]) for r in records
    ]
    return render(
        request,
        "records/list.html",
        {"record_type": rt, "q": q, "page": page, "columns": columns, "rows": rows},
    )


def _viewable_record(request: HttpRequest, type_name: str, pk: int) -> Record:
    """The record, if the viewer may see it: with records.view_record, or through a grant (an
    assignee of work on it reaches it from the email link without that permission)."""
    try:
        record = _record(type_name, pk)
    except Http404:
        # Someone who may not see records in general gets the same 403 for a record that does
        # not exist as for one they may not see: ids cannot be probed for existence.
        if not request.user.has_perm("records.view_record"):
            raise PermissionDenied("you may not view this record") from None
        raise
    if not may_view_record(request.user, record):
        raise PermissionDenied("you may not view this record")
    return record


@login_required
@require_GET
def record_detail(request: HttpRequest, type_name: str, pk: int) -> HttpResponse:
    record = _viewable_record(request, type_name, pk)
    rt = record.record_type
    changes = selectors.record_changes(record=record)
    history_truncated = len(changes) > selectors.HISTORY_LIMIT
    changes = changes[: selectors.HISTORY_LIMIT]
    # One query for every username the page shows (user fields, owner changes).
    usernames = selectors.usernames_by_id(
        selectors.user_ids_in(rt, [record.data]) | change_user_ids(rt, changes)
    )
    return render(
        request,
        "records/detail.html",
        {
            "record": record,
            "record_type": rt,
            "fields": field_rows(record, usernames),
            "history": change_rows(rt, changes, usernames),
            "history_truncated": history_truncated,
            "panels": panels_render(request, record),
        },
    )


@login_required
@require_GET
def record_panel(request: HttpRequest, type_name: str, pk: int, panel: str) -> HttpResponse:
    """One panel alone, for htmx to swap into `#panel-<name>` after an action."""
    record = _viewable_record(request, type_name, pk)
    if panel not in PANELS:
        raise Http404("no such panel")
    rendered = panel_render(request, record, PANELS[panel])
    if rendered is None:
        raise Http404("this panel has nothing to show")
    return HttpResponse(rendered.html)


@login_required
@permission_required("records.add_record", raise_exception=True)
def record_new(request: HttpRequest, type_name: str) -> HttpResponse:
    rt = _record_type(type_name)
    form_class = record_form_class(rt)
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            try:
                record = record_create(
                    record_type=rt,
                    name=form.cleaned_data["name"],
                    values=form.values(),
                    owner=form.cleaned_data["owner"],
                    actor=request.user,
                )
            except ValidationError as exc:
                # The service re-validates (the type may have changed since the form was built).
                form.add_service_errors(exc)
            else:
                messages.success(request, f"{rt.label} “{record.name}” created.")
                return redirect(record)
    else:
        form = form_class(initial={"owner": request.user.pk})
    return render(request, "records/form.html", {"record_type": rt, "record": None, "form": form})


@login_required
@permission_required("records.change_record", raise_exception=True)
def record_edit(request: HttpRequest, type_name: str, pk: int) -> HttpResponse:
    record = _record(type_name, pk)
    rt = record.record_type
    form_class = record_form_class(rt)
    version = record.updated_at.isoformat()
    status = 200
    if request.method == "POST":
        form = form_class(request.POST, initial=initial_for(record))
        if not request.POST.get("version"):
            # A form posted by hand or by a script without the edit page's `version` (the
            # record's last change as the page loaded it): saving could undo an edit made since.
            form.is_valid()
            form.add_error(
                None,
                "This form was sent without its “version” field (the time the record was last "
                "changed when the edit page was loaded): nothing was saved. Load the edit page and "
                "send its version with the fields (docs/api.md, “Posting the forms”).",
            )
            status = 400
        elif request.POST.get("version") != version:
            # Someone saved since this form was loaded: its untouched fields hold their old
            # values, and saving would silently undo that edit. Keep the input, ask to check.
            form.is_valid()
            form.add_error(
                None,
                "Someone else saved this record while you were editing it. Your input is kept "
                "below: compare it with the record's history, then save again.",
            )
            status = 409
        elif form.is_valid():
            changed = form.changed_data
            if not changed:
                messages.info(request, "Nothing changed.")
                return redirect(record)
            try:
                # Only what the person changed is sent, so the history lists exactly that.
                record = record_update(
                    record=record,
                    values=form.values(only_changed=True),
                    name=form.cleaned_data["name"] if "name" in changed else None,
                    owner=form.cleaned_data["owner"] if "owner" in changed else ...,
                    actor=request.user,
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"{rt.label} “{record.name}” saved.")
                return redirect(record)
    else:
        form = form_class(initial=initial_for(record))
    return render(
        request,
        "records/form.html",
        {"record_type": rt, "record": record, "form": form, "version": version},
        status=status if request.method == "POST" else 200,
    )
