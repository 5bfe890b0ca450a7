"""Expressions and templates in a Jinja2 sandbox, compiled once and cached.

Definitions hold small expressions (`record.amount > 10000`, `vars.approved`) and email
templates. They are checked when a definition is imported (syntax, only known top-level names,
no dunder access) and evaluated at run time in Jinja2's SandboxedEnvironment. Never `eval`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

from django.utils import timezone
from jinja2 import ChainableUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMES = frozenset({"record", "vars", "steps", "inputs", "run", "step", "assignee", "outputs"})
GLOBALS: dict[str, Any] = {
    "now": timezone.now,
    "today": lambda: timezone.localdate(),
    "days": lambda n: dt.timedelta(days=n),
    "hours": lambda n: dt.timedelta(hours=n),
}
_DUNDER = re.compile(r"__|\bmro\b|\bfunc_globals\b|\bgi_frame\b")
MAX_RESULT_CHARS = 100_000


class ExpressionError(Exception):
    """An expression that cannot be compiled or evaluated; the message says why."""


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
    env.globals.update(GLOBALS)
    return env


ENV = _environment()
HTML_ENV = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=True)
HTML_ENV.globals.update(GLOBALS)


def check(source: str, *, names: frozenset[str] = NAMES, template: bool = False) -> str | None:
    """Return None if `source` is a valid expression (or template), else the reason."""
    if not isinstance(source, str) or not source.strip():
        return "an expression must be a non-empty string"
    if _DUNDER.search(source):
        return "unsafe expression: access to '__' attributes is not allowed"
    text = source if template else "{{ (" + source + ") }}"
    try:
        ast = ENV.parse(text)
    except TemplateSyntaxError as exc:
        return f"invalid expression: {exc.message}"
    except RecursionError:
        return "invalid expression: nested too deeply"
    if not template:
        # Parsed inside {{ }}: a source like "a }} {{ b" would sneak in a second expression.
        from jinja2 import nodes

        body = ast.body
        if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
            return "invalid expression: give exactly one expression"
    try:
        # This runs Jinja's code generator, which is also what rejects an unknown filter or
        # test (`x|nope`): report it here, at import, rather than when a run reaches it.
        unknown = meta.find_undeclared_variables(ast) - names - set(GLOBALS)
    except TemplateSyntaxError as exc:
        return f"invalid expression: {exc.message}"
    except RecursionError:
        return "invalid expression: nested too deeply"
    if unknown:
        allowed = ", ".join(sorted(names))
        return f"unknown name {', '.join(sorted(unknown))!s} (use {allowed})"
    return None


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    reason = check(source)
    if reason:
        raise ExpressionError(reason)
    try:
        return ENV.compile_expression(source, undefined_to_none=True)
    except TemplateSyntaxError as exc:  # pragma: no cover - check() parses the same text
        raise ExpressionError(f"invalid expression: {exc.message}") from exc


def evaluate(source: str, context: dict[str, Any]) -> Any:
    """Evaluate an expression; raise ExpressionError with a readable message on failure."""
    fn = _compiled(source)
    try:
        value = fn(**context)
    except (SecurityError, UndefinedError, TypeError, ValueError, ArithmeticError) as exc:
        raise ExpressionError(f"{source!r}: {type(exc).__name__}: {exc}") from exc
    except (AttributeError, KeyError, IndexError, RecursionError, OverflowError) as exc:
        raise ExpressionError(f"{source!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, ChainableUndefined):
        return None
    if isinstance(value, str) and len(value) > MAX_RESULT_CHARS:
        raise ExpressionError(f"{source!r}: result longer than {MAX_RESULT_CHARS} characters")
    return value


def truthy(source: str, context: dict[str, Any]) -> bool:
    return bool(evaluate(source, context))


@functools.lru_cache(maxsize=1024)
def _template(source: str, html: bool) -> Any:
    reason = check(source, template=True)
    if reason:
        raise ExpressionError(reason)
    return (HTML_ENV if html else ENV).from_string(source)


def render(source: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Render an admin-written template (email subject/body) in the sandbox."""
    try:
        return str(_template(source, html).render(**context))
    except (SecurityError, UndefinedError, TypeError, ValueError, ArithmeticError) as exc:
        raise ExpressionError(f"template: {type(exc).__name__}: {exc}") from exc
    except (AttributeError, KeyError, IndexError, RecursionError) as exc:
        raise ExpressionError(f"template: {type(exc).__name__}: {exc}") from exc
