"""The OpenAPI description of the work item endpoints (workitems/api.py), registered with the
engine's registry in WorkitemsConfig.ready() and merged by orchestration/openapi.py into the one
document served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from orchestration.definitions import DataType
from orchestration.openapi import (
    DATETIME,
    NO_NUL,
    error,
    json_body,
    json_response,
    nullable,
    path_id,
    query_param,
    ref,
)
from orchestration.selectors import MAX_ID

from .models import Priority, WorkItemStatus

SCREEN_FIELD_TYPES = [t.value for t in DataType if t != DataType.json]  # screen fields cannot be json
NAME = {"type": "string", "minLength": 1, "maxLength": 150, "pattern": NO_NUL}

SCHEMAS: dict[str, Any] = {
    "WorkItemField": {
        "type": "object",
        "description": "A field of the item's screen flow: what `data` of a completion holds.",
        "required": ["name", "type", "label", "required", "choices", "screen"],
        "properties": {
            "name": {"type": "string", "description": "The key to send in `data`."},
            "type": {"type": "string", "enum": SCREEN_FIELD_TYPES},
            "label": {"type": "string"},
            "help": {"type": "string"},
            "required": {"type": "boolean"},
            "choices": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The values a choice or multi_choice field accepts (empty for other types).",
            },
            "screen": {"type": "string", "description": "The key of the screen the field is on."},
            "min_length": {"type": ["integer", "null"]},
            "max_length": {"type": ["integer", "null"]},
            "min_value": {"type": ["number", "null"]},
            "max_value": {"type": ["number", "null"]},
        },
    },
    "WorkItemAssignee": {
        "type": "object",
        "required": ["kind", "name", "label"],
        "properties": {
            "kind": {"type": "string", "enum": ["user", "group", "queue"]},
            "name": {
                "type": "string",
                "description": "A username, a group's name or a queue's api name (what reassign takes).",
            },
            "label": {"type": "string", "description": "How the pages name it."},
        },
    },
    "WorkItem": {
        "type": "object",
        "required": [
            "id",
            "url",
            "label",
            "status",
            "run_id",
            "stage",
            "step",
            "record",
            "assignee",
            "claimed_by",
            "priority",
            "actions",
            "fields",
        ],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "label": {"type": "string"},
            "status": {"type": "string", "enum": list(WorkItemStatus.values)},
            "run_id": {"type": "integer"},
            "stage": {"type": "string", "description": "The key of the step's stage."},
            "step": {"type": "string", "description": "The key of the step the item is for."},
            "record": nullable(ref("Record")),
            "assignee": ref("WorkItemAssignee"),
            "claimed_by": {"type": ["string", "null"], "description": "Username of who holds it."},
            "priority": {"type": "string", "enum": [p.name.lower() for p in Priority]},
            "due_at": DATETIME,
            "created_at": DATETIME,
            "completed_at": DATETIME,
            "completed_by": {"type": ["string", "null"], "description": "Username; null while open."},
            "actions": {
                "type": "array",
                "items": {"type": "string", "enum": ["complete", "claim", "release"]},
                "description": "What the caller can do now.",
            },
            "fields": {"type": "array", "items": ref("WorkItemField")},
        },
    },
    "WorkItemDetail": {
        "allOf": [
            ref("WorkItem"),
            {
                "type": "object",
                "required": ["defaults"],
                "properties": {
                    "defaults": {
                        "type": "object",
                        "additionalProperties": True,
                        "description": "The values the Work Guide fills in for fields with a "
                        "`default`, evaluated now: send them in `data` to keep them.",
                    }
                },
            },
        ]
    },
    "WorkItemPage": {
        "type": "object",
        "required": ["results", "next_after_id", "next"],
        "properties": {
            "results": {"type": "array", "items": ref("WorkItem")},
            "next_after_id": {
                "type": ["integer", "null"],
                "description": "Pass as `after_id` for the next page; null on the last page.",
            },
            "next": {"type": ["string", "null"], "description": "URL of the next page."},
        },
    },
    "WorkItemConflict": {
        "description": "A 409: the message says why, `work_item` is the item as it now stands.",
        "allOf": [
            ref("Errors"),
            {"type": "object", "required": ["work_item"], "properties": {"work_item": ref("WorkItem")}},
        ],
    },
    "CompleteRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "data": {
                "type": ["object", "null"],
                "additionalProperties": True,
                "description": "A value per field of the screen flow (every screen's), by field "
                "name; see docs/api.md for each type's format.",
            }
        },
        "example": {"data": {"approved": True, "amount": "1250.00", "comment": "Within budget"}},
    },
    "ReassignRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "Exactly one of `user`, `group` or `queue`.",
        "properties": {
            "user": {**NAME, "description": "An active user's username."},
            "group": {**NAME, "description": "A group's name."},
            "queue": {**NAME, "description": "A queue's api name."},
            "reason": {
                "type": ["string", "null"],
                "maxLength": 500,
                "pattern": NO_NUL,
                "description": "Kept in the run's events.",
            },
        },
        "oneOf": [{"required": ["user"]}, {"required": ["group"]}, {"required": ["queue"]}],
        "example": {"queue": "triage", "reason": "Dana is on leave"},
    },
}

PARAM_ITEM_ID = path_id("item_id")
CONFLICT = json_response(
    ref("WorkItemConflict"), "Not possible in the item's state now; nothing was changed."
)
NOT_FOUND = json_response(
    ref("Errors"), "No such item, or one the caller may not act on (the two answer the same)."
)


def _action(
    operation_id: str, summary: str, description: str, body: str | None = None, *, manager: bool = False
) -> dict[str, Any]:
    """A POST on one item that answers with the item as it then stands. `manager`: it needs
    permissions (403 without them) and works on any item (404 only for one that does not exist)."""
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "parameters": [PARAM_ITEM_ID],
        "responses": {
            "200": json_response(ref("WorkItem"), "The item once the action is done."),
            "401": error("Unauthorized"),
            "404": error("NotFound") if manager else NOT_FOUND,
            "405": error("MethodNotAllowed"),
            "409": CONFLICT,
        },
    }
    if manager:
        op["responses"]["403"] = error("Forbidden")
    if body is not None:
        op["requestBody"] = json_body(ref(body))
        op["responses"] |= {"400": error("BadRequest"), "413": error("TooLarge")}
    return {"post": op}


PATHS: dict[str, Any] = {
    "/api/work-items": {
        "get": {
            "operationId": "listWorkItems",
            "summary": "The caller's open work items, oldest first",
            "description": "The items My Work lists: assigned to the caller, to one of their groups, "
            "or to a queue they belong to (directly or through a group). No permission is needed. "
            "Follow `next` until it is null.",
            "parameters": [
                query_param(
                    "after_id",
                    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    "Only items with a larger id.",
                ),
                query_param(
                    "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."
                ),
            ],
            "responses": {
                "200": json_response(ref("WorkItemPage"), "One page of items."),
                "400": error("BadRequest"),
                "401": error("Unauthorized"),
                "405": error("MethodNotAllowed"),
            },
        }
    },
    "/api/work-items/{item_id}": {
        "get": {
            "operationId": "getWorkItem",
            "summary": "One work item, with its screen flow's fields and their defaults",
            "description": "Any item the caller may act on, open or not.",
            "parameters": [PARAM_ITEM_ID],
            "responses": {
                "200": json_response(ref("WorkItemDetail"), "The item."),
                "401": error("Unauthorized"),
                "404": NOT_FOUND,
                "405": error("MethodNotAllowed"),
            },
        }
    },
    "/api/work-items/{item_id}/complete": _action(
        "completeWorkItem",
        "Complete the item with its screen flow's values",
        "As Finish in the Work Guide: every field of every screen is checked, the values become the "
        "step's outputs and the run moves on. A value that does not fit is a 400 naming it "
        "(`data.<field>`) and nothing is stored. An item completed already (by anyone), canceled, "
        "held by someone else, or whose run is suspended answers 409.",
        "CompleteRequest",
    ),
    "/api/work-items/{item_id}/claim": _action(
        "claimWorkItem",
        "Take a group's or a queue's item",
        "The others then see who holds it, and only the holder can complete it (a step with "
        "`claim_required` is completed only once claimed: its item lists `claim` and not "
        "`complete` in `actions` until then). An item assigned to one person, or held by someone "
        "else, answers 409. Claiming an item one holds already changes nothing.",
    ),
    "/api/work-items/{item_id}/release": _action(
        "releaseWorkItem",
        "Give a claimed item back to its group or queue",
        "Only the holder can release an item; anyone else gets 409.",
    ),
    "/api/work-items/{item_id}/reassign": _action(
        "reassignWorkItem",
        "Move an open item to another user, group or queue",
        "Needs `workitems.view_workitem` and `workitems.reassign_workitem` (as the Work Items page); "
        "any item may be moved, not only the caller's. Who holds it is cleared and the new assignee "
        "is emailed. An unknown user, group or queue is a 400; an item no longer open is a 409.",
        "ReassignRequest",
        manager=True,
    ),
}
