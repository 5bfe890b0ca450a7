"""schemathesis against the API's own OpenAPI document, on a live server with a valid token over
data that exists: no 5xx, every response conforms to its documented schema, status codes and
content type are the documented ones (schemathesis' default checks).

Half the generated cases aim at rows that exist (a run, its step runs, a record, an
orchestration with typed inputs, the token user's work items) so that the happy paths are
fuzzed too, not only the 404s. Examples are bounded so the
whole file runs in well under a minute."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from orchestration.models import Run, StepRun
from orchestration.openapi import openapi_document
from orchestration.services import api_token_create, run_launch
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)

INPUTS = [
    {"name": "amount", "type": "number", "required": True},
    {"name": "urgent", "type": "boolean"},
    {"name": "when", "type": "date"},
    {"name": "note", "type": "text", "default": "'none'"},
]
FORM_FIELDS: list[dict[str, Any]] = [
    {"name": "approved", "type": "boolean"},
    {"name": "amount", "type": "decimal"},
    {"name": "when", "type": "datetime"},
    {"name": "who", "type": "user"},
    {"name": "tags", "type": "multi_choice", "choices": ["a", "b"]},
]


class Api:
    """What the cases need: the server, the token, the rows that exist."""

    def __init__(
        self,
        base_url: str,
        token: str,
        run_ids: list[int],
        record_ids: list[int],
        step_ids: dict[int, list[int]],
        item_ids: list[int],
    ):
        self.base_url, self.token = base_url, token
        self.run_ids, self.record_ids = run_ids, record_ids
        self.step_ids, self.item_ids = step_ids, item_ids  # run id -> its step runs; the token's items
        self.statuses: dict[str, set[int]] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def api(live_server, personas) -> Api:  # type: ignore[no-untyped-def]
    load(
        auto_flow("score", outputs={"score": "42"}),
        orchestration(
            "on_case",
            variables=[{"name": "score", "type": "number"}],
            stages=[{"key": "s", "steps": [{"key": "b", "kind": "background", "flow": "score"}]}],
        ),
        orchestration(
            "expense",
            start={"type": "autolaunched", "inputs": INPUTS},
            stages=[{"key": "book", "steps": [{"key": "b", "kind": "background", "flow": "score"}]}],
        ),
        # Work for the token's user (retry and skip have a failed step to act on, the work item
        # endpoints items to complete, claim and reassign).
        auto_flow("boom", outputs={"x": "1 / 0"}),
        screen_flow("form", fields=FORM_FIELDS),
        orchestration(
            "failing",
            stages=[
                {"key": "s", "steps": [{"key": "b", "kind": "background", "flow": "boom", "max_attempts": 1}]}
            ],
        ),
        orchestration(
            "work",
            stages=[
                {
                    "key": "s",
                    "steps": [
                        {"key": "f", "kind": "interactive", "flow": "form", "assignee": {"user": "admin"}}
                    ],
                }
            ],
        ),
    )
    cases = [make_case(f"Case {i}") for i in range(3)]
    for case in cases:
        run_launch(orchestration="on_case", record=case)
        run_launch(orchestration="failing", record=case)
        run_launch(orchestration="work", record=case)
    run_launch(orchestration="expense", inputs={"amount": 3})
    _, raw = api_token_create(user=personas.admin, name="fuzz")
    step_ids: dict[int, list[int]] = {}
    for run_id, step_id in StepRun.objects.order_by("pk").values_list("run_id", "pk"):
        step_ids.setdefault(run_id, []).append(step_id)
    return Api(
        live_server.url,
        raw,
        run_ids=list(Run.objects.values_list("pk", flat=True)),
        record_ids=[c.pk for c in cases],
        step_ids=step_ids,
        item_ids=list(WorkItem.objects.values_list("pk", flat=True)),
    )


# The document the server serves (tests/orchestration/test_api.py checks they are the same);
# built here so that pytest can list one test per operation before any server runs.
schema = schemathesis.openapi.from_dict(openapi_document())


# Operations whose schema-valid bodies may still be refused with a 400 naming the field: the
# document cannot say which inputs each orchestration declares (listOrchestrations tells), which
# outputs a step's flow has, which fields an item's screen flow has (getWorkItem tells), or which
# users, groups and queues exist, or which versions, stages and steps an orchestration has (a
# migration's versions and mapping).
NOT_PROMISED = {
    "launchRun",
    "skipRunStep",
    "completeWorkItem",
    "reassignWorkItem",
    "previewRunMigration",
    "migrateRuns",
}


def _aim_at_existing_rows(case: Any, api: Api, pick: int) -> None:
    """Point a generated case at rows that exist (the body and query stay as generated)."""
    if "run_id" in (case.path_parameters or {}):
        case.path_parameters["run_id"] = run_id = api.run_ids[pick % len(api.run_ids)]
        if "step_run_id" in case.path_parameters:
            steps = api.step_ids[run_id]
            case.path_parameters["step_run_id"] = steps[pick % len(steps)]
    if "item_id" in (case.path_parameters or {}):
        case.path_parameters["item_id"] = api.item_ids[pick % len(api.item_ids)]
    if "api_name" in (case.path_parameters or {}):
        case.path_parameters["api_name"] = ("expense", "on_case")[pick % 2]
        if pick % 2 and isinstance(case.body, dict):
            case.body["record_id"] = api.record_ids[pick % len(api.record_ids)]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_answers_every_generated_request_as_its_openapi_document_says(case: Any, api: Api) -> None:
    # Which cases aim at existing rows, and at which: decided by the case itself, so that a
    # failing example replays the same way. Only schema-valid cases: a negative case keeps the
    # value that makes it invalid.
    pick = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
    excluded = []
    if pick % 2 and case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
        _aim_at_existing_rows(case, api, pick // 2)
        if case.operation.definition.raw.get("operationId") in NOT_PROMISED:
            excluded.append(positive_data_acceptance)
    headers = api.headers
    negative = case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE
    if negative and "Authorization" not in (case.headers or {}):
        # The invalid part is the missing token: send none (ours would make the case valid, and
        # schemathesis would then call a 200 "invalid data accepted").
        headers = {}
    response = case.call_and_validate(base_url=api.base_url, headers=headers, excluded_checks=excluded)
    assert response.status_code < 500
