"""The OpenAPI 3.1 document of the JSON API (served at /api/openapi.json).

Hand-written next to api.py: the API is small, and a document written for readers says more
than one generated from code. Other apps describe their own endpoints with the helpers here and
register them (registry.register_api_paths; workitems/openapi.py). tests/orchestration/
test_api.py checks that every route is described and that every $ref resolves.
"""

from __future__ import annotations

from typing import Any

from .models import RunStatus, StageStatus
from .registry import API_PATHS, API_SCHEMAS
from .selectors import MAX_ID


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def path_id(name: str, description: str = "") -> dict[str, Any]:
    """A path parameter that is an id (the API answers 404 for one above MAX_ID)."""
    param: dict[str, Any] = {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    if description:
        param["description"] = description
    return param


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional JSON request body (an empty body is the same as `{}`)."""
    return {"required": False, "content": {"application/json": {"schema": schema}}}


DATETIME = {"type": ["string", "null"], "format": "date-time"}
# Text the API stores: no NUL character (PostgreSQL cannot hold one; the API refuses it).
NO_NUL = "^[^\\x00]*$"
REASON = {
    "type": ["string", "null"],
    "maxLength": 1000,
    "pattern": NO_NUL,
    "description": "Why, kept in the run's events.",
}

# A stage or step key as the migration mapping takes it (api.py KEY_MAX).
KEY = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": NO_NUL}
KEY_PAIRS = {"type": ["object", "null"], "propertyNames": KEY, "additionalProperties": KEY}

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
        "required": ["id", "key", "kind", "status", "attempts", "error", "outputs"],
        "properties": {
            "id": {
                "type": "integer",
                "description": "The step run's id: what retry, skip and resume take as `step_run_id`.",
            },
            "key": {"type": "string"},
            "kind": {"type": "string", "enum": ["interactive", "background", "wait"]},
            "status": {"type": "string", "enum": list(StageStatus.values)},
            "attempts": {"type": "integer", "description": "Tries so far (background steps)."},
            "error": {"type": ["string", "null"]},
            "outputs": {"type": "object", "additionalProperties": True},
            "started_at": DATETIME,
            "ended_at": DATETIME,
            "wake_at": {
                **DATETIME,
                "description": "Wait steps: when the wait resumes (or a condition's timeout fails it).",
            },
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
            "steps": {"type": "array", "items": ref("Step")},
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
            "record": nullable(ref("Record")),
            "started_at": DATETIME,
            "ended_at": DATETIME,
            "started_by": {"type": ["string", "null"], "description": "Username; null for the system."},
            "error": {"type": ["string", "null"]},
        },
    },
    "Run": {
        "allOf": [
            ref("RunSummary"),
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
                        "items": ref("Stage"),
                    },
                },
            },
        ]
    },
    "RunPage": {
        "type": "object",
        "required": ["results", "next_after_id", "next"],
        "properties": {
            "results": {"type": "array", "items": ref("RunSummary")},
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
            "start": nullable(
                {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["record", "autolaunched"]},
                        "record_type": {"type": ["string", "null"]},
                    },
                }
            ),
            "inputs": {"type": "array", "items": ref("Input")},
            "launch_url": {"type": "string"},
        },
    },
    "ReasonRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": REASON},
        "example": {"reason": "Duplicate of run 56"},
    },
    "SkipRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "outputs": {
                "type": ["object", "null"],
                "additionalProperties": True,
                "description": "Outputs the step gives, as if its flow had: each a name among the "
                "flow's outputs (a screen flow's: its fields), coerced to its type. Left out: not "
                "given.",
            },
            "reason": REASON,
        },
        "example": {"outputs": {"score": 40}, "reason": "Scored by hand: the service is down"},
    },
    "MigrationRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["from_version", "to_version"],
        "properties": {
            "from_version": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "The version the runs are on.",
            },
            "to_version": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "The version to move them to (another version of the same orchestration).",
            },
            "mapping": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "description": "Renames, old key to new key; every stage and step not named maps by "
                "its key. A key the version does not have is a 400 naming it.",
                "properties": {"stages": KEY_PAIRS, "steps": KEY_PAIRS},
            },
            "run_ids": {
                "type": ["array", "null"],
                "minItems": 1,
                "maxItems": 10_000,
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                "description": "Only these runs (left out: every open run of `from_version`). One that "
                "is not an open run of that version is refused.",
            },
        },
        "example": {
            "from_version": 1,
            "to_version": 2,
            "mapping": {"stages": {"review": "approval"}, "steps": {"check": "verify"}},
        },
    },
    "MigrationRefusals": {
        "type": "object",
        "required": ["refused", "reasons", "refused_runs", "refused_runs_complete"],
        "properties": {
            "refused": {"type": "integer", "description": "Runs that cannot move (left as they are)."},
            "reasons": {
                "type": "array",
                "description": "Each reason with how many runs it holds back, most first.",
                "items": {
                    "type": "object",
                    "required": ["reason", "runs"],
                    "properties": {"reason": {"type": "string"}, "runs": {"type": "integer"}},
                },
            },
            "refused_runs": {
                "type": "array",
                "description": "The refused runs by id, each with its reason (the first 1,000).",
                "items": {
                    "type": "object",
                    "required": ["id", "reason"],
                    "properties": {"id": {"type": "integer"}, "reason": {"type": "string"}},
                },
            },
            "refused_runs_complete": {
                "type": "boolean",
                "description": "False when there are more refused runs than `refused_runs` lists.",
            },
        },
    },
    "MigrationPreview": {
        "allOf": [
            ref("MigrationRefusals"),
            {
                "type": "object",
                "required": ["orchestration", "from_version", "to_version", "runs", "movable"],
                "properties": {
                    "orchestration": {"type": "string"},
                    "from_version": {"type": "integer"},
                    "to_version": {"type": "integer"},
                    "runs": {"type": "integer", "description": "Open runs considered."},
                    "movable": {"type": "integer", "description": "Of those, the runs that can move."},
                },
            },
        ],
        "example": {
            "orchestration": "proc",
            "from_version": 1,
            "to_version": 2,
            "runs": 40,
            "movable": 30,
            "refused": 10,
            "reasons": [
                {"reason": "its current stage 'pay' is not in the new version (map it to one)", "runs": 10}
            ],
            "refused_runs": [
                {"id": 7, "reason": "its current stage 'pay' is not in the new version (map it to one)"}
            ],
            "refused_runs_complete": False,
        },
    },
    "MigrationOutcome": {
        "allOf": [
            ref("MigrationRefusals"),
            {
                "type": "object",
                "required": ["orchestration", "from_version", "to_version", "migrated"],
                "properties": {
                    "orchestration": {"type": "string"},
                    "from_version": {"type": "integer"},
                    "to_version": {"type": "integer"},
                    "migrated": {"type": "integer", "description": "Runs moved to `to_version`."},
                },
            },
        ]
    },
    "OrchestrationList": {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": ref("Orchestration")}},
    },
}

RESPONSES: dict[str, Any] = {
    "BadRequest": json_response(ref("Errors"), "The request is malformed; the errors say what to fix."),
    "Unauthorized": json_response(ref("Errors"), "No token, or the token is not valid."),
    "Forbidden": json_response(ref("Errors"), "The token's user lacks the permission named in the message."),
    "NotFound": json_response(
        ref("Errors"), "It does not exist, or the caller may not know it does (ids cannot be probed)."
    ),
    "MethodNotAllowed": json_response(
        ref("Errors"), "Wrong HTTP method; the Allow header lists the right ones."
    ),
    "Conflict": json_response(
        ref("Errors"), "Not possible in the state it is in now; the message says why (nothing was changed)."
    ),
    "TooLarge": json_response(ref("Errors"), "The body is larger than the server accepts."),
}

PARAM_API_NAME = {"name": "api_name", "in": "path", "required": True, "schema": {"type": "string"}}
PARAM_RUN_ID = path_id("run_id")
PARAM_STEP_RUN_ID = path_id("step_run_id", "A step run of this run (`stages[].steps[].id` of the run).")


def run_action(
    operation_id: str, summary: str, description: str, body: str, params: list[dict[str, Any]]
) -> dict[str, Any]:
    """A POST that acts on a run and answers with the run as it then stands."""
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "parameters": params,
            "requestBody": json_body(ref(body)),
            "responses": {
                "200": json_response(ref("Run"), "The run once the action is done."),
                "400": error("BadRequest"),
                "401": error("Unauthorized"),
                "403": error("Forbidden"),
                "404": error("NotFound"),
                "405": error("MethodNotAllowed"),
                "409": error("Conflict"),
                "413": error("TooLarge"),
            },
        }
    }


def migration_action(
    operation_id: str, summary: str, description: str, answer: str, answer_description: str
) -> dict[str, Any]:
    """A POST about moving an orchestration's running runs between its versions."""
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "parameters": [PARAM_API_NAME],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("MigrationRequest")}},
            },
            "responses": {
                "200": json_response(ref(answer), answer_description),
                "400": error("BadRequest"),
                "401": error("Unauthorized"),
                "403": error("Forbidden"),
                "404": error("NotFound"),
                "405": error("MethodNotAllowed"),
                "413": error("TooLarge"),
            },
        }
    }


def query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


PATHS: dict[str, Any] = {
    "/api/orchestrations": {
        "get": {
            "operationId": "listOrchestrations",
            "summary": "Orchestrations, with their active version and declared inputs",
            "description": "Needs `orchestration.view_orchestration` or "
            "`orchestration.launch_orchestration`.",
            "responses": {
                "200": json_response(ref("OrchestrationList"), "All orchestrations, by api name."),
                "401": error("Unauthorized"),
                "403": error("Forbidden"),
                "405": error("MethodNotAllowed"),
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
                "content": {"application/json": {"schema": ref("LaunchRequest")}},
            },
            "responses": {
                "201": {
                    **json_response(ref("Run"), "The run, as just launched."),
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "The run's URL."}},
                },
                "400": error("BadRequest"),
                "401": error("Unauthorized"),
                "403": error("Forbidden"),
                "404": error("NotFound"),
                "405": error("MethodNotAllowed"),
                "413": error("TooLarge"),
            },
        }
    },
    "/api/orchestrations/{api_name}/migrations/preview": migration_action(
        "previewRunMigration",
        "Preview moving running runs to another version",
        "Needs `orchestration.view_run` or `orchestration.view_orchestration`, and "
        "`orchestration.import_definitions` (as the version page's *Migrate runs here*). Says how "
        "many open runs of `from_version` can move to `to_version` with the mapping, and why the "
        "others cannot. Changes nothing.",
        "MigrationPreview",
        "What would move, and why the others would not.",
    ),
    "/api/orchestrations/{api_name}/migrations": migration_action(
        "migrateRuns",
        "Move running runs to another version",
        "The same permissions as the preview. Moves the open runs of `from_version` (or only "
        "`run_ids`) that can move, each in a transaction of its own under its run lock and judged "
        "again there, with an `orchestration.run.migrated` event each; a refused run is left "
        "exactly as it was. Answers once every run is done (in the request: give `run_ids` in "
        "chunks for very many runs).",
        "MigrationOutcome",
        "How many runs moved, and why the others did not.",
    ),
    "/api/runs": {
        "get": {
            "operationId": "listRuns",
            "summary": "Runs, newest first, keyset-paginated",
            "description": "Needs `orchestration.view_run`. Follow `next` (or pass `next_after_id` as "
            "`after_id`) until it is null; pages stay stable while new runs are launched.",
            "parameters": [
                query_param("orchestration", {"type": "string"}, "An orchestration's api name."),
                query_param("status", {"type": "string", "enum": list(RunStatus.values)}, "Run status."),
                query_param(
                    "record_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "Runs on this record."
                ),
                query_param(
                    "after_id",
                    {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    "Only runs with a smaller id.",
                ),
                query_param(
                    "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."
                ),
            ],
            "responses": {
                "200": json_response(ref("RunPage"), "One page of runs."),
                "400": error("BadRequest"),
                "401": error("Unauthorized"),
                "403": error("Forbidden"),
                "405": error("MethodNotAllowed"),
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
                "200": json_response(ref("Run"), "The run."),
                "401": error("Unauthorized"),
                "403": error("Forbidden"),
                "404": error("NotFound"),
                "405": error("MethodNotAllowed"),
            },
        }
    },
    "/api/runs/{run_id}/cancel": run_action(
        "cancelRun",
        "Cancel a run",
        "Needs `orchestration.view_run` and `orchestration.cancel_run`. The run ends as canceled: "
        "its open steps are discontinued and their work items canceled. A run that is completed "
        "or canceled already answers 409.",
        "ReasonRequest",
        [PARAM_RUN_ID],
    ),
    "/api/runs/{run_id}/steps/{step_run_id}/retry": run_action(
        "retryRunStep",
        "Retry a failed step",
        "Needs `orchestration.view_run` and `orchestration.retry_step`. The step starts again: a "
        "background step's flow runs as a new attempt (on a worker, after the answer), an "
        "interactive step gets a new work item. Only a failed step of the stage in progress, in a "
        "run in progress or in error, can be retried: anything else answers 409 saying why.",
        "ReasonRequest",
        [PARAM_RUN_ID, PARAM_STEP_RUN_ID],
    ),
    "/api/runs/{run_id}/steps/{step_run_id}/skip": run_action(
        "skipRunStep",
        "Skip a failed step, giving its outputs",
        "Needs `orchestration.view_run` and `orchestration.skip_step`. The step is completed with "
        "the outputs given (as if its flow had given them) and the run moves on. Only a failed step "
        "of the stage in progress can be skipped (409 otherwise); an output the flow does not have, "
        "or of the wrong type, is a 400 naming it (`outputs.<name>`).",
        "SkipRequest",
        [PARAM_RUN_ID, PARAM_STEP_RUN_ID],
    ),
    "/api/runs/{run_id}/steps/{step_run_id}/resume": run_action(
        "resumeRunStep",
        "Resume a waiting wait step now",
        "Needs `orchestration.view_run` and `orchestration.retry_step` (as the run page's *Resume "
        "now*). The wait step completes at once, as if its time had come, and the run moves on. "
        "Only a wait step that is waiting, in a run in progress, can be resumed: anything else "
        "answers 409 saying why.",
        "ReasonRequest",
        [PARAM_RUN_ID, PARAM_STEP_RUN_ID],
    ),
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
    """The whole document: this app's paths and those other apps registered."""
    clash = sorted((set(PATHS) & set(API_PATHS)) | (set(SCHEMAS) & set(API_SCHEMAS)))
    assert not clash, f"described twice: {clash}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flow Orchestration API",
            "version": "1",
            "description": (
                "Launch orchestrations, follow and act on their runs, and do the work they assign. "
                "Authenticate every request with "
                "`Authorization: Bearer <token>`; create a token on the *API tokens* page or with "
                "`python manage.py api_token create USERNAME --name NAME`. Tokens expire (90 days by "
                "default) and can be revoked: a 401 says which. Errors are JSON: "
                '`{"errors": {"<field>": ["message"]}}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {**PATHS, **API_PATHS},
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
            "schemas": {**SCHEMAS, **API_SCHEMAS},
            "responses": RESPONSES,
        },
    }
