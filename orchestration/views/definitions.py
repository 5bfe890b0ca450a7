"""Placeholder: being written (monitoring issue)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("not yet", status=501)


orchestration_list = definitions_upload = orchestration_detail = version_detail = version_activate_view = _todo
