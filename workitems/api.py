"""The JSON API of work items: the caller's open work (what My Work lists), one item with the
fields of its screen flow, and completing, claiming, releasing and reassigning an item, through
the services the Work Guide and the Work Items page call.

Token authentication and JSON errors are orchestration.api's. As on the pages, an item the
caller may not act on answers 404 exactly like one that does not exist, so ids cannot be probed;
reassigning is for managers (`workitems.view_workitem` and `workitems.reassign_workitem`), who
may move any open item. A refusal because of the item's state is a 409 that says why, with the
item as it now stands (who completed it, and when)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode

from orchestration.api import (
    ApiError,
    api_endpoint,
    json_body,
    positive_id,
    query_params,
    require_fields,
    text_field,
)
from orchestration.definitions import DataType, ScreenField, ScreenFlow
from orchestration.flows import screen_flow_validate
from orchestration.people import person_name
from orchestration.selectors import MAX_ID

from . import selectors
from .models import Priority, Queue, WorkItem, WorkItemStatus
from .services import (
    WorkItemClosed,
    claim_needed,
    may_act,
    screen_flow_for,
    workitem_claim,
    workitem_complete,
    workitem_reassign,
    workitem_release,
    workitem_screen_defaults,
)

User = get_user_model()
PERM_VIEW = "workitems.view_workitem"
PERM_REASSIGN = "workitems.reassign_workitem"
DEFAULT_PAGE = 50
MAX_PAGE = 200
ASSIGNEE_MAX = 150  # a username or a group name (a queue's api name is shorter)
REASSIGN_REASON_MAX = 500  # as the Work Items page's reassign form
ASSIGNEE_KINDS = ("user", "group", "queue")
# What an item's answer shows without a query per item: its step, stage, run, assignee, holder,
# who completed it, the record's type and the screen flow's version (parsed once per process).
RELATED = (*selectors.LIST_RELATED, "step_run__flow_version", "record_type", "completed_by")


# --- access -----------------------------------------------------------------------------------


def _load(item_id: int) -> WorkItem | None:
    if not 0 < item_id <= MAX_ID:
        return None
    return WorkItem.objects.select_related(*RELATED).filter(pk=item_id).first()


def _not_found(item_id: int) -> ApiError:
    return ApiError(404, f"work item {item_id} does not exist")


def _item_for(user: Any, item_id: int) -> WorkItem:
    """The item, if `user` may act on it (assigned to them, their group or their queue); a 404
    otherwise, the same as for an id that does not exist."""
    item = _load(item_id)
    if item is None or not may_act(item, user):
        raise _not_found(item_id)
    return item


# --- serialisation ----------------------------------------------------------------------------


def _username(user: Any) -> str | None:
    return None if user is None else str(user.get_username())


def _assignee_json(item: WorkItem) -> dict[str, str]:
    """`name` is what reassign takes back: a username, a group name, a queue's api name."""
    if item.assignee_user is not None:
        return {
            "kind": "user",
            "name": item.assignee_user.get_username(),
            "label": person_name(item.assignee_user),
        }
    if item.assignee_group is not None:
        return {"kind": "group", "name": item.assignee_group.name, "label": item.assignee_group.name}
    assert item.assignee_queue is not None  # an item has exactly one assignee (a constraint)
    return {"kind": "queue", "name": item.assignee_queue.api_name, "label": item.assignee_queue.label}


def _record_json(item: WorkItem) -> dict[str, Any] | None:
    ct = item.record_type
    if ct is None or item.record_id is None:
        return None
    return {"type": f"{ct.app_label}.{ct.model}", "id": item.record_id, "label": item.run.record_label}


def _field_json(screen_key: str, f: ScreenField) -> dict[str, Any]:
    return {
        "name": f.name,
        "type": str(f.type),
        "label": f.label or f.name,
        "help": f.help,
        "required": f.required,
        "choices": list(f.choices),
        "screen": screen_key,
        "min_length": f.min_length,
        "max_length": f.max_length,
        "min_value": f.min_value,
        "max_value": f.max_value,
    }


def _actions(item: WorkItem, user: Any, *, acting: bool) -> list[str]:
    """What the caller can do with the item now (nothing unless they may act on it: `acting`).
    A `claim_required` step's group or queue item is completed only once claimed."""
    if not acting or item.status != WorkItemStatus.ASSIGNED:
        return []
    if item.claimed_by_id is not None and item.claimed_by_id != user.pk:
        return []  # someone else holds it
    if item.assignee_user_id is not None:
        return ["complete"]
    if item.claimed_by_id == user.pk:
        return ["complete", "release"]
    return ["claim"] if claim_needed(item, user, item.run) else ["complete", "claim"]


def workitem_json(item: WorkItem, user: Any, *, acting: bool = True) -> dict[str, Any]:
    """One item as the caller sees it; `item` loaded with RELATED. `acting`: the caller may act
    on it (a manager reassigning an item of others may not)."""
    flow: ScreenFlow = screen_flow_for(item)
    return {
        "id": item.pk,
        "url": reverse("workitems_api:work_item", args=[item.pk]),
        "label": item.label,
        "status": item.status,
        "run_id": item.run_id,
        "stage": item.step_run.stage_run.key,
        "step": item.step_run.key,
        "record": _record_json(item),
        "assignee": _assignee_json(item),
        "claimed_by": _username(item.claimed_by),
        "priority": Priority(item.priority).name.lower(),
        "due_at": item.due_at,
        "created_at": item.created_at,
        "completed_at": item.completed_at,
        "completed_by": _username(item.completed_by),
        "actions": _actions(item, user, acting=acting),
        "fields": [_field_json(screen.key, f) for screen in flow.screens for f in screen.fields],
    }


def _defaults(item: WorkItem) -> dict[str, Any]:
    """The values the Work Guide fills in before the person answers (fields with a `default`),
    evaluated now; an item no longer open has none."""
    if item.status != WorkItemStatus.ASSIGNED:
        return {}
    out: dict[str, Any] = {}
    for index in range(len(screen_flow_for(item).screens)):
        out.update(workitem_screen_defaults(item=item, screen=index))
    return out


def _closed_text(item: WorkItem) -> str:
    if item.status == WorkItemStatus.COMPLETED:
        who = _username(item.completed_by) or "the system"
        when = item.completed_at.isoformat() if item.completed_at else "earlier"
        return f"this item was already completed by {who} at {when}"
    return "this item was canceled: the step it belonged to ended or the run was stopped"


def _conflict(message: str, item_id: int, user: Any) -> ApiError:
    """A 409 with the item as it stands now (read again: the refusal came from a change)."""
    item = _load(item_id)
    if item is None or not may_act(item, user):
        return _not_found(item_id)
    if item.status != WorkItemStatus.ASSIGNED:
        message = _closed_text(item)
    return ApiError(409, message, extra={"work_item": workitem_json(item, user)})


def _refused(exc: PermissionDenied, item_id: int, user: Any) -> ApiError:
    """The service refused the caller after the item was loaded: moved to someone else since
    (404, as any item they may not act on), or held by someone else (409)."""
    return _conflict(str(exc) or "you may not act on this item now", item_id, user)


# --- the data a completion sends ----------------------------------------------------------------


def _active_user(value: Any) -> Any:
    """The active user a `user` field's value names: an id (a JSON integer or digits) or a
    username. None when there is no such person."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, str):
        value = value.strip()
        if value.isascii() and value.isdigit() and len(value) < 20:
            value = int(value)
        elif not value or len(value) > ASSIGNEE_MAX or "\x00" in value:
            return None
    if isinstance(value, int):
        lookup = {"pk": value} if 0 < value <= MAX_ID else None
    else:
        lookup = {User.USERNAME_FIELD: value}
    return User._default_manager.filter(is_active=True, **lookup).first() if lookup else None


def _prepared(flow: ScreenFlow, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """`data` as the Work Guide's form would hand it to the service, and what is wrong with it,
    as `{"data.<field>": [message]}` (every field at once).

    The flow's own check (`screen_flow_validate`, which the service runs again) decides each
    value; what the form adds is done here too: a `user` is an active person, stored by id as
    the form stores them; a date and time without an offset is in the server's time zone.
    Names that are no field of the flow are refused, so a typo is not silently dropped."""
    specs = {f.name: f for screen in flow.screens for f in screen.fields}
    errors: dict[str, list[str]] = {
        f"data.{name}": [f"not a field of this item's screen flow (its fields: {', '.join(specs)})"]
        for name in data
        if name not in specs
    }
    out = {name: value for name, value in data.items() if name in specs}
    for name, spec in specs.items():
        value = out.get(name)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, dict) or (isinstance(value, list) and spec.type != DataType.multi_choice):
            errors[f"data.{name}"] = [f"expected one {spec.type} value, not a JSON {type(value).__name__}"]
        elif spec.type == DataType.user:
            person = _active_user(value)
            if person is None:
                errors[f"data.{name}"] = [f"no active user {value!r}: give a username or a user id"]
            else:
                out[name] = person.pk
        elif spec.type == DataType.datetime and isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None  # well formed but impossible (a 25th hour): the flow says so
            if parsed is not None and timezone.is_naive(parsed):
                out[name] = timezone.make_aware(parsed).isoformat()
    _, field_errors = screen_flow_validate(flow, out)
    for name, message in field_errors.items():
        errors.setdefault(f"data.{name}", [message])
    return out, errors


# --- endpoints --------------------------------------------------------------------------------


@api_endpoint("GET")
def work_item_list(request: HttpRequest, user: Any) -> JsonResponse:
    """The caller's open items, oldest first (the longest waiting first, as on My Work)."""
    q = query_params(request, {"after_id", "limit"}, integers=frozenset({"after_id", "limit"}))
    limit = DEFAULT_PAGE
    if "limit" in q:
        limit = positive_id(q["limit"], "limit")
        if limit > MAX_PAGE:
            raise ApiError(400, {"limit": [f"must be between 1 and {MAX_PAGE}"]})
    qs = selectors.workitems_actionable(user=user).select_related(*RELATED).order_by("id")
    if "after_id" in q:
        qs = qs.filter(pk__gt=positive_id(q["after_id"], "after_id"))
    # One row more than asked says whether there is a next page without a COUNT.
    rows = list(qs[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    next_after = rows[-1].pk if more else None
    next_url = None
    if next_after is not None:
        next_url = reverse("workitems_api:work_items") + "?" + urlencode({**q, "after_id": str(next_after)})
    return JsonResponse(
        {"results": [workitem_json(i, user) for i in rows], "next_after_id": next_after, "next": next_url}
    )


@api_endpoint("GET")
def work_item_get(request: HttpRequest, user: Any, item_id: int) -> JsonResponse:
    item = _item_for(user, item_id)
    return JsonResponse({**workitem_json(item, user), "defaults": _defaults(item)})


@api_endpoint("POST")
def work_item_complete(request: HttpRequest, user: Any, item_id: int) -> JsonResponse:
    item = _item_for(user, item_id)
    if item.status != WorkItemStatus.ASSIGNED:
        raise _conflict(_closed_text(item), item_id, user)
    body = json_body(request)
    require_fields(body, {"data"})
    data = body.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApiError(400, {"data": [f"must be a JSON object, not {type(data).__name__}"]})
    data, errors = _prepared(screen_flow_for(item), data)
    if errors:
        raise ApiError(400, errors)
    try:
        workitem_complete(item=item, user=user, data=data)
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ApiError(400, {f"data.{k}": v for k, v in exc.message_dict.items()}) from None
        raise ApiError(400, {"data": exc.messages}) from None
    except WorkItemClosed as exc:
        # Completed or canceled meanwhile, or the run is suspended: nothing was stored.
        raise _conflict(str(exc), item_id, user) from None
    except PermissionDenied as exc:
        raise _refused(exc, item_id, user) from None
    return JsonResponse(workitem_json(_item_for(user, item_id), user))


@api_endpoint("POST")
def work_item_claim(request: HttpRequest, user: Any, item_id: int) -> JsonResponse:
    item = _item_for(user, item_id)
    try:
        workitem_claim(item=item, user=user)
    except WorkItemClosed as exc:
        raise _conflict(str(exc), item_id, user) from None
    except ValidationError as exc:
        # One person's item (nothing to claim), or someone else holds it.
        raise _conflict(" ".join(exc.messages), item_id, user) from None
    except PermissionDenied as exc:
        raise _refused(exc, item_id, user) from None
    return JsonResponse(workitem_json(_item_for(user, item_id), user))


@api_endpoint("POST")
def work_item_release(request: HttpRequest, user: Any, item_id: int) -> JsonResponse:
    item = _item_for(user, item_id)
    if item.status != WorkItemStatus.ASSIGNED:
        raise _conflict(_closed_text(item), item_id, user)
    try:
        workitem_release(item=item, user=user)
    except WorkItemClosed:
        raise _conflict(_closed_text(_item_for(user, item_id)), item_id, user) from None
    except PermissionDenied:
        raise _conflict("you do not hold this item, so there is nothing to release", item_id, user) from None
    return JsonResponse(workitem_json(_item_for(user, item_id), user))


def _new_assignee(kind: str, name: str) -> Any:
    """The active user (by username), group (by name) or queue (by api name) `name` names."""
    if kind == "user":
        found: Any = User._default_manager.filter(is_active=True, **{User.USERNAME_FIELD: name}).first()
    elif kind == "group":
        found = Group.objects.filter(name=name).first()
    else:
        found = Queue.objects.filter(api_name=name).first()
    if found is None:
        missing = {"user": "active user", "group": "group", "queue": "queue"}[kind]
        raise ApiError(400, {kind: [f"there is no {missing} {name!r}"]})
    return found


@api_endpoint("POST", all_perms=(PERM_VIEW, PERM_REASSIGN))
def work_item_reassign(request: HttpRequest, user: Any, item_id: int) -> JsonResponse:
    """Move an open item to another user, group or queue (any item: managers see them all on
    the Work Items page); the new assignee is emailed."""
    item = _load(item_id)
    if item is None:
        raise _not_found(item_id)
    body = json_body(request)
    require_fields(body, {*ASSIGNEE_KINDS, "reason"})
    named = [k for k in ASSIGNEE_KINDS if k in body]
    if len(named) != 1:
        raise ApiError(
            400,
            "name exactly one new assignee: user (a username), group (a group's name) or queue "
            "(a queue's api name)",
        )
    kind = named[0]
    target = _new_assignee(kind, text_field(body, kind, max_length=ASSIGNEE_MAX, required=True))
    reason = text_field(body, "reason", max_length=REASSIGN_REASON_MAX)
    if item.status != WorkItemStatus.ASSIGNED:
        raise _manager_conflict(item, user)
    try:
        workitem_reassign(item=item, actor=user, reason=reason, **{kind: target})
    except WorkItemClosed:
        raise _manager_conflict(_load(item_id) or item, user) from None
    except ValidationError as exc:
        raise ApiError(400, " ".join(exc.messages)) from None
    fresh = _load(item_id) or item
    return JsonResponse(workitem_json(fresh, user, acting=may_act(fresh, user)))


def _manager_conflict(item: WorkItem, user: Any) -> ApiError:
    """A 409 for a manager: the item closed (they may see it whether or not it is theirs)."""
    return ApiError(
        409, _closed_text(item), extra={"work_item": workitem_json(item, user, acting=may_act(item, user))}
    )
