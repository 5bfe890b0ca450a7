"""Running flows: autolaunched and evaluation flows (their actions, in order), and checking a
screen flow's submitted values. Flow effects happen outside the run lock."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlparse

from django.conf import settings

from . import expressions
from .definitions import (
    AutolaunchedFlow,
    CallAction,
    EvaluationFlow,
    HttpAction,
    ScreenField,
    ScreenFlow,
    SendEmailAction,
    SetOutputsAction,
    Variable,
)
from .registry import FLOW_ACTIONS, PYTHON_FLOWS, FlowContext, register_flow_action
from .values import TypeCoercionError, from_json, to_json, to_jsonable

log = logging.getLogger(__name__)


class FlowError(Exception):
    """A flow failed; the message is stored on the step for admins."""


# Set (to an empty list) while a test run replays a draft (orchestration/builder/sandbox.py):
# its database changes are rolled back, but a call to another system could not be, so `http`
# actions are not sent. Each appends what it would have sent and gives no output. A Python
# flow (`call`) with effects outside the database should look at `dry_run()` likewise.
DRY_RUN: ContextVar[list[str] | None] = ContextVar("orchestration_dry_run", default=None)


def dry_run() -> list[str] | None:
    """The notes of the test run in progress (append what you would have done), or None."""
    return DRY_RUN.get()


def resolve_inputs(
    declared: list[Variable], mapping: dict[str, str], context: dict[str, Any]
) -> dict[str, Any]:
    """Evaluate a step's input mapping (and the flow's input defaults) into typed JSON values."""
    out: dict[str, Any] = {}
    for var in declared:
        source = mapping.get(var.name, var.default)
        if source is None:
            if var.required:
                raise FlowError(f"input '{var.name}' is required and has no value")
            out[var.name] = None
            continue
        try:
            value = expressions.evaluate(source, context)
            out[var.name] = to_json(var.type, value)
        except expressions.ExpressionError as exc:
            raise FlowError(f"input '{var.name}': {exc}") from exc
        except TypeCoercionError as exc:
            raise FlowError(f"input '{var.name}': {exc}") from exc
        if var.required and out[var.name] is None:
            raise FlowError(f"input '{var.name}' is required but evaluated to nothing")
    return out


def typed_inputs(declared: list[Variable], values: dict[str, Any]) -> dict[str, Any]:
    types = {v.name: v.type for v in declared}
    return {k: from_json(types.get(k, "text"), v) for k, v in values.items()}


def run_actions(flow: AutolaunchedFlow | EvaluationFlow, ctx: FlowContext) -> dict[str, Any]:
    for i, action in enumerate(flow.actions):
        ctx.action_index = i  # the action's idempotency key (ctx.action_key) names it
        handler = FLOW_ACTIONS.get(action.type)
        if handler is None:
            raise FlowError(f"actions[{i}]: no handler for action type '{action.type}'")
        try:
            produced = handler(action, ctx) or {}
        except FlowError as exc:
            raise FlowError(f"actions[{i}] ({action.type}): {exc}") from exc
        except expressions.ExpressionError as exc:
            raise FlowError(f"actions[{i}] ({action.type}): {exc}") from exc
        ctx.outputs.update(produced)
    if isinstance(flow, AutolaunchedFlow):
        out: dict[str, Any] = {}
        for o in flow.outputs:
            try:
                out[o.name] = to_json(o.type, ctx.outputs.get(o.name))
            except TypeCoercionError as exc:
                raise FlowError(f"output '{o.name}': {exc}") from exc
        return out
    return {"is_condition_met": bool(ctx.outputs.get("is_condition_met"))}


def evaluate_condition_flow(flow: EvaluationFlow, ctx: FlowContext) -> bool:
    return bool(run_actions(flow, ctx)["is_condition_met"])


# --- built-in actions that need no other app ---------------------------------------------------


@register_flow_action("set_outputs")
def _set_outputs(action: SetOutputsAction, ctx: FlowContext) -> dict[str, Any]:
    ectx = ctx.expression_context()
    return {k: to_jsonable(expressions.evaluate(v, ectx)) for k, v in action.values.items()}


@register_flow_action("call")
def _call(action: CallAction, ctx: FlowContext) -> dict[str, Any]:
    fn = PYTHON_FLOWS.get(action.name)
    if fn is None:
        raise FlowError(f"no Python flow registered as '{action.name}'")
    result = fn(ctx)
    return to_jsonable(dict(result or {}))


@register_flow_action("send_email")
def _send_email(action: SendEmailAction, ctx: FlowContext) -> dict[str, Any]:
    from .outbox import outbox_write

    ectx = ctx.expression_context()
    to = expressions.evaluate(action.to, ectx)
    # An empty field in a list (`[record.email, inputs.cc]`) is skipped, not sent to "None".
    recipients = [to] if isinstance(to, str) else [str(x) for x in (to or []) if x]
    recipients = [r for r in recipients if r]
    if not recipients:
        raise FlowError("send_email: no recipient")
    # A header is one line: a CR or LF from a record value would make Django refuse the
    # message (BadHeaderError, the step failing on every attempt), so all whitespace runs,
    # line breaks included, become one space.
    subject = " ".join(expressions.render(action.subject, ectx).split())
    body = expressions.render(action.body, ectx)
    email: dict[str, Any] = {"key": ctx.action_key, "to": recipients, "subject": subject, "body": body}
    if ctx.emails is not None:
        # A background step: nothing is sent from inside the flow. The email becomes an outbox
        # row in the transaction that stores the step's result (background_step_execute).
        ctx.emails.append(email)
    else:
        outbox_write(kind="flow", run_id=ctx.run_id, step_run_id=None, **email)
    return {}


@register_flow_action("http")
def _http(action: HttpAction, ctx: FlowContext) -> dict[str, Any]:
    import requests

    ectx = ctx.expression_context()
    url = str(expressions.evaluate(action.url, ectx) or "")
    parts = urlparse(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise FlowError(f"http: not an http(s) URL: {url!r}")
    allowed = settings.ORCHESTRATION_HTTP_ALLOWED_HOSTS
    if allowed and parts.hostname not in allowed:
        raise FlowError(f"http: host {parts.hostname!r} is not in ORCHESTRATION_HTTP_ALLOWED_HOSTS")
    body = None
    if action.json_body is not None:
        body = {k: to_jsonable(expressions.evaluate(v, ectx)) for k, v in action.json_body.items()}
    # The same key on every attempt of this action of this step run: a receiver that
    # de-duplicates applies a retried call once.
    headers = {"Idempotency-Key": ctx.action_key, **action.headers}
    notes = DRY_RUN.get()
    if notes is not None:
        notes.append(f"would call {action.method} {url}" + (f" with {json.dumps(body)}" if body else ""))
        return {action.output: None} if action.output else {}
    try:
        resp = requests.request(action.method, url, json=body, headers=headers, timeout=action.timeout)
    except requests.RequestException as exc:
        raise FlowError(f"http: {type(exc).__name__}: {exc}") from exc
    if resp.status_code not in action.expect_status:
        raise FlowError(f"http: {action.method} {url} answered {resp.status_code}")
    if action.output:
        try:
            data: Any = resp.json()
        except ValueError:
            data = resp.text[:10_000]
        return {action.output: data}
    return {}


# --- screen flows -----------------------------------------------------------------------------


def screen_field_value(field: ScreenField, raw: Any) -> Any:
    """Validate one submitted value; raise TypeCoercionError with a user-facing message."""
    empty = raw is None or raw == "" or raw == []
    if empty:
        if field.required and field.type != "boolean":
            raise TypeCoercionError("This field is required.")
        return False if field.type == "boolean" else ([] if field.type == "multi_choice" else None)
    value = to_json(field.type, raw)
    if field.type == "choice" and value not in field.choices:
        raise TypeCoercionError(f"Choose one of: {', '.join(field.choices)}.")
    if field.type == "multi_choice":
        bad = [v for v in value if v not in field.choices]
        if bad:
            raise TypeCoercionError(f"Not a valid choice: {', '.join(bad)}.")
    if isinstance(value, str) and field.type in {"text", "long_text", "email"}:
        if field.max_length is not None and len(value) > field.max_length:
            raise TypeCoercionError(f"At most {field.max_length} characters.")
        if field.min_length is not None and len(value) < field.min_length:
            raise TypeCoercionError(f"At least {field.min_length} characters.")
    if field.type in {"number", "decimal"}:
        num = float(value)
        if field.min_value is not None and num < field.min_value:
            raise TypeCoercionError(f"Must be at least {field.min_value:g}.")
        if field.max_value is not None and num > field.max_value:
            raise TypeCoercionError(f"Must be at most {field.max_value:g}.")
    return value


def screen_flow_validate(
    flow: ScreenFlow, data: dict[str, Any], *, screens: list[int] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check submitted values against the flow's screens (all by default).

    Returns (clean values, {field name: error message})."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    picked = flow.screens if screens is None else [flow.screens[i] for i in screens]
    for screen in picked:
        for f in screen.fields:
            try:
                clean[f.name] = screen_field_value(f, data.get(f.name))
            except TypeCoercionError as exc:
                errors[f.name] = str(exc) if str(exc).endswith(".") else f"{exc}."
    return clean, errors
