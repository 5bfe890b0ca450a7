"""Login throttling: the page django-axes answers with once a username+address is locked out."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def lockout_minutes() -> int:
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """Our login page saying why the login was refused and for how long (AXES_LOCKOUT_CALLABLE),
    instead of django-axes' bare text. 429 Too Many Requests with Retry-After; the same answer
    whether or not the password was right, so it tells an attacker nothing more."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    minutes = lockout_minutes()
    context = {
        "form": form,
        "locked_out": True,
        "lockout_minutes": minutes,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "next": "",
    }
    response = TemplateResponse(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response.render()
