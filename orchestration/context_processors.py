"""Template context of the orchestration app: the monitoring tabs every app contributed
(registry.MONITOR_TABS), those the user may open, computed only when a page shows them."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from .registry import MONITOR_TABS


def monitor_tabs(request: HttpRequest) -> dict[str, Any]:
    def tabs() -> list[dict[str, Any]]:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return []
        match = request.resolver_match
        here = f"{match.namespace}:{match.url_name}" if match and match.namespace else ""
        out = []
        for tab in MONITOR_TABS:
            if not any(user.has_perm(p) for p in tab.perms):
                continue
            try:
                url = reverse(tab.url_name)
            except NoReverseMatch:  # the page's app is installed but its URLs are not
                continue
            out.append({"label": tab.label, "url": url, "current": here in tab.current})
        return out

    return {"monitor_tabs": tabs}
