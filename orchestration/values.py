"""Typed values: coerce what a definition, a form or the API gives into JSON-safe data, and
back into Python values for expressions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.dateparse import parse_date, parse_datetime


class TypeCoercionError(ValueError):
    pass


def to_json(type_: str, value: Any) -> Any:
    """Coerce a value into the JSON form stored for `type_`; raise TypeCoercionError."""
    result = _coerce(type_, value)
    try:
        nul = _has_nul(result)
    except RecursionError:
        raise TypeCoercionError(f"expected a value of type {type_} (nested too deeply)") from None
    if nul:
        # PostgreSQL text and jsonb cannot hold U+0000: refuse it as bad input, not a 500.
        raise TypeCoercionError("text cannot contain NUL (\\x00) characters")
    return result


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def _coerce(type_: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        match type_:
            case "text" | "long_text" | "choice":
                return str(value)
            case "email":
                validate_email(str(value))
                return str(value)
            case "number":
                if isinstance(value, bool):
                    raise TypeCoercionError("expected a number")
                number = Decimal(str(value).strip())
                # "2.5" must not silently become 2 (floats were already refused; strings too).
                if number.is_finite() and number != number.to_integral_value():
                    raise TypeCoercionError("expected a whole number")
                if number.is_finite() and number.adjusted() > 100:
                    # int("1e100000000") would spend seconds building a 100-million-digit int.
                    raise TypeCoercionError("number too large")
                return int(number)
            case "decimal":
                if isinstance(value, bool):
                    raise TypeCoercionError("expected a decimal number")
                d = Decimal(str(value))
                if not d.is_finite():
                    raise TypeCoercionError("expected a finite number")
                return str(d)
            case "boolean":
                if isinstance(value, bool):
                    return value
                if str(value).lower() in {"true", "1", "yes", "on"}:
                    return True
                if str(value).lower() in {"false", "0", "no", "off"}:
                    return False
                raise TypeCoercionError("expected true or false")
            case "date":
                if isinstance(value, dt.datetime):
                    return value.date().isoformat()
                if isinstance(value, dt.date):
                    return value.isoformat()
                day = parse_date(str(value))
                if day is None:
                    raise TypeCoercionError("expected a date (YYYY-MM-DD)")
                return day.isoformat()
            case "datetime":
                if isinstance(value, dt.datetime):
                    return value.isoformat()
                t = parse_datetime(str(value))
                if t is None:
                    raise TypeCoercionError("expected a date and time (ISO 8601)")
                return t.isoformat()
            case "multi_choice":
                if isinstance(value, str):
                    return [value]
                return [str(v) for v in value]
            case "user":
                if hasattr(value, "pk"):
                    return int(value.pk)
                return int(value) if str(value).isdigit() else str(value)
            case _:
                import json

                # PostgreSQL's jsonb has no NaN or Infinity: refuse them here, not at save time.
                json.dumps(value, allow_nan=False)
                return value
    except TypeCoercionError:
        raise
    except (ValueError, TypeError, InvalidOperation, ValidationError, OverflowError, RecursionError) as exc:
        raise TypeCoercionError(f"expected a value of type {type_}") from exc


def from_json(type_: str, value: Any) -> Any:
    """The Python value expressions see for a stored JSON value."""
    if value is None:
        return None
    try:
        match type_:
            case "decimal":
                return Decimal(str(value))
            case "date":
                return parse_date(value) if isinstance(value, str) else value
            case "datetime":
                return parse_datetime(value) if isinstance(value, str) else value
    except (ValueError, InvalidOperation):
        return value
    return value


def to_jsonable(value: Any) -> Any:
    """Best-effort conversion of expression results (Decimal, dates) into JSON data."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
