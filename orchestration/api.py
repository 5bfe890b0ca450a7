"""The JSON API: launch orchestrations, query runs, and act on them (cancel a run, retry or skip
a failed step, resume a wait step now, move running runs to another version), authenticated by
bearer tokens. Other apps add endpoints of their own under /api/ with the helpers here
(workitems/api.py: work items).

Only `Authorization: Bearer <token>` is accepted (no session, so no CSRF to check). Every
answer is JSON, errors included: `{"errors": {"<field>": ["message", ...]}}`, where the field is
`__all__` when the message is about the request as a whole. The OpenAPI document describing
all of this is served at /api/openapi.json (see openapi.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.apps import apps
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, RequestDataTooBig, ValidationError
from django.db import models
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt

from . import selectors
from .models import Orchestration, OrchestrationVersion, Run, RunStatus, StageRun, StepRun
from .openapi import openapi_document
from .registry import record_model_label
from .services import (
    PERM_CANCEL,
    PERM_IMPORT,
    PERM_LAUNCH,
    PERM_RETRY,
    PERM_SKIP,
    ActionNotAllowed,
    LaunchError,
    TokenRefused,
    api_token_authenticate,
    record_visible_to,
    run_cancel,
    run_launch,
    step_resume,
    step_retry,
    step_skip,
)
from .services.migration import Mapping as MigrationMapping
from .services.migration import mapping_unknown, migration_apply, migration_preview

PERM_VIEW_RUN = "orchestration.view_run"
PERM_VIEW_ORCHESTRATION = "orchestration.view_orchestration"
DEFAULT_PAGE = 50
# As the run page's reason box (orchestration/views/run_forms.py ReasonForm).
REASON_MAX = 1000

Errors = Mapping[str, Any]


class ApiError(Exception):
    """Raised anywhere below a view to answer with a JSON error. `extra`: more keys of the
    answer beside `errors` (a 409 about a work item gives the item as it now stands)."""

    def __init__(
        self,
        status: int,
        errors: Errors | str,
        headers: dict[str, str] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ):
        self.status = status
        self.errors: Errors = {NON_FIELD_ERRORS: [errors]} if isinstance(errors, str) else errors
        self.headers = headers or {}
        self.extra = dict(extra or {})
        super().__init__(str(self.errors))

    def response(self) -> JsonResponse:
        return JsonResponse({"errors": self.errors, **self.extra}, status=self.status, headers=self.headers)


View = Callable[..., JsonResponse]


def _bearer_user(request: HttpRequest) -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="api"'}
    if scheme.lower() != "bearer" or not raw:
        raise ApiError(401, "give a token: Authorization: Bearer <token>", challenge)
    try:
        return api_token_authenticate(raw=raw)
    except TokenRefused as exc:
        raise ApiError(
            401, str(exc), {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'}
        ) from None


def api_endpoint(
    *methods: str, perms: tuple[str, ...] = (), all_perms: tuple[str, ...] = (), auth: bool = True
) -> Callable[[View], View]:
    """Method check (405), token authentication (401), permission check (403: any one of
    `perms`, and every one of `all_perms`), and JSON for every error. The view receives the
    token's user after the request."""

    def deco(view: View) -> View:
        @csrf_exempt  # tokens are not sent by browsers on their own: no CSRF to fear
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            try:
                if request.method not in methods:
                    raise ApiError(
                        405,
                        f"method {request.method} is not allowed here (allowed: {', '.join(methods)})",
                        {"Allow": ", ".join(methods)},
                    )
                if not auth:
                    return view(request, None, *args, **kwargs)
                user = _bearer_user(request)
                # The session user, if any, is not the caller: only the token counts.
                request.user = user
                if perms and not any(user.has_perm(p) for p in perms):
                    raise ApiError(403, f"you need the permission {' or '.join(repr(p) for p in perms)}")
                missing = [p for p in all_perms if not user.has_perm(p)]
                if missing:
                    raise ApiError(403, f"you need the permission {' and '.join(repr(p) for p in missing)}")
                return view(request, user, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except PermissionDenied as exc:
                return ApiError(403, str(exc) or "permission denied").response()

        return wrapper

    return deco


# --- parsing ----------------------------------------------------------------------------------


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = request.body
    except RequestDataTooBig:
        raise ApiError(413, "the request body is too large") from None
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, not {type(data).__name__}")
    try:
        # JSON may escape a lone surrogate ("\\ud800"), which no database text can hold.
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "the body holds a lone surrogate (\\ud800-\\udfff): not valid text") from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply") from None
    return data


def _id(value: Any, field: str) -> int:
    """A positive id from JSON (an integer) or a query string (digits)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        # JSON has one number type: 12.0 is the integer 12 (JSON Schema's "integer" agrees).
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, {field: ["must be a positive integer"]})
    if not 0 < value <= selectors.MAX_ID:
        raise ApiError(400, {field: [f"must be between 1 and {selectors.MAX_ID}"]})
    return value


def _query(
    request: HttpRequest, allowed: set[str], *, integers: frozenset[str] = frozenset()
) -> dict[str, str]:
    """The query's parameters, stripped. An empty text parameter is as good as absent; an empty
    integer one (`after_id=`) is kept, so that it is refused as not an integer."""
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        raise ApiError(
            400, {k: [f"unknown parameter (known: {', '.join(sorted(allowed))})"] for k in unknown}
        )
    return {k: v for k in allowed if k in request.GET and ((v := request.GET[k].strip()) or k in integers)}


def _fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse the body's keys other than `allowed` (a typo must not be silently ignored)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        expected = " and ".join(sorted(allowed)) if allowed else "no fields"
        raise ApiError(400, {k: [f"unknown field (expected {expected})"] for k in unknown})


def _text(body: Mapping[str, Any], field: str, *, max_length: int, required: bool = False) -> str:
    """A text field of the body, stripped; "" when absent or null (unless `required`)."""
    value = body.get(field)
    if value is None:
        if required:
            raise ApiError(400, {field: ["this field is required"]})
        return ""
    if not isinstance(value, str):
        raise ApiError(400, {field: [f"must be a string, not {type(value).__name__}"]})
    if "\x00" in value:
        # PostgreSQL text cannot hold U+0000: refused as bad input, not a 500.
        raise ApiError(400, {field: ["cannot contain NUL (\\x00) characters"]})
    if len(value) > max_length:
        raise ApiError(400, {field: [f"at most {max_length} characters"]})
    value = value.strip()
    if required and not value:
        raise ApiError(400, {field: ["this field is required"]})
    return value


# Public names for the apps that add endpoints of their own (workitems/api.py).
json_body = _json_body
positive_id = _id
query_params = _query
require_fields = _fields
text_field = _text


def _record_model() -> type[models.Model]:
    """The model `record_id` refers to: the one record model registered with the engine."""
    label = record_model_label()
    if label is None:
        raise ApiError(400, {"record_id": ["no single record model is registered: cannot resolve it"]})
    app_label, model_name = label.split(".")
    return apps.get_model(app_label, model_name)


# --- serialisation ----------------------------------------------------------------------------


def _record_json(run: Run) -> dict[str, Any] | None:
    ct = run.record_type
    if ct is None:
        return None
    return {"type": f"{ct.app_label}.{ct.model}", "id": run.record_id, "label": run.record_label}


def run_summary_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "url": reverse("api:run", args=[run.pk]),
        "orchestration": run.orchestration.api_name,
        "version": run.version.number,
        "status": run.status,
        "current_stage": run.current_stage or None,
        "record": _record_json(run),
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "started_by": run.started_by.get_username() if run.started_by else None,
        "error": run.error or None,
    }


def _step_json(sr: StepRun) -> dict[str, Any]:
    return {
        "id": sr.pk,
        "key": sr.key,
        "kind": sr.kind,
        "status": sr.status,
        "attempts": sr.attempts,
        "error": sr.error or None,
        "outputs": sr.outputs,
        "started_at": sr.started_at,
        "ended_at": sr.ended_at,
        "wake_at": sr.wake_at,
    }


def _stage_json(st: StageRun) -> dict[str, Any]:
    return {
        "key": st.key,
        "status": st.status,
        "started_at": st.started_at,
        "ended_at": st.ended_at,
        "outcome": st.outcome or None,
        "steps": [_step_json(sr) for sr in st.step_runs.all()],
    }


def run_json(run: Run) -> dict[str, Any]:
    """The full run: call with a run from selectors.run_detail (stages prefetched)."""
    return {
        **run_summary_json(run),
        "variables": run.variables,
        "inputs": run.inputs,
        "stages": [_stage_json(st) for st in run.stage_runs.all()],
    }


def _orchestration_json(o: Orchestration) -> dict[str, Any]:
    active = o.active_versions[0] if getattr(o, "active_versions", None) else None  # type: ignore[attr-defined]
    start = active.document.get("start", {}) if active else {}
    return {
        "api_name": o.api_name,
        "label": o.label,
        "description": o.description,
        "active_version": active.number if active else None,
        "start": {"type": start.get("type"), "record_type": start.get("record_type")} if active else None,
        "inputs": [
            {
                "name": v.get("name"),
                "type": v.get("type", "text"),
                "required": bool(v.get("required")),
                "description": v.get("description", ""),
            }
            for v in start.get("inputs", [])
        ],
        "launch_url": reverse("api:launch", args=[o.api_name]),
    }


# --- endpoints --------------------------------------------------------------------------------


def _run_or_404(run_id: int) -> Run:
    run = selectors.run_detail(run_id)
    if run is None:
        raise ApiError(404, f"run {run_id} does not exist")
    return run


@api_endpoint("POST", perms=(PERM_LAUNCH,))
def run_create(request: HttpRequest, user: Any, api_name: str) -> JsonResponse:
    body = _json_body(request)
    errors: dict[str, list[str]] = {
        k: ["unknown field (expected record_id and inputs)"] for k in body if k not in {"record_id", "inputs"}
    }
    if errors:
        raise ApiError(400, errors)
    inputs = body.get("inputs")
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ApiError(400, {"inputs": [f"must be a JSON object, not {type(inputs).__name__}"]})
    record_id = _id(body["record_id"], "record_id") if body.get("record_id") is not None else None
    if selectors.active_version(api_name) is None:
        raise ApiError(404, f"orchestration '{api_name}' does not exist or has no active version")
    record = None
    if record_id is not None:
        record = _record_model()._default_manager.filter(pk=record_id).first()
        # A record the caller may not see answers like one that does not exist: ids cannot be
        # probed through the launch body.
        if record is None or not record_visible_to(user=user, record=record):
            raise ApiError(404, {"record_id": [f"record {record_id} does not exist"]})
    try:
        run = run_launch(orchestration=api_name, record=record, inputs=inputs, actor=user)
    except LaunchError as exc:
        if hasattr(exc, "error_dict"):
            raise ApiError(400, {f"inputs.{k}": v for k, v in exc.message_dict.items()}) from None
        raise ApiError(400, {NON_FIELD_ERRORS: exc.messages}) from None
    detail = _run_or_404(run.pk)
    return JsonResponse(run_json(detail), status=201, headers={"Location": reverse("api:run", args=[run.pk])})


@api_endpoint("GET", perms=(PERM_VIEW_RUN,))
def run_get(request: HttpRequest, user: Any, run_id: int) -> JsonResponse:
    return JsonResponse(run_json(_run_or_404(run_id)))


@api_endpoint("GET", perms=(PERM_VIEW_RUN,))
def run_list(request: HttpRequest, user: Any) -> JsonResponse:
    q = _query(
        request,
        {"orchestration", "status", "record_id", "after_id", "limit"},
        integers=frozenset({"record_id", "after_id", "limit"}),
    )
    status = q.get("status")
    if status is not None and status not in RunStatus.values:
        raise ApiError(400, {"status": [f"must be one of {', '.join(RunStatus.values)}"]})
    limit = DEFAULT_PAGE
    if "limit" in q:
        limit = _id(q["limit"], "limit")
        if limit > selectors.MAX_RUN_PAGE:
            raise ApiError(400, {"limit": [f"must be between 1 and {selectors.MAX_RUN_PAGE}"]})
    rows, more = selectors.run_list(
        orchestration=q.get("orchestration"),
        status=status,
        record_id=_id(q["record_id"], "record_id") if "record_id" in q else None,
        after_id=_id(q["after_id"], "after_id") if "after_id" in q else None,
        limit=limit,
    )
    next_after = rows[-1].pk if more else None
    next_url = None
    if next_after is not None:
        next_url = reverse("api:runs") + "?" + urlencode({**q, "after_id": str(next_after)})
    return JsonResponse(
        {"results": [run_summary_json(r) for r in rows], "next_after_id": next_after, "next": next_url}
    )


# --- acting on runs: the run page's actions (orchestration/views/run_detail.py), with the same
# permissions (view_run, and the action's own) and the same services; the engine's transitions
# decide what is allowed now, and a refusal is a 409 that says why.


def _reason(request: HttpRequest, allowed: set[str]) -> tuple[dict[str, Any], str]:
    body = _json_body(request)
    _fields(body, allowed)
    return body, _text(body, "reason", max_length=REASON_MAX)


def _step_of(run: Run, step_run_id: int) -> StepRun:
    """The step run `step_run_id` of `run` (404 when it is not one of its steps)."""
    sr = next((s for st in run.stage_runs.all() for s in st.step_runs.all() if s.pk == step_run_id), None)
    if sr is None:
        raise ApiError(404, f"run {run.pk} has no step {step_run_id}")
    return sr


@api_endpoint("POST", all_perms=(PERM_VIEW_RUN, PERM_CANCEL))
def run_cancel_view(request: HttpRequest, user: Any, run_id: int) -> JsonResponse:
    run = _run_or_404(run_id)
    _, reason = _reason(request, {"reason"})
    try:
        run_cancel(run_id=run.pk, actor=user, reason=reason)
    except ActionNotAllowed as exc:
        raise ApiError(409, str(exc)) from None
    return JsonResponse(run_json(_run_or_404(run.pk)))


def _step_operation(
    request: HttpRequest, user: Any, run_id: int, step_run_id: int, operation: Any
) -> JsonResponse:
    """A step operation that takes only a reason (retry, resume): 409 when it does not apply."""
    sr = _step_of(_run_or_404(run_id), step_run_id)
    _, reason = _reason(request, {"reason"})
    try:
        operation(step_run_id=sr.pk, actor=user, reason=reason)
    except ActionNotAllowed as exc:
        raise ApiError(409, str(exc)) from None
    return JsonResponse(run_json(_run_or_404(run_id)))


@api_endpoint("POST", all_perms=(PERM_VIEW_RUN, PERM_RETRY))
def step_retry_view(request: HttpRequest, user: Any, run_id: int, step_run_id: int) -> JsonResponse:
    return _step_operation(request, user, run_id, step_run_id, step_retry)


@api_endpoint("POST", all_perms=(PERM_VIEW_RUN, PERM_SKIP))
def step_skip_view(request: HttpRequest, user: Any, run_id: int, step_run_id: int) -> JsonResponse:
    sr = _step_of(_run_or_404(run_id), step_run_id)
    body, reason = _reason(request, {"reason", "outputs"})
    outputs = body.get("outputs")
    if outputs is None:
        outputs = {}
    if not isinstance(outputs, dict):
        raise ApiError(400, {"outputs": [f"must be a JSON object, not {type(outputs).__name__}"]})
    try:
        step_skip(step_run_id=sr.pk, outputs=outputs, actor=user, reason=reason)
    except ActionNotAllowed as exc:
        raise ApiError(409, str(exc)) from None
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ApiError(400, {f"outputs.{k}": v for k, v in exc.message_dict.items()}) from None
        # An output that does not fit the variable the step maps it to.
        raise ApiError(400, {"outputs": exc.messages}) from None
    return JsonResponse(run_json(_run_or_404(run_id)))


@api_endpoint("POST", all_perms=(PERM_VIEW_RUN, PERM_RETRY))
def step_resume_view(request: HttpRequest, user: Any, run_id: int, step_run_id: int) -> JsonResponse:
    """The run page's "Resume now" of a waiting wait step (the same permission as retry)."""
    return _step_operation(request, user, run_id, step_run_id, step_resume)


# --- moving running runs to another version (orchestration/services/migration.py): the version
# page's "Migrate runs here", with its permissions (a monitoring one and import_definitions).

MIGRATION_FIELDS = {"from_version", "to_version", "mapping", "run_ids"}
KEY_MAX = 100  # a stage or step key (definitions.py's keys are shorter)
RUN_IDS_MAX = 10_000
REFUSED_SHOWN = 1_000  # refused runs listed one by one in an answer (the counts cover them all)


def _key_pairs(value: Any, field: str) -> dict[str, str]:
    """`{"old": "new", ...}` of the mapping (absent or null: none)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise ApiError(400, {field: [f"must be a JSON object of old key to new key, not {kind}"]})
    out = {}
    for old, new in value.items():
        where = f"{field}.{old}"
        if not isinstance(new, str):
            raise ApiError(400, {where: [f"must be a string (the new key), not {type(new).__name__}"]})
        for text in (old, new):
            if "\x00" in text or len(text) > KEY_MAX or not text.strip():
                raise ApiError(400, {where: [f"a key is 1 to {KEY_MAX} characters, without NUL"]})
        out[old.strip()] = new.strip()
    return out


def _migration_request(
    request: HttpRequest, api_name: str
) -> tuple[OrchestrationVersion, OrchestrationVersion, MigrationMapping, list[int] | None]:
    body = _json_body(request)
    _fields(body, MIGRATION_FIELDS)
    numbers = {}
    for field in ("from_version", "to_version"):
        if body.get(field) is None:
            raise ApiError(400, {field: ["this field is required"]})
        numbers[field] = _id(body[field], field)
    mapping = body.get("mapping")
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise ApiError(400, {"mapping": [f"must be a JSON object, not {type(mapping).__name__}"]})
    unknown = sorted(set(mapping) - {"stages", "steps"})
    if unknown:
        raise ApiError(400, {f"mapping.{k}": ["unknown field (expected stages and steps)"] for k in unknown})
    plan = MigrationMapping(
        stages=_key_pairs(mapping.get("stages"), "mapping.stages"),
        steps=_key_pairs(mapping.get("steps"), "mapping.steps"),
    )
    run_ids = body.get("run_ids")
    if run_ids is not None:
        if not isinstance(run_ids, list):
            raise ApiError(400, {"run_ids": [f"must be a list of run ids, not {type(run_ids).__name__}"]})
        if not run_ids or len(run_ids) > RUN_IDS_MAX:
            raise ApiError(400, {"run_ids": [f"give 1 to {RUN_IDS_MAX} run ids (or leave it out: all)"]})
        run_ids = [_id(pk, "run_ids") for pk in run_ids]
    if not Orchestration.objects.filter(api_name=api_name).exists():
        raise ApiError(404, f"orchestration '{api_name}' does not exist")
    versions = {}
    for field, number in numbers.items():
        version = selectors.orchestration_version(api_name, number)
        if version is None:
            raise ApiError(404, {field: [f"orchestration '{api_name}' has no version {number}"]})
        versions[field] = version
    source, target = versions["from_version"], versions["to_version"]
    if source.pk == target.pk:
        raise ApiError(400, {"to_version": ["the runs are on that version already: choose another one"]})
    problems = mapping_unknown(source=source, target=target, mapping=plan)
    if problems:
        raise ApiError(400, {f"mapping.{k}": [v] for k, v in problems.items()})
    return source, target, plan, run_ids


def _refused_json(refused: Mapping[int, str]) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    for why in refused.values():
        reasons[why] = reasons.get(why, 0) + 1
    shown = sorted(refused)[:REFUSED_SHOWN]
    return {
        "reasons": [
            {"reason": why, "runs": n} for why, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "refused_runs": [{"id": pk, "reason": refused[pk]} for pk in shown],
        "refused_runs_complete": len(shown) == len(refused),
    }


@api_endpoint("POST", perms=(PERM_VIEW_RUN, PERM_VIEW_ORCHESTRATION), all_perms=(PERM_IMPORT,))
def migration_preview_view(request: HttpRequest, user: Any, api_name: str) -> JsonResponse:
    """Which open runs of `from_version` can move to `to_version`, and why the others cannot.
    Changes nothing."""
    source, target, plan, run_ids = _migration_request(request, api_name)
    preview = migration_preview(source=source, target=target, mapping=plan)
    movable, refused = preview.movable, preview.refused
    if run_ids is not None:
        # Only the runs asked about; one that is not an open run of that version is refused as
        # apply would refuse it.
        wanted = set(run_ids)
        movable = [pk for pk in movable if pk in wanted]
        refused = {pk: why for pk, why in refused.items() if pk in wanted}
        for pk in wanted - set(movable) - set(refused):
            refused[pk] = "it is no longer an open run of that version"
    return JsonResponse(
        {
            "orchestration": api_name,
            "from_version": source.number,
            "to_version": target.number,
            "runs": len(movable) + len(refused),
            "movable": len(movable),
            "refused": len(refused),
            **_refused_json(refused),
        }
    )


@api_endpoint("POST", perms=(PERM_VIEW_RUN, PERM_VIEW_ORCHESTRATION), all_perms=(PERM_IMPORT,))
def migration_apply_view(request: HttpRequest, user: Any, api_name: str) -> JsonResponse:
    """Move the open runs of `from_version` (or only `run_ids` of them) that can move; each run
    is judged again under its lock, and a refused one is left as it was."""
    source, target, plan, run_ids = _migration_request(request, api_name)
    outcome = migration_apply(source=source, target=target, mapping=plan, actor=user, run_ids=run_ids)
    return JsonResponse(
        {
            "orchestration": api_name,
            "from_version": source.number,
            "to_version": target.number,
            "migrated": len(outcome.migrated),
            "refused": len(outcome.refused),
            **_refused_json(outcome.refused),
        }
    )


@api_endpoint("GET", perms=(PERM_VIEW_ORCHESTRATION, PERM_LAUNCH))
def orchestration_list(request: HttpRequest, user: Any) -> JsonResponse:
    return JsonResponse({"results": [_orchestration_json(o) for o in selectors.orchestration_list()]})


@api_endpoint("GET", auth=False)
def openapi(request: HttpRequest, user: None) -> JsonResponse:
    # Public: it describes the API, it holds no data.
    return JsonResponse(openapi_document())


@api_endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", auth=False)
def not_found(request: HttpRequest, user: None) -> JsonResponse:
    raise ApiError(404, f"no API endpoint at {request.path} (see /api/openapi.json)")
