"""Work Items: the monitoring page where managers see open, overdue, stalled and completed items of
everyone, and move open ones to another user, group or queue.

Who may do what: the page needs `workitems.view_workitem`; reassigning also needs
`workitems.reassign_workitem` (superusers have both). Without the second the page shows no
checkboxes and no forms, and a POST is refused with 403 before anything is read."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from orchestration.models import Orchestration
from records.models import RecordType

from .. import picker
from ..forms import ManageFilterForm, ReassignForm
from ..models import Queue
from ..selectors import MANAGE_VIEWS, ManageFilters, workitems_manage_page, workitems_manage_rows
from ..services import workitems_reassign_many

PER_PAGE = 50
# The GET parameters that make a view of the page: carried through a reassign POST and back.
STATE = (
    "view",
    "who",
    "user",
    "group",
    "queue",
    "orchestration",
    "record_type",
    "older_than",
    "after",
    "before",
)


def _assignee_text(filters: ManageFilters, groups: list[Group], queues: list[Queue]) -> str:
    """What the "Assigned to" picker shows for the filter in the address (one query for a user)."""
    if filters.user:
        choice = picker.resolve_value("user", filters.user)
        return choice.label if choice else filters.user
    if filters.group:
        return next((g.name for g in groups if g.name == filters.group), filters.group)
    if filters.queue:
        return next((q.label for q in queues if q.api_name == filters.queue), filters.queue)
    return ""


def _require_viewer(request: HttpRequest) -> None:
    if not request.user.has_perm("workitems.view_workitem"):
        raise PermissionDenied("you may not see the work items of others")


def _may_reassign(request: HttpRequest) -> bool:
    return bool(request.user.has_perm("workitems.reassign_workitem"))


def _filters(params: QueryDict) -> tuple[ManageFilterForm, ManageFilters]:
    form = ManageFilterForm(params, views=[(k, v[0]) for k, v in MANAGE_VIEWS.items()])
    form.is_valid()  # invalid fields are left out of cleaned_data, and shown with their error
    data = form.cleaned_data
    assignee = {k: data.get(k, "") for k in ("user", "group", "queue")}
    who = data.get("who", "")
    if who and not any(assignee.values()):
        # Typed without picking (no JavaScript): an exact name is the filter, else say who it could be.
        found = picker.resolve_text(who)
        if len(found) == 1:
            assignee[found[0].kind] = found[0].value
        else:
            form.add_error(
                "who", picker.ambiguous_message(who, found) if found else picker.not_found_message(who)
            )
    filters = ManageFilters(
        view=data.get("view") or "open",
        **assignee,
        orchestration=data.get("orchestration", ""),
        record_type=data.get("record_type", ""),
        older_than_days=data.get("older_than"),
    )
    return form, filters


def _render(
    request: HttpRequest, params: QueryDict, reassign: ReassignForm | None = None, status: int = 200
) -> HttpResponse:
    form, filters = _filters(params)
    page = workitems_manage_page(
        filters=filters, after=params.get("after", ""), before=params.get("before", ""), per_page=PER_PAGE
    )
    may_reassign = _may_reassign(request)
    if may_reassign and reassign is None:
        reassign = ReassignForm()
    # After bad input (`params` is then the POST) the boxes that were ticked stay ticked, and a
    # row's own dialog opens again on its message.
    bound = reassign is not None and reassign.is_bound
    row_form = params.get("row", "") if bound else ""
    selected = set(params.getlist("items")) if bound and not row_form else set()
    state = {k: params[k] for k in STATE if params.get(k)}
    # The filter choices, also used to name each row's group, queue, orchestration and record type.
    groups = list(Group.objects.order_by("name"))
    queues = list(Queue.objects.order_by("label"))
    orchestrations = list(Orchestration.objects.order_by("label", "api_name"))
    record_types = list(RecordType.objects.only("pk", "api_name", "label").order_by("label"))
    rows = workitems_manage_rows(
        items=page.items,
        groups=groups,
        queues=queues,
        orchestrations=orchestrations,
        record_types=record_types,
    )
    return render(
        request,
        "workitems/manage.html",
        {
            "form": form,
            "filters": filters,
            "views": [(k, v[0]) for k, v in MANAGE_VIEWS.items()],
            "view_label": MANAGE_VIEWS[filters.view][0],
            "rows": rows,
            "page": page,
            "filtered": any(state.get(k) for k in STATE if k not in ("view", "after", "before")),
            "state": state,
            "may_reassign": may_reassign,
            "reassign": reassign,
            # (A template cannot walk form.errors: `errors.items` is the "items" field's errors.)
            "reassign_errors": [m for errs in reassign.errors.values() for m in errs]
            if reassign is not None and reassign.is_bound
            else [],
            "assignee_text": _assignee_text(filters, groups, queues),
            "assignee_fields": [("user", filters.user), ("group", filters.group), ("queue", filters.queue)],
            "selected": selected,
            "row_form": int(row_form) if row_form.isdigit() else None,
            "groups": groups,
            "queues": queues,
            "orchestrations": orchestrations,
            "record_types": record_types,
        },
        status=status,
    )


@login_required
@require_GET
def manage(request: HttpRequest) -> HttpResponse:
    _require_viewer(request)
    return _render(request, request.GET)


@login_required
@require_POST
def reassign(request: HttpRequest) -> HttpResponse:
    """Reassign the items ticked (or the one row's item) and return to the same view of the list.
    Bad input shows the list again with the message, the boxes still ticked and the reason kept."""
    _require_viewer(request)
    if not _may_reassign(request):
        raise PermissionDenied("you may not reassign work items")
    form = ReassignForm(request.POST)
    if not form.is_valid():
        return _render(request, request.POST, reassign=form, status=400)
    outcome = workitems_reassign_many(
        item_ids=form.cleaned_data["items"],
        actor=request.user,
        reason=form.cleaned_data["reason"].strip(),
        **form.assignee(),
    )
    moved = len(outcome.reassigned)
    if moved:
        messages.success(
            request, f"{moved} item{'s' if moved != 1 else ''} reassigned to {form.target_label()}."
        )
    for _pk, message in outcome.failed:
        messages.error(request, message)
    # Back to the list as it was: only its own parameters are carried, so this cannot point elsewhere.
    keep = {k: request.POST[k] for k in STATE if request.POST.get(k)}
    url = reverse("workitems:manage")
    return HttpResponseRedirect(f"{url}?{urlencode(keep)}" if keep else url)
