"""Template filters of the builder's pages."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def lookup(mapping: Any, key: Any) -> Any:
    """mapping[key], or nothing: `{{ by_element|lookup:"stage:intake" }}`."""
    try:
        return mapping.get(key, [])
    except AttributeError:
        return []
