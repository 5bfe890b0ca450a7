"""The JSON API: token auth, launching, run detail and list, orchestrations, OpenAPI."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from orchestration.models import ApiToken, Run, RunStatus
from orchestration.services import api_token_create, run_launch
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow

pytestmark = pytest.mark.django_db(transaction=True)

EXPENSE_INPUTS = [
    {"name": "amount", "type": "number", "required": True},
    {"name": "urgent", "type": "boolean"},
    {"name": "note", "type": "text", "default": "'none'"},
]


def define() -> None:
    """'proc' runs on a case (background then interactive); 'expense' is record-less with
    typed inputs and ends by itself."""
    load(
        auto_flow("score", outputs={"score": "42"}),
        screen_flow("review"),
        orchestration(
            "proc",
            variables=[{"name": "score", "type": "number"}],
            stages=[
                {
                    "key": "scoring",
                    "steps": [
                        {"key": "s", "kind": "background", "flow": "score", "outputs": {"score": "score"}}
                    ],
                },
                {
                    "key": "approval",
                    "steps": [
                        {"key": "r", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}}
                    ],
                },
            ],
        ),
        orchestration(
            "expense",
            start={"type": "autolaunched", "inputs": EXPENSE_INPUTS},
            stages=[{"key": "book", "steps": [{"key": "b", "kind": "background", "flow": "score"}]}],
        ),
    )


def token_for(user: Any) -> str:
    _, raw = api_token_create(user=user, name="test")
    return raw


def grant(user: Any, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


class Api:
    """A test client that sends the bearer token, and enforces CSRF like a browser would,
    to prove token calls need no CSRF token."""

    def __init__(self, raw: str | None):
        self.client = Client(enforce_csrf_checks=True)
        self.headers = {"Authorization": f"Bearer {raw}"} if raw else {}

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, params, headers=self.headers)

    def post(self, url: str, body: Any = None, *, raw: bytes | str | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(url, data, content_type="application/json", headers=self.headers)

    def call(self, method: str, url: str) -> Any:
        return getattr(self.client, method)(url, headers=self.headers)


@pytest.fixture
def admin_api(personas: Any) -> Api:
    define()
    return Api(token_for(personas.admin))


def errors(response: Any) -> dict[str, list[str]]:
    assert response["Content-Type"] == "application/json", response.content
    return response.json()["errors"]


# --- authentication and permissions -----------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(personas):
    define()
    response = Api(None).get("/api/runs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in errors(response)["__all__"][0]


@pytest.mark.parametrize(
    "header",
    ["Bearer fo_not-a-real-token", "Basic YWRtaW46cHc=", "Bearer", "bearer  ", "Token abc"],
)
def test_bad_token_is_401(personas, header):
    define()
    token_for(personas.admin)
    client = Client()
    response = client.get("/api/runs", headers={"Authorization": header})
    assert response.status_code == 401
    assert errors(response)["__all__"]


def test_session_login_is_not_accepted(personas):
    define()
    client = Client()
    client.force_login(personas.admin)
    assert client.get("/api/runs").status_code == 401
    assert (
        client.post("/api/orchestrations/expense/runs", {}, content_type="application/json").status_code
        == 401
    )
    assert Run.objects.count() == 0


def test_token_of_an_inactive_user_is_refused(personas):
    define()
    raw = token_for(personas.admin)
    personas.admin.is_active = False
    personas.admin.save()
    assert Api(raw).get("/api/orchestrations").status_code == 401


def test_last_used_at_is_recorded_at_most_once_a_minute(personas):
    define()
    raw = token_for(personas.admin)
    token = ApiToken.objects.get()
    assert token.last_used_at is None
    api = Api(raw)
    assert api.get("/api/orchestrations").status_code == 200
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    assert api.get("/api/orchestrations").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: not written again
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - dt.timedelta(minutes=2))
    api.get("/api/orchestrations")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_user_without_permissions_gets_403(personas):
    define()
    api = Api(token_for(personas.alice))
    run = run_launch(orchestration="expense", inputs={"amount": 1})
    response = api.get(f"/api/runs/{run.pk}")
    assert response.status_code == 403
    assert "orchestration.view_run" in errors(response)["__all__"][0]
    assert api.get("/api/runs").status_code == 403
    assert api.get("/api/orchestrations").status_code == 403
    response = api.post("/api/orchestrations/expense/runs", {"inputs": {"amount": 1}})
    assert response.status_code == 403
    assert "launch_orchestration" in errors(response)["__all__"][0]
    assert Run.objects.count() == 1


def test_launch_permission_is_enough_to_launch_and_list_orchestrations(personas):
    define()
    grant(personas.alice, "launch_orchestration")
    api = Api(token_for(personas.alice))
    response = api.post("/api/orchestrations/expense/runs", {"inputs": {"amount": 5}})
    assert response.status_code == 201
    assert response.json()["started_by"] == "alice"
    assert api.get("/api/orchestrations").status_code == 200
    # Reading runs is another permission.
    assert api.get(response["Location"]).status_code == 403
    grant(personas.alice, "view_run")
    assert Api(api.headers["Authorization"].split()[1]).get(response["Location"]).status_code == 200


# --- launching --------------------------------------------------------------------------------


def test_launch_with_typed_inputs(admin_api):
    response = admin_api.post(
        "/api/orchestrations/expense/runs", {"inputs": {"amount": "42", "urgent": "yes"}}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get()
    assert response["Location"] == f"/api/runs/{run.pk}"
    assert body["id"] == run.pk
    assert body["orchestration"] == "expense"
    assert body["version"] == 1
    assert body["inputs"] == {"amount": 42, "urgent": True, "note": "none"}
    assert body["record"] is None
    assert body["started_by"] == "admin"
    # The background step ran on commit (Celery is eager in tests); the response shows the run
    # as it stood when it was answered, after the launch committed.
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_launch_on_a_record(admin_api):
    case = make_case("Broken printer")
    response = admin_api.post("/api/orchestrations/proc/runs", {"record_id": case.pk})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["record"] == {"type": "records.record", "id": case.pk, "label": "Broken printer"}
    assert body["current_stage"] == "approval"
    assert body["variables"] == {"score": 42}
    assert [s["key"] for s in body["stages"]] == ["scoring", "approval"]
    scoring = body["stages"][0]
    assert scoring["status"] == "completed"
    assert scoring["steps"][0] == {
        **scoring["steps"][0],
        "key": "s",
        "kind": "background",
        "status": "completed",
        "attempts": 1,
        "error": None,
        "outputs": {"score": 42},
    }


def test_launch_without_a_body_uses_defaults_and_reports_missing_inputs(admin_api):
    response = admin_api.post("/api/orchestrations/expense/runs", raw=b"")
    assert response.status_code == 400
    assert errors(response) == {"inputs.amount": ["this input is required"]}


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"{not json", "__all__", "not valid JSON"),
        (b"\xff\xfe", "__all__", "not valid JSON"),
        (b"[1, 2]", "__all__", "must be a JSON object"),
        (b'"text"', "__all__", "must be a JSON object"),
        (b"[" * 100_000, "__all__", "not valid JSON"),
        (b'{"inputs": [1]}', "inputs", "must be a JSON object"),
        (b'{"inputs": "amount=1"}', "inputs", "must be a JSON object"),
        (b'{"inputs": {"amount": 1}, "recordid": 3}', "recordid", "unknown field"),
        (b'{"record_id": "abc"}', "record_id", "positive integer"),
        (b'{"record_id": true}', "record_id", "positive integer"),
        (b'{"record_id": 1.5}', "record_id", "positive integer"),
        (b'{"record_id": -4}', "record_id", "between 1 and"),
        (b'{"record_id": 100000000000000000000000000000}', "record_id", "between 1 and"),
        (b'{"inputs": {"amount": "lots"}}', "inputs.amount", "number"),
        (b'{"inputs": {"amount": {"a": 1}}}', "inputs.amount", "number"),
        (b'{"inputs": {"amount": 1, "urgent": "perhaps"}}', "inputs.urgent", "true or false"),
        (b'{"inputs": {"amount": 1, "colour": "red"}}', "inputs.colour", "not an input of 'expense'"),
    ],
)
def test_bad_launch_requests_get_400_with_clear_messages(admin_api, body, field, fragment):
    response = admin_api.post("/api/orchestrations/expense/runs", raw=body)
    assert response.status_code == 400, response.content
    messages = errors(response)[field]
    assert any(fragment in m for m in messages), messages
    assert Run.objects.count() == 0


def test_record_orchestration_without_a_record_is_400(admin_api):
    response = admin_api.post("/api/orchestrations/proc/runs", {})
    assert response.status_code == 400
    assert "runs on a case record" in errors(response)["__all__"][0]


def test_unknown_orchestration_or_record_is_404(admin_api):
    response = admin_api.post("/api/orchestrations/nope/runs", {})
    assert response.status_code == 404
    assert "'nope' does not exist" in errors(response)["__all__"][0]
    response = admin_api.post("/api/orchestrations/proc/runs", {"record_id": 987654})
    assert response.status_code == 404
    assert errors(response) == {"record_id": ["record 987654 does not exist"]}
    assert Run.objects.count() == 0


def test_body_too_large_is_413(admin_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = admin_api.post(
        "/api/orchestrations/expense/runs", {"inputs": {"amount": 1, "note": "x" * 5000}}
    )
    assert response.status_code == 413
    assert errors(response)["__all__"] == ["the request body is too large"]


# --- run detail -------------------------------------------------------------------------------


def test_run_detail(admin_api, personas):
    case = make_case("Case A")
    run = run_launch(orchestration="proc", record=case, actor=personas.admin)
    response = admin_api.get(f"/api/runs/{run.pk}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "url",
        "orchestration",
        "version",
        "status",
        "current_stage",
        "record",
        "started_at",
        "ended_at",
        "started_by",
        "error",
        "variables",
        "inputs",
        "stages",
    }
    assert body["status"] == "in_progress"
    assert body["started_at"] is not None and body["ended_at"] is None
    approval = body["stages"][1]
    assert approval["status"] == "in_progress"
    assert approval["steps"][0]["key"] == "r"
    assert approval["steps"][0]["status"] == "in_progress"


@pytest.mark.parametrize("run_id", ["999999", "0", "99999999999999999999999999"])
def test_unknown_run_is_404(admin_api, run_id):
    response = admin_api.get(f"/api/runs/{run_id}")
    assert response.status_code == 404
    assert errors(response)["__all__"]


def test_run_detail_query_count_does_not_grow_with_stages(personas):
    """A run with one stage and a run through three stages with several steps each cost
    the same number of queries."""
    step = {"kind": "background", "flow": "score"}
    load(
        auto_flow("score", outputs={"score": "1"}),
        orchestration("short", stages=[{"key": "a", "steps": [{"key": "a1", **step}]}]),
        orchestration(
            "long",
            stages=[
                {"key": f"st{i}", "steps": [{"key": f"st{i}_{j}", **step} for j in range(4)]}
                for i in range(3)
            ],
        ),
    )
    grant(personas.bob, "view_run")  # a user whose permissions come from the database
    api = Api(token_for(personas.bob))
    case = make_case()
    short = run_launch(orchestration="short", record=case)
    long = run_launch(orchestration="long", record=case)
    api.get(f"/api/runs/{short.pk}")  # the token's last_used_at is written once, here
    counts = []
    for run in (short, long):
        with CaptureQueriesContext(connection) as ctx:
            response = api.get(f"/api/runs/{run.pk}")
        assert response.status_code == 200
        counts.append(len(ctx))
    assert len(response.json()["stages"]) == 3
    # token + user, 2 permission queries, run, stage runs, step runs
    assert counts == [6, 6]


# --- run list ---------------------------------------------------------------------------------


def test_run_list_keyset_pagination(admin_api):
    ids = [run_launch(orchestration="expense", inputs={"amount": i}).pk for i in range(5)]
    seen: list[int] = []
    url = "/api/runs?limit=2"
    pages = 0
    while url:
        response = admin_api.client.get(url, headers=admin_api.headers)
        assert response.status_code == 200
        body = response.json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
        pages += 1
        # A run launched meanwhile does not shift the pages still to come.
        if pages == 1:
            run_launch(orchestration="expense", inputs={"amount": 99})
    assert seen == sorted(ids, reverse=True)
    assert pages == 3
    assert body["next_after_id"] is None


def test_run_list_filters(admin_api):
    case = make_case()
    on_case = run_launch(orchestration="proc", record=case)
    other = run_launch(orchestration="expense", inputs={"amount": 3})
    assert [r["id"] for r in admin_api.get("/api/runs", orchestration="proc").json()["results"]] == [
        on_case.pk
    ]
    assert [r["id"] for r in admin_api.get("/api/runs", status="completed").json()["results"]] == [other.pk]
    assert [r["id"] for r in admin_api.get("/api/runs", status="in_progress").json()["results"]] == [
        on_case.pk
    ]
    assert [r["id"] for r in admin_api.get("/api/runs", record_id=case.pk).json()["results"]] == [on_case.pk]
    assert [r["id"] for r in admin_api.get("/api/runs", after_id=other.pk).json()["results"]] == [on_case.pk]
    assert admin_api.get("/api/runs", orchestration="nope").json() == {
        "results": [],
        "next_after_id": None,
        "next": None,
    }
    summary = admin_api.get("/api/runs").json()["results"][1]
    assert summary["orchestration"] == "proc"
    assert "stages" not in summary


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"status": "done"}, "status", "must be one of"),
        ({"limit": "0"}, "limit", "between 1 and"),
        ({"limit": "201"}, "limit", "between 1 and 200"),
        ({"limit": "ten"}, "limit", "positive integer"),
        ({"after_id": "-1"}, "after_id", "positive integer"),
        ({"after_id": "99999999999999999999999"}, "after_id", "between 1 and"),
        ({"record_id": "1e3"}, "record_id", "positive integer"),
        # Present but empty is not an integer (schemathesis found `after_id=` answered 200).
        ({"after_id": ""}, "after_id", "positive integer"),
        ({"limit": " "}, "limit", "positive integer"),
        ({"state": "error"}, "state", "unknown parameter"),
    ],
)
def test_run_list_bad_parameters_are_400(admin_api, params, field, fragment):
    response = admin_api.get("/api/runs", **params)
    assert response.status_code == 400
    assert fragment in errors(response)[field][0]


# --- orchestrations ---------------------------------------------------------------------------


def test_orchestration_list(admin_api):
    load(
        orchestration(
            "expense",
            start={"type": "autolaunched"},
            stages=[{"key": "book", "steps": [{"key": "b", "kind": "background", "flow": "score"}]}],
        )
    )
    body = admin_api.get("/api/orchestrations").json()
    by_name = {o["api_name"]: o for o in body["results"]}
    assert list(by_name) == ["expense", "proc"]
    assert by_name["expense"]["active_version"] == 2
    assert by_name["expense"]["inputs"] == []
    assert by_name["expense"]["launch_url"] == "/api/orchestrations/expense/runs"
    assert by_name["proc"]["start"] == {"type": "autolaunched", "record_type": "case"}


def test_orchestration_list_shows_declared_inputs(admin_api):
    expense = next(
        o for o in admin_api.get("/api/orchestrations").json()["results"] if o["api_name"] == "expense"
    )
    assert expense["inputs"] == [
        {"name": "amount", "type": "number", "required": True, "description": ""},
        {"name": "urgent", "type": "boolean", "required": False, "description": ""},
        {"name": "note", "type": "text", "required": False, "description": ""},
    ]


# --- methods and unknown paths ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "allow"),
    [
        ("get", "/api/orchestrations/expense/runs", "POST"),
        ("post", "/api/runs", "GET"),
        ("delete", "/api/runs/1", "GET"),
        ("put", "/api/orchestrations", "GET"),
        ("post", "/api/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_json(admin_api, method, url, allow):
    response = admin_api.call(method, url)
    assert response.status_code == 405
    assert response["Allow"] == allow
    assert "not allowed" in errors(response)["__all__"][0]


@pytest.mark.parametrize(
    "url", ["/api/runs/1/suspend", "/api/work-items/1/finish", "/api/nowhere", "/api/runs/%0A1/cancel"]
)
def test_unknown_api_path_is_404_json(admin_api, url):
    response = admin_api.post(url, {})
    assert response.status_code == 404
    assert "openapi.json" in errors(response)["__all__"][0]


# --- OpenAPI ----------------------------------------------------------------------------------


def _api_routes() -> set[str]:
    """Every named route under /api/ (orchestration's and the other apps'), written the OpenAPI
    way (/api/runs/{run_id})."""
    routes = set()
    for api in get_resolver().url_patterns:
        if not (isinstance(api, URLResolver) and str(api.pattern) == "api/"):
            continue
        for p in api.url_patterns:
            if isinstance(p, URLPattern) and p.name:
                routes.add("/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)))
    return routes


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_document_describes_every_route(personas):
    response = Client().get("/api/openapi.json")  # public: no token needed
    assert response.status_code == 200
    doc = json.loads(response.content)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == _api_routes()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    for ref in _refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # KeyError: a dangling $ref
    assert {"/api/work-items", "/api/runs/{run_id}/cancel"} <= set(doc["paths"])
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert op["responses"], (path, method)
            if op.get("security") != []:
                assert "401" in op["responses"], (path, method)
            # An operation that needs a permission says which, and documents the 403.
            if "Needs `" in op.get("description", ""):
                assert "403" in op["responses"], (path, method)


def test_openapi_run_schema_matches_the_run_json(admin_api):
    doc = admin_api.get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    documented = set(schemas["RunSummary"]["properties"]) | set(schemas["Run"]["allOf"][1]["properties"])
    run = admin_api.post("/api/orchestrations/expense/runs", {"inputs": {"amount": 1}}).json()
    assert set(run) == documented
    assert set(run["stages"][0]) == set(schemas["Stage"]["properties"])
    assert set(run["stages"][0]["steps"][0]) == set(schemas["Step"]["properties"])
    listed = admin_api.get("/api/orchestrations").json()["results"][0]
    assert set(listed) == set(schemas["Orchestration"]["properties"])


# --- where schemathesis found the document and the API disagreeing (tests/security/test_api_fuzz.py)


def test_a_whole_number_written_as_a_json_float_is_a_record_id(admin_api):
    """JSON has one number type and JSON Schema's "integer" accepts 12.0: so does the API."""
    case = make_case("Broken printer")
    response = admin_api.post("/api/orchestrations/proc/runs", raw=f'{{"record_id": {case.pk}.0}}')
    assert response.status_code == 201, response.content
    assert response.json()["record"]["id"] == case.pk
    assert Run.objects.filter(record_id=case.pk).count() == 1


def test_inputs_null_is_documented_as_accepted_and_means_no_inputs(admin_api):
    from orchestration.openapi import openapi_document

    launch = openapi_document()["components"]["schemas"]["LaunchRequest"]
    assert launch["properties"]["inputs"]["type"] == ["object", "null"]
    case = make_case("Broken printer")
    response = admin_api.post("/api/orchestrations/proc/runs", {"record_id": case.pk, "inputs": None})
    assert response.status_code == 201, response.content
    assert response.json()["inputs"] == {}


def test_the_document_gives_the_largest_id_the_api_accepts():
    from orchestration.openapi import openapi_document
    from orchestration.selectors import MAX_ID

    doc = openapi_document()
    runs = {p["name"]: p["schema"] for p in doc["paths"]["/api/runs"]["get"]["parameters"]}
    [run_id] = doc["paths"]["/api/runs/{run_id}"]["get"]["parameters"]
    record_id = doc["components"]["schemas"]["LaunchRequest"]["properties"]["record_id"]
    for schema in (runs["record_id"], runs["after_id"], run_id["schema"], record_id):
        assert schema["maximum"] == MAX_ID


def test_an_id_above_the_largest_is_a_400_not_an_empty_page(admin_api):
    response = admin_api.get("/api/runs", after_id=str(2**63))
    assert response.status_code == 400
    assert errors(response) == {"after_id": [f"must be between 1 and {2**63 - 1}"]}
