from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from records.models import RecordType


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"record_types": RecordType.objects.all()})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"ok": True})
