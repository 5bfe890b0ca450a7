"""Placeholder: being written (monitoring issue)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("not yet", status=501)


run_list = run_bulk = _todo
