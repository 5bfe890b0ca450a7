"""A database that goes away answers 503 "temporarily unavailable, try again" with
Retry-After (JSON under /api/), never a 500 traceback page."""

from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import path

from config.views import server_error


def _lost(request: HttpRequest) -> HttpResponse:
    raise OperationalError("terminating connection due to administrator command")


def _closed(request: HttpRequest) -> HttpResponse:
    raise InterfaceError("connection already closed")


def _bug(request: HttpRequest) -> HttpResponse:
    raise ValueError("a bug, not an outage")


urlpatterns = [
    path("page/", _lost),
    path("api/runs", _closed),
    path("bug/", _bug),
]
handler500 = "config.views.server_error"


@pytest.fixture
def client_here(settings):  # type: ignore[no-untyped-def]
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False
    return Client(raise_request_exception=False)


def test_a_page_that_loses_the_database_answers_503_with_retry_after(client_here, caplog):
    response = client_here.get("/page/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    page = response.content.decode()
    assert "temporarily unavailable, try again in 5 seconds" in page
    assert "Traceback" not in page
    assert [r.getMessage() for r in caplog.records if "database unavailable" in r.getMessage()] == [
        "database unavailable during GET /page/: terminating connection due to administrator command"
    ]


def test_the_api_answers_503_in_json(client_here):
    response = client_here.get("/api/runs")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "error": "the service is temporarily unavailable, try again",
        "retry_after": 5,
    }


def test_any_other_error_is_still_a_500(client_here):
    assert client_here.get("/bug/").status_code == 500


def test_handler500_answers_503_for_a_database_error_raised_outside_a_view(rf: RequestFactory):
    # Raised in a middleware (a session saved after the view), Django calls handler500 itself.
    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError:
        response = server_error(rf.get("/records/case/"))
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(rf.get("/records/case/")).status_code == 500
