"""What workitems/_schedule_form.html needs besides the item, so that any page can include it
with the item alone (the Work Items page does, for each row)."""

from __future__ import annotations

from django import template

from ..models import Priority

register = template.Library()


@register.simple_tag
def priority_choices() -> list[tuple[int, str]]:
    """[(4, "Urgent"), …, (1, "Low")]: the most urgent first, as a manager reads the list."""
    return sorted(Priority.choices, reverse=True)
