"""Template context for every page: the My Work badge and whether to link the Outbox."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import cached_property

from .outbox import outbox_enabled


class MyWorkBadge:
    """The number of open items on the viewer's My Work, counted when a template first asks
    for it: pages that do not show the navigation (the admin, JSON) pay no query."""

    def __init__(self, user: Any):
        self.user = user

    @cached_property
    def count(self) -> int:
        from .selectors_mywork import my_work_count

        return my_work_count(user=self.user)


def my_work(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"my_work": MyWorkBadge(user), "outbox_enabled": outbox_enabled(user)}
