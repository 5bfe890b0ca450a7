from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

V = TypeVar("V", bound=Callable[..., Any])
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

            # django-htmx gives the path only for a same-origin HX-Current-URL (None otherwise),
            # but a path can still read as another site ("//evil.example/"): keep only a path
            # the login view would follow itself.
            page = request.htmx.current_url_abs_path or "/"  # type: ignore[attr-defined]
            if not url_has_allowed_host_and_scheme(page, allowed_hosts=None):
                page = "/"
            return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?next={quote(page)}")
        return response


def max_request_bytes(limit: int, *, accepts: str = "") -> Callable[[V], V]:
    """Set the request body limit of one view (RequestSizeLimitMiddleware enforces it); `accepts`
    says in the refusal what the page takes, e.g. "files up to 1 MB"."""

    def deco(view: V) -> V:
        view.max_request_bytes = limit  # type: ignore[attr-defined]
        view.max_request_accepts = accepts  # type: ignore[attr-defined]
        return view

    return deco


def format_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n // 1024} KB"
    return f"{n} bytes"


class RequestSizeLimitMiddleware:
    """Answer 413 to a request whose Content-Length is over the limit, before anything reads the
    body: Django caps form fields and JSON it parses in memory (DATA_UPLOAD_MAX_MEMORY_SIZE), but
    it streams uploaded files to a temporary file of any size. The limit is MAX_REQUEST_BYTES, or
    a view's own (`@max_request_bytes`). It runs in process_view, ahead of CsrfViewMiddleware,
    whose process_view reads a form POST's body for the token.

    A body without Content-Length (chunked) is not read by Django's WSGI request at all, so the
    header is the whole story here; the reverse proxy's client_max_body_size is the outer wall."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        limit = getattr(view, "max_request_bytes", settings.MAX_REQUEST_BYTES)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= limit:
            return None
        accepts = getattr(view, "max_request_accepts", "") or f"at most {format_bytes(limit)}"
        message = (
            f"The request is too large ({format_bytes(length)}): this page accepts {accepts}. "
            "Nothing was read or saved."
        )
        match = request.resolver_match
        if match is not None and match.namespace == "api":
            return JsonResponse({"errors": {"__all__": [message]}}, status=413)
        # No "Connection: close" here: WSGI forbids hop-by-hop headers from the application; the
        # server (gunicorn's sync workers close every connection) deals with the unread body.
        return render(request, "413.html", {"message": message}, status=413)


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


PROBE_PATHS = ("/healthz", "/readyz")


class ProbeMiddleware:
    """Answer the health probes first, before anything reads the Host header or the session.

    A Kubernetes kubelet or a load balancer asks the pod or machine by its IP address, which is
    not in ALLOWED_HOSTS (every other URL would answer 400), over plain HTTP (the HTTPS redirect
    would answer 301), and must not create sessions. The probes disclose nothing but "ok" or
    which dependency failed."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in PROBE_PATHS and request.method in ("GET", "HEAD"):
            from . import views

            return views.healthz(request) if request.path_info == "/healthz" else views.readyz(request)
        return self.get_response(request)
