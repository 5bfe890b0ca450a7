"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json).

Hand-written next to api.py: the API is small, and a document written for readers says more
than one generated from code. tests/orchestration/test_api.py checks that every route is
described and that every $ref resolves.
"""

from __future__ import annotations

from typing import Any

from .models import RunStatus, StageStatus
from .selectors import MAX_ID


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


DATETIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Errors": {
        "type": "object",
        "description": (
            "Every error answer. Keys are the field at fault (`record_id`, `inputs.<name>`, a query "
            "parameter) or `__all__` for the request as a whole; values are messages."
        ),
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            }
        },
        "example": {"errors": {"inputs.amount": ["expected a value of type number"]}},
    },
    "LaunchRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "record_id": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "The record to anchor the run on (required when the orchestration "
                "runs on a record type).",
            },
            "inputs": {
                "type": ["object", "null"],
                "description": "Values of the orchestration's declared inputs, coerced to their types "
                '(`"42"` is accepted for a number, `"yes"` for a boolean); null is the same as `{}`.',
                "additionalProperties": True,
            },
        },
        "example": {"record_id": 12, "inputs": {"amount": 2500, "reason": "New laptop"}},
    },
    "Record": {
        "type": "object",
        "required": ["type", "id", "label"],
        "properties": {
            "type": {"type": "string", "description": "The record's model, e.g. `records.record`."},
            "id": {"type": "integer"},
            "label": {"type": "string"},
        },
    },
    "Step": {
        "type": "object",
        "required": ["key", "kind", "status", "attempts", "error", "outputs"],
        "properties": {
            "key": {"type": "string"},
            "kind": {"type": "string", "enum": ["interactive", "background"]},
            "status": {"type": "string", "enum": list(StageStatus.values)},
            "attempts": {"type": "integer", "description": "Tries so far (background steps)."},
            "error": {"type": ["string", "null"]},
            "outputs": {"type": "object", "additionalProperties": True},
            "started_at": DATETIME,
            "ended_at": DATETIME,
        },
    },
    "Stage": {
        "type": "object",
        "required": ["key", "status", "steps"],
        "properties": {
            "key": {"type": "string"},
            "status": {"type": "string", "enum": list(StageStatus.values)},
            "started_at": DATETIME,
            "ended_at": DATETIME,
            "outcome": {"type": ["string", "null"], "description": "The routing decision taken."},
            "steps": {"type": "array", "items": _ref("Step")},
        },
    },
    "RunSummary": {
        "type": "object",
        "required": ["id", "url", "orchestration", "version", "status", "record"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "orchestration": {"type": "string", "description": "The orchestration's api name."},
            "version": {"type": "integer", "description": "The version the run is pinned to."},
            "status": {"type": "string", "enum": list(RunStatus.values)},
            "current_stage": {"type": ["string", "null"]},
            "record": _nullable(_ref("Record")),
            "started_at": DATETIME,
            "ended_at": DATETIME,
            "started_by": {"type": ["string", "null"], "description": "Username; null for the system."},
            "error": {"type": ["string", "null"]},
        },
    },
    "Run": {
        "allOf": [
            _ref("RunSummary"),
            {
                "type": "object",
                "required": ["variables", "inputs", "stages"],
                "properties": {
                    "variables": {"type": "object", "additionalProperties": True},
                    "inputs": {"type": "object", "additionalProperties": True},
                    "stages": {
                        "type": "array",
                        "description": "Stage runs in the order they started (a stage entered twice "
                        "appears twice).",
                        "items": _ref("Stage"),
                    },
                },
            },
        ]
    },
    "RunPage": {
        "type": "object",
        "required": ["results", "next_after_id", "next"],
        "properties": {
            "results": {"type": "array", "items": _ref("RunSummary")},
            "next_after_id": {
                "type": ["integer", "null"],
                "description": "Pass as `after_id` for the next page; null on the last page.",
            },
            "next": {"type": ["string", "null"], "description": "URL of the next page."},
        },
    },
    "Input": {
        "type": "object",
        "required": ["name", "type", "required"],
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string"},
            "required": {"type": "boolean"},
            "description": {"type": "string"},
        },
    },
    "Orchestration": {
        "type": "object",
        "required": ["api_name", "label", "active_version", "inputs", "launch_url"],
        "properties": {
            "api_name": {"type": "string"},
            "label": {"type": "string"},
            "description": {"type": "string"},
            "active_version": {"type": ["integer", "null"]},
            "start": _nullable(
                {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["record", "autolaunched"]},
                        "record_type": {"type": ["string", "null"]},
                    },
                }
            ),
            "inputs": {"type": "array", "items": _ref("Input")},
            "launch_url": {"type": "string"},
        },
    },
    "OrchestrationList": {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": _ref("Orchestration")}},
    },
}

RESPONSES: dict[str, Any] = {
    "BadRequest": _json(_ref("Errors"), "The request is malformed; the errors say what to fix."),
    "Unauthorized": _json(_ref("Errors"), "No token, or the token is not valid."),
    "Forbidden": _json(_ref("Errors"), "The token's user lacks the permission named in the message."),
    "NotFound": _json(_ref("Errors"), "The run, orchestration or record does not exist."),
    "MethodNotAllowed": _json(_ref("Errors"), "Wrong HTTP method; the Allow header lists the right ones."),
}

PARAM_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
}


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PATHS: dict[str, Any] = {
    "/api/orchestrations": {
        "get": {
            "operationId": "listOrchestrations",
            "summary": "Orchestrations, with their active version and declared inputs",
            "description": "Needs `orchestration.view_orchestration` or "
            "`orchestration.launch_orchestration`.",
            "responses": {
                "200": _json(_ref("OrchestrationList"), "All orchestrations, by api name."),
                "401": _error("Unauthorized"),
                "403": _error("Forbidden"),
                "405": _error("MethodNotAllowed"),
            },
        }
    },
    "/api/orchestrations/{api_name}/runs": {
        "post": {
            "operationId": "launchRun",
            "summary": "Launch a run of the orchestration's active version",
            "description": "Needs `orchestration.launch_orchestration`. The run starts at once and "
            "advances as far as it can (background steps run after the response on a worker).",
            "parameters": [
                {"name": "api_name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("LaunchRequest")}},
            },
            "responses": {
                "201": {
                    **_json(_ref("Run"), "The run, as just launched."),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "The run's URL."}},
                },
                "400": _error("BadRequest"),
                "401": _error("Unauthorized"),
                "403": _error("Forbidden"),
                "404": _error("NotFound"),
                "405": _error("MethodNotAllowed"),
                "413": _json(_ref("Errors"), "The body is larger than the server accepts."),
            },
        }
    },
    "/api/runs": {
        "get": {
            "operationId": "listRuns",
            "summary": "Runs, newest first, keyset-paginated",
            "description": "Needs `orchestration.view_run`. Follow `next` (or pass `next_after_id` as "
            "`after_id`) until it is null; pages stay stable while new runs are launched.",
            "parameters": [
                _query_param("orchestration", {"type": "string"}, "An orchestration's api name."),
                _query_param("status", {"type": "string", "enum": list(RunStatus.values)}, "Run status."),
                _query_param(
                    "record_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Runs on this record."
                ),
                _query_param(
                    "after_id",
                    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    "Only runs with a smaller id.",
                ),
                _query_param(
                    "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."
                ),
            ],
            "responses": {
                "200": _json(_ref("RunPage"), "One page of runs."),
                "400": _error("BadRequest"),
                "401": _error("Unauthorized"),
                "403": _error("Forbidden"),
                "405": _error("MethodNotAllowed"),
            },
        }
    },
    "/api/runs/{run_id}": {
        "get": {
            "operationId": "getRun",
            "summary": "A run with its stages, steps, variables and inputs",
            "description": "Needs `orchestration.view_run`.",
            "parameters": [PARAM_RUN_ID],
            "responses": {
                "200": _json(_ref("Run"), "The run."),
                "401": _error("Unauthorized"),
                "403": _error("Forbidden"),
                "404": _error("NotFound"),
                "405": _error("MethodNotAllowed"),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {"description": "The OpenAPI document.", "content": {"application/json": {}}}
            },
        }
    },
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flow Orchestration API",
            "version": "1",
            "description": (
                "Launch orchestrations and follow their runs. Authenticate every request with "
                "`Authorization: Bearer <token>`; create a token on the *API tokens* page or with "
                "`python manage.py api_token create USERNAME --name NAME`. Tokens expire (90 days by "
                "default) and can be revoked: a 401 says which. Errors are JSON: "
                '`{"errors": {"<field>": ["message"]}}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A token from the API tokens page (/account/tokens/), `manage.py api_token create` "
                        "or the admin."
                    ),
                }
            },
            "schemas": SCHEMAS,
            "responses": RESPONSES,
        },
    }
