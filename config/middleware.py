from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django_htmx.http import HttpResponseClientRedirect

log = logging.getLogger(__name__)


class HtmxLoginRedirectMiddleware:
    """An htmx request whose session expired would swap the login page into a panel; send the
    whole browser to the login page instead (back to the page it was on afterwards)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            getattr(request, "htmx", False)
            and response.status_code == 302
            and response["Location"].startswith(resolve_url(settings.LOGIN_URL))
        ):
            from urllib.parse import quote

            page = request.htmx.current_url_abs_path or "/"  # type: ignore[attr-defined]
            return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?next={quote(page)}")
        return response


# What a client should wait before trying again (seconds): a database restart or failover takes
# a few seconds.
RETRY_AFTER_SECONDS = 5
DATABASE_ERRORS = (OperationalError, InterfaceError)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 "temporarily unavailable, try again" with Retry-After: JSON under /api/, else a
    page. Rendered without the request's context processors: they query the database."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "error": "the service is temporarily unavailable, try again",
                "retry_after": RETRY_AFTER_SECONDS,
            },
            status=503,
            headers=headers,
        )
    html = render_to_string("503.html", {"retry_after": RETRY_AFTER_SECONDS, "path": request.path})
    return HttpResponse(html, status=503, headers=headers)


class DatabaseUnavailableMiddleware:
    """A view that loses the database (a restart, a failover, too many connections) answers
    503 with Retry-After instead of a 500 traceback page.

    Django turns an exception raised in a middleware into a response before the middleware
    around it sees it, so `process_exception` only covers views: `config.views.server_error`
    (handler500) answers the same for the rest (sessions, authentication)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        log.warning("database unavailable during %s %s: %s", request.method, request.path, exception)
        return database_unavailable_response(request)
