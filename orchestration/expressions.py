"""Expressions and templates in a Jinja2 sandbox, compiled once and cached.

Definitions hold small expressions (`record.amount > 10000`, `vars.approved`) and email
templates. They are checked when a definition is imported (syntax, only known top-level names,
no dunder access) and evaluated at run time in Jinja2's SandboxedEnvironment. Never `eval`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
from typing import Any

from django.utils import timezone
from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
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
MAX_TEMPLATE_CHARS = 1_000_000  # an email body: text only, ten times an expression's result


class ExpressionError(Exception):
    """An expression that cannot be compiled or evaluated; the message says why."""


MAX_INT_BITS = 1_000_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox stops attribute escapes but not arithmetic that never ends: `7**99999999`
    would hold a worker (and, inside the engine, a run lock) for minutes, and `'a' * 10**9`
    would take a gigabyte before the result-size check sees it. Intercepting `*` and `**` also
    stops Jinja folding such constants at compile time, so import cannot hang either."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(left) and _is_int(right):
            if right > 0 and abs(left) > 1 and right * abs(left).bit_length() > MAX_INT_BITS:
                raise SecurityError("the result of ** would be too large")
        elif operator == "%" and isinstance(left, str):
            # printf-style formatting builds the whole padded text before the result-size check
            # sees it: '%999999999d' % 1 would take a gigabyte.
            _refuse_wide_format(left)
            _refuse_sizes(right if isinstance(right, tuple) else (right,), {})
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and _is_int(n) and len(seq) * n > MAX_RESULT_CHARS:
                    raise SecurityError(f"the result of * would be longer than {MAX_RESULT_CHARS}")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        # str.format / format_map reach here, not `call`: '{:>999999999}'.format(1) pads to a
        # gigabyte, and a nested width ('{:{}}'.format(1, 10**9)) comes in the arguments.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = str(value.__self__)

        @functools.wraps(wrapped)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _refuse_wide_format(fmt)
            _refuse_sizes(args, kwargs)
            return wrapped(*args, **kwargs)

        return guarded

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # str methods that pad to a width ('a'.ljust(10**9), .center, .zfill, .expandtabs).
        if isinstance(getattr(__obj, "__self__", None), str):
            _refuse_sizes(args, kwargs)
            if getattr(__obj, "__name__", "") == "replace":
                _refuse_big_replace(__obj.__self__, *args[:2])
        return super().call(__context, __obj, *args, **kwargs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_sizes(args: Any, kwargs: dict[str, Any]) -> None:
    if any(_is_int(v) and v > MAX_RESULT_CHARS for v in (*args, *kwargs.values())):
        raise SecurityError(f"a width or count above {MAX_RESULT_CHARS} is not allowed")


# A width or precision in a printf-style (`%10d`, `%.3f`) or str.format (`{:>10}`) format.
_PERCENT_WIDTHS = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPECS = re.compile(r"\{[^{}]*:([^{}]*)\}")


def _refuse_wide_format(fmt: str) -> None:
    """Refuse a format whose widths or precisions would build a result above the limit."""
    numbers = [g for m in _PERCENT_WIDTHS.finditer(fmt) for g in m.groups() if g and g != "*"]
    numbers += [n for spec in _BRACE_SPECS.findall(fmt) for n in re.findall(r"\d+", spec)]
    # Compared as text first: int() of a 5000-digit string is refused by Python itself.
    if any(len(n) > len(str(MAX_RESULT_CHARS)) or int(n) > MAX_RESULT_CHARS for n in numbers):
        raise SecurityError(f"a width or precision above {MAX_RESULT_CHARS} is not allowed")


def _refuse_big_replace(text: Any, old: Any = None, new: Any = None) -> None:
    """`'x,'|replace(',', 'x' * 1000)|replace('x', 'x' * 1000)|…` multiplies the length at each
    step (a gigabyte after three): refuse a replacement whose result would pass the limit."""
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > MAX_RESULT_CHARS:
            raise SecurityError(f"the result of replace would be longer than {MAX_RESULT_CHARS}")


def _replace_filter(fn: Any) -> Any:
    @functools.wraps(fn)  # keeps Jinja's pass_eval_context marker
    def guarded(
        eval_ctx: Any, value: Any, old: Any = None, new: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        _refuse_big_replace(str(value), old, new)
        return fn(eval_ctx, value, old, new, *args, **kwargs)

    return guarded


def _format_filter(fn: Any) -> Any:
    """The `format` filter is printf-style formatting of its value: the same limits as `%`."""

    @functools.wraps(fn)
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            _refuse_wide_format(value)
        _refuse_sizes(args, kwargs)
        return fn(value, *args, **kwargs)

    return guarded


def _sized_filter(fn: Any, skip: int) -> Any:
    """Wrap a filter whose arguments after the first `skip` ones are widths or counts."""

    @functools.wraps(fn)  # keeps Jinja's pass_environment marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _refuse_sizes(args[skip:], kwargs)
        return fn(*args, **kwargs)

    return guarded


# Filters that build a result as large as a number they are given (the value itself is first,
# after the environment for wordwrap).
_SIZED_FILTERS = {"center": 1, "indent": 1, "batch": 1, "slice": 1, "wordwrap": 2}


def _data_only(value: Any) -> Any:
    """What a template prints is data: `{{ record.name.upper }}` (no call) would print
    "<built-in method upper of str object at 0x7f…>", an address of the server's memory."""
    if callable(value) and not isinstance(value, ChainableUndefined):
        raise SecurityError("a function cannot be printed: call it, e.g. name.upper()")
    return value


def _environment(*, html: bool = False) -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=ChainableUndefined, autoescape=html, finalize=_data_only)
    # Only our names: Jinja's defaults (range, lipsum, namespace, …) are not part of the
    # documented expression language, and `check` treats any environment global as known.
    env.globals.clear()
    env.globals.update(GLOBALS)
    for name, skip in _SIZED_FILTERS.items():
        env.filters[name] = _sized_filter(env.filters[name], skip)
    env.filters["format"] = _format_filter(env.filters["format"])
    env.filters["replace"] = _replace_filter(env.filters["replace"])
    return env


ENV = _environment()
HTML_ENV = _environment(html=True)


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
def _compiled(source: str, names: frozenset[str] = NAMES) -> Any:
    reason = check(source, names=names)
    if reason:
        raise ExpressionError(reason)
    try:
        return ENV.compile_expression(source, undefined_to_none=True)
    except TemplateSyntaxError as exc:  # pragma: no cover - check() parses the same text
        raise ExpressionError(f"invalid expression: {exc.message}") from exc
    except RecursionError as exc:
        # Jinja's optimizer recurses per level of nesting, deeper than its parser does: an
        # expression that parsed can still run out of stack here.
        raise ExpressionError("invalid expression: nested too deeply") from exc


# What a definition's expression can raise while it runs: stored on the step or run, never a crash.
_RUNTIME_ERRORS = (
    TemplateError,  # SecurityError, UndefinedError, TemplateRuntimeError
    TypeError,
    ValueError,
    ArithmeticError,  # ZeroDivisionError, OverflowError, decimal errors
    AttributeError,
    LookupError,
    RecursionError,
)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ZeroDivisionError):
        # decimal.DivisionByZero's own text is "[<class 'decimal.DivisionByZero'>]".
        return "ZeroDivisionError: division by zero"
    if isinstance(exc, decimal.InvalidOperation):
        return "InvalidOperation: not a valid decimal operation"
    return f"{type(exc).__name__}: {exc}"


def evaluate(source: str, context: dict[str, Any], *, names: frozenset[str] = NAMES) -> Any:
    """Evaluate an expression; raise ExpressionError with a readable message on failure.
    `names`: those it may use, when its context is not a step's (an SLA rule's)."""
    fn = _compiled(source, names)
    try:
        value = fn(**context)
    except _RUNTIME_ERRORS as exc:
        raise ExpressionError(f"{source!r}: {_reason(exc)}") from exc
    if isinstance(value, ChainableUndefined):
        return None
    if callable(value):
        # `record.name.upper` without (): a method object is not a value a run can store.
        raise ExpressionError(f"{source!r}: the result is a function, not a value (call it with ())")
    if isinstance(value, str) and len(value) > MAX_RESULT_CHARS:
        raise ExpressionError(f"{source!r}: result longer than {MAX_RESULT_CHARS} characters")
    return value


def truthy(source: str, context: dict[str, Any]) -> bool:
    return bool(evaluate(source, context))


@functools.lru_cache(maxsize=1024)
def _template(source: str, html: bool, names: frozenset[str] = NAMES) -> Any:
    reason = check(source, template=True, names=names)
    if reason:
        raise ExpressionError(reason)
    return (HTML_ENV if html else ENV).from_string(source)


def render(source: str, context: dict[str, Any], *, html: bool = False, names: frozenset[str] = NAMES) -> str:
    """Render an admin-written template (email subject/body) in the sandbox."""
    try:
        text = str(_template(source, html, names).render(**context))
    except _RUNTIME_ERRORS as exc:
        raise ExpressionError(f"template: {_reason(exc)}") from exc
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ExpressionError(f"template: result longer than {MAX_TEMPLATE_CHARS} characters")
    return text
