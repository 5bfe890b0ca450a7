"""`{{ user|person }}` and `{{ user|person_label }}` (a builtin: every template has them)."""

from __future__ import annotations

from typing import Any

from django import template

from orchestration.people import person_label as _person_label
from orchestration.people import person_name

register = template.Library()


@register.filter
def person(user: Any, default: str = "") -> str:
    """The person's full name, else their username; `default` (e.g. "the system") for no one."""
    return person_name(user, default=default)


@register.filter
def person_label(user: Any) -> str:
    return "" if user is None else _person_label(user)
