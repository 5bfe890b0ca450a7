"""The API walk, generated from the OpenAPI document (GET /api/openapi.json): every path and
method, with no token, a malformed header, an unknown token, a revoked (deleted) token, the
token of a deactivated user, and the token of each persona. API_ACCESS says what each gets; an
operation missing from it fails, and so does an API route of the URL conf that the document
does not describe."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from orchestration import api
from orchestration.openapi import openapi_document

from .support import (
    E401,
    E403,
    E404,
    E405,
    LOGGED_IN,
    OK,
    Allowed,
    Expect,
    Outcome,
    Route,
    check_response,
    db_state,
    url_routes,
)

pytestmark = pytest.mark.django_db

S = SimpleNamespace
CALLERS = (
    "no token",
    "not bearer",
    "unknown token",
    "revoked token",
    "expired token",
    "deleted token",
    "inactive user",
    *LOGGED_IN,
)
UNAUTHENTICATED = {c: E401 for c in CALLERS[:7]}
METHODS = ("get", "post", "put", "patch", "delete")


def admin_only(allowed: Expect) -> dict[str, Expect]:
    return UNAUTHENTICATED | {p: E403 for p in LOGGED_IN} | {"admin": allowed}


def managers(allowed: Expect) -> dict[str, Expect]:
    """workitems.view_workitem and workitems.reassign_workitem: the manager and the admin."""
    return UNAUTHENTICATED | {p: E403 for p in LOGGED_IN} | {"manager": allowed, "admin": allowed}


def items_of(allowed: Expect) -> dict[str, Expect]:
    """A work item of the assignee's: who may not act on it gets a 404, as for no item at all."""
    return UNAUTHENTICATED | {p: E404 for p in LOGGED_IN} | {"assignee": allowed}


# operationId -> caller -> expectation. Only the admin holds the orchestration permissions.
API_ACCESS: dict[str, dict[str, Expect]] = {
    "listOrchestrations": admin_only(OK),
    "launchRun": admin_only(Allowed(201, writes=("orchestration.run", "orchestration.runevent"))),
    "listRuns": admin_only(OK),
    "getRun": admin_only(OK),
    "getOpenApi": {c: OK for c in CALLERS},  # public: it describes the API and holds no data
    # The run page's actions on the failed run and its failed step: view_run and the action's
    # permission, which only the admin holds.
    "cancelRun": admin_only(Allowed(200, writes=("orchestration.run", "orchestration.runevent"))),
    "retryRunStep": admin_only(Allowed(200, writes=("orchestration.steprun", "orchestration.runevent"))),
    "skipRunStep": admin_only(
        Allowed(200, writes=("orchestration.run", "orchestration.steprun", "orchestration.runevent"))
    ),
    # "Resume now" of the waiting run's wait step: view_run and retry_step, the admin's.
    "resumeRunStep": admin_only(
        Allowed(200, writes=("orchestration.run", "orchestration.steprun", "orchestration.runevent"))
    ),
    # Moving the open runs of "cases" v2 back to v1: a monitoring permission and
    # import_definitions, the admin's. The preview changes nothing.
    "previewRunMigration": admin_only(OK),
    "migrateRuns": admin_only(Allowed(200, writes=("orchestration.run", "orchestration.runevent"))),
    # Work items: everyone's own list; the engineering group's item (alice's group) is hers to
    # see, finish, claim, and for anyone else a 404 as if it did not exist. She does not hold it,
    # so her release is a 409 that changes nothing; reassigning is the manager's and the admin's.
    "listWorkItems": UNAUTHENTICATED | {p: OK for p in LOGGED_IN},
    "getWorkItem": items_of(OK),
    "completeWorkItem": items_of(
        Allowed(200, writes=("workitems.workitem", "orchestration.steprun", "orchestration.runevent"))
    ),
    "claimWorkItem": items_of(Allowed(200, writes=("workitems.workitem", "orchestration.runevent"))),
    "releaseWorkItem": items_of(Allowed(409)),
    "reassignWorkItem": managers(Allowed(200, writes=("workitems.workitem", "orchestration.runevent"))),
}
PATH_VALUES: dict[str, Callable[[S], Any]] = {
    "api_name": lambda s: "cases",
    "run_id": lambda s: s.failed.pk,
    "step_run_id": lambda s: s.failed_step.pk,
    "item_id": lambda s: s.team.pk,
}
# Operations whose path takes other objects than PATH_VALUES' (resume: the waiting wait step).
OPERATION_PATH_VALUES: dict[str, dict[str, Callable[[S], Any]]] = {
    "resumeRunStep": {
        "run_id": lambda s: s.waiting_step.run_id,
        "step_run_id": lambda s: s.waiting_step.pk,
    },
}
BODIES: dict[str, Callable[[S], dict[str, Any]]] = {
    "launchRun": lambda s: {"record_id": s.record_a.pk},
    "cancelRun": lambda s: {"reason": "walk"},
    "retryRunStep": lambda s: {"reason": "walk"},
    "skipRunStep": lambda s: {"outputs": {"x": 1}, "reason": "walk"},
    "resumeRunStep": lambda s: {"reason": "walk"},
    "previewRunMigration": lambda s: {"from_version": 2, "to_version": 1},
    "migrateRuns": lambda s: {"from_version": 2, "to_version": 1},
    "completeWorkItem": lambda s: {"data": {"approved": True, "comment": "walk"}},
    "reassignWorkItem": lambda s: {"user": "charlie", "reason": "walk"},
}

DOCUMENT = openapi_document()
OPERATIONS = [
    (path, method, op["operationId"])
    for path, item in DOCUMENT["paths"].items()
    for method, op in item.items()
    if method in METHODS
]


def authorization(s: S, caller: str) -> dict[str, str]:
    raw = {
        "no token": None,
        "not bearer": f"Basic {s.tokens['admin']}",
        "unknown token": "Bearer fo_not-a-token-anyone-was-given",
        "revoked token": f"Bearer {s.revoked_token}",
        "expired token": f"Bearer {s.expired_token}",
        "deleted token": f"Bearer {s.deleted_token}",
        "inactive user": f"Bearer {s.gone_token}",
    }.get(caller, f"Bearer {s.tokens.get(caller)}")
    return {} if raw is None else {"HTTP_AUTHORIZATION": raw}


def api_url(s: S, path: str, operation: str = "") -> str:
    values = {**PATH_VALUES, **OPERATION_PATH_VALUES.get(operation, {})}
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)](s)), path)


def call(s: S, caller: str, method: str, url: str, body: dict[str, Any] | None = None, **extra: Any) -> Any:
    # No session and no CSRF token: a bearer token is not an ambient credential (a browser never
    # attaches it on its own), so the API is exempt from CSRF; test_csrf.py checks that a
    # session alone gets nowhere.
    client = Client(enforce_csrf_checks=True)
    headers: dict[str, Any] = {**authorization(s, caller), **extra}
    return client.generic(
        method.upper(), url, json.dumps(body) if body is not None else "", "application/json", **headers
    )


def test_every_operation_is_in_the_table() -> None:
    ops = {op for _, _, op in OPERATIONS}
    missing = sorted(ops - set(API_ACCESS))
    assert not missing, (
        f"These operations of orchestration/openapi.py are not in tests/security/test_api_walk.py "
        f"API_ACCESS: {missing}. Say what every caller gets."
    )
    assert not set(API_ACCESS) - ops, (
        f"API_ACCESS names operations the document lost: {set(API_ACCESS) - ops}"
    )
    for op, table in API_ACCESS.items():
        assert set(table) == set(CALLERS), f"{op}: give an expectation for every caller {CALLERS}"


def _doc_path(route: Route) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.route)


def test_every_api_route_of_the_url_conf_is_documented() -> None:
    """An endpoint added to api_urls.py without a place in the OpenAPI document fails here (and
    the walk above then covers it once it is described)."""
    routes = [r for r in url_routes() if r.route.startswith("api/")]
    undocumented = [
        r.route for r in routes if r.callback is not api.not_found and _doc_path(r) not in DOCUMENT["paths"]
    ]
    assert not undocumented, f"API routes missing from the OpenAPI document: {undocumented}"
    catch_all = [r for r in routes if r.callback is api.not_found]
    assert len(catch_all) == 1 and catch_all[0].regex, "only the JSON 404 may go undocumented"
    # And the other way round: every documented path is served.
    served = {_doc_path(r) for r in routes if r.callback is not api.not_found}
    assert set(DOCUMENT["paths"]) <= served


def test_the_served_document_is_the_one_walked(scenario: S) -> None:
    assert Client().get("/api/openapi.json").json() == json.loads(json.dumps(DOCUMENT, default=str))


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=[op for _, _, op in OPERATIONS])
def test_api_walk(path: str, method: str, operation: str, scenario: S) -> None:
    out = Outcome()
    url = api_url(scenario, path, operation)
    body = BODIES[operation](scenario) if operation in BODIES else None
    for caller in CALLERS:
        expect = API_ACCESS[operation][caller]
        with transaction.atomic():
            before = db_state()
            response = call(scenario, caller, method, url, body)
            where = f"{method.upper()} {url} ({operation}) as {caller}"
            check_response(scenario, expect, response, url, before, db_state(), where, out)
            out.check(response["Content-Type"] == "application/json", f"{where}: not JSON")
            if response.status_code == 401:
                out.check("WWW-Authenticate" in response, f"{where}: a 401 without a challenge")
            transaction.set_rollback(True)
    assert not out.problems, "\n".join(out.problems)


@pytest.mark.parametrize("path", sorted(DOCUMENT["paths"]))
def test_undocumented_methods_are_refused(path: str, scenario: S) -> None:
    """Every method the document does not list for a path: 405 for everyone, the admin included,
    and nothing changes."""
    out = Outcome()
    url = api_url(scenario, path)
    for method in METHODS:
        if method in DOCUMENT["paths"][path]:
            continue
        for caller in ("no token", "admin"):
            with transaction.atomic():
                before = db_state()
                response = call(scenario, caller, method, url, {})
                check_response(
                    scenario, E405, response, url, before, db_state(), f"{method} {url} as {caller}", out
                )
                transaction.set_rollback(True)
    assert not out.problems, "\n".join(out.problems)


def test_a_run_that_does_not_exist_is_a_404_only_for_who_may_see_runs(scenario: S) -> None:
    """Ids cannot be probed: without view_run, an existing and a missing run answer the same."""
    missing = call(scenario, "manager", "get", "/api/runs/999999")
    existing = call(scenario, "manager", "get", f"/api/runs/{scenario.secret_run.pk}")
    assert (missing.status_code, existing.status_code) == (403, 403)
    assert missing.json() == existing.json()
    assert call(scenario, "admin", "get", "/api/runs/999999").status_code == 404


def test_a_token_works_again_only_while_it_exists(scenario: S) -> None:
    """Revoking is deleting the token (the model has no expiry or revocation fields): the very
    token that worked is refused afterwards."""
    from orchestration.models import ApiToken

    assert call(scenario, "admin", "get", "/api/runs").status_code == 200
    ApiToken.objects.filter(user__username="ops", name="walk").delete()
    response = call(scenario, "admin", "get", "/api/runs")
    assert response.status_code == 401
    assert "not valid" in response.json()["errors"]["__all__"][0]


def test_the_admin_sees_the_run_and_others_see_none_of_it(scenario: S) -> None:
    ok = call(scenario, "admin", "get", f"/api/runs/{scenario.secret_run.pk}")
    assert ok.status_code == 200
    assert ok.json()["record"]["label"] == "Vault door"
    for caller in CALLERS:
        if caller == "admin":
            continue
        body = call(scenario, caller, "get", f"/api/runs/{scenario.secret_run.pk}").content.decode()
        assert "Vault door" not in body and "others" not in body, caller
