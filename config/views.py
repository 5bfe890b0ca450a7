from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from records.models import RecordType


@login_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"record_types": RecordType.objects.all()})


class LogoutView(auth_views.LogoutView):
    """Django's logout (a POST), saying on the login page that it happened."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response


@require_safe  # GET and HEAD: a POST here would be a request nobody meant
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"ok": True})
