from __future__ import annotations

import sys

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from django.views.defaults import server_error as django_server_error

from config.middleware import DATABASE_ERRORS, database_unavailable_response


class LogoutView(auth_views.LogoutView):
    """Django's logout (a POST), saying on the login page that it happened."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response


@require_safe  # GET and HEAD: a POST here would be a request nobody meant
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches neither the database nor the broker, so that a
    database outage does not make an orchestrator restart every web process (readyz says that)."""
    return JsonResponse({"status": "ok"})


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: this process can serve: the database answers, the migrations are applied, the
    broker accepts a connection. 503 naming what failed, for load balancers and Kubernetes."""
    from . import readiness

    checks = readiness.run_checks()
    ok = all(c["ok"] for c in checks.values())
    response = JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
    response["Cache-Control"] = "no-store"
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an exception that escaped a middleware because the database went away is a
    503 "try again" too (DatabaseUnavailableMiddleware answers for views); anything else is
    Django's plain 500 page."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_ERRORS):
        return database_unavailable_response(request)
    return django_server_error(request)
