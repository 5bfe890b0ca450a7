"""CSRF on every POST: a logged-in browser session and no token (Client(enforce_csrf_checks=True))
gets 403 and changes nothing, on every URL of the URL conf (generated from the resolver: the
persona who may POST there is taken from the URL walk's table, so the refusal is the CSRF check's
and not a permission's), and on every page of the Django admin as a superuser.

The JSON API is the one exception, and only with a bearer token: a token is not an ambient
credential (a browser never attaches an Authorization header on its own, unlike a cookie), so
another site cannot make a visitor's browser send it. A session cookie alone gets 401 from the
API: it is never accepted there, so the exemption opens nothing to a forged request."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from orchestration.models import Run

from .support import (
    LOGGED_IN,
    PASSWORD,
    Allowed,
    changed,
    client_for,
    db_state,
    fill,
    is_admin,
    url_routes,
)
from .test_url_walk import ACCESS, POST_DATA, admin_values

pytestmark = pytest.mark.django_db

S = SimpleNamespace
ROUTES = url_routes()
SITE = [r for r in ROUTES if not is_admin(r)]
ADMIN = [r for r in ROUTES if is_admin(r)]


def _poster(key: str) -> str:
    """Who may POST to this URL (the walk's table); a logged-in persona if nobody may."""
    post = ACCESS[key].post or {}
    return next((p for p in LOGGED_IN if isinstance(post.get(p), Allowed)), "outsider")


def _url(s: S, key: str) -> str:
    route = next(r for r in SITE if r.key == key)
    case = ACCESS[key].cases(s)[0]
    url = case.url or fill(route, case.kwargs)
    return f"{url}?{case.query}" if case.query else url


def test_only_the_api_is_exempt_from_csrf() -> None:
    exempt = sorted(r.route for r in ROUTES if getattr(r.callback, "csrf_exempt", False))
    assert exempt and all(route.startswith("api/") for route in exempt), exempt
    api_routes = sorted(r.route for r in ROUTES if r.route.startswith("api/"))
    assert exempt == api_routes, "every API view is token-only and exempt; nothing else is"


@pytest.mark.parametrize("key", sorted(r.key for r in SITE if not r.route.startswith("api/")))
def test_a_post_without_a_csrf_token_is_refused(key: str, scenario: S) -> None:
    persona = _poster(key)
    url = _url(scenario, key)
    with transaction.atomic():
        before = db_state()
        data = POST_DATA[key](scenario) if key in POST_DATA else {}
        response = client_for(scenario, persona, csrf=False).post(url, data)
        diff = changed(before, db_state())
        transaction.set_rollback(True)
    assert response.status_code == 403, f"POST {url} as {persona} without a token: {response.status_code}"
    assert b"CSRF verification failed" in response.content
    assert not diff, f"POST {url} without a token changed {sorted(diff)}"


@pytest.mark.parametrize(
    "key",
    sorted(k for k, a in ACCESS.items() if a.post and any(isinstance(v, Allowed) for v in a.post.values())),
)
def test_the_same_post_with_a_token_from_another_session_is_refused(key: str, scenario: S) -> None:
    """A token that is well-formed but not this browser's (an attacker's own) does not pass."""
    persona = _poster(key)
    client = client_for(scenario, persona, csrf=False)
    client.cookies["csrftoken"] = "a" * 32
    before = db_state()
    with transaction.atomic():
        data = POST_DATA[key](scenario) if key in POST_DATA else {}
        response = client.post(_url(scenario, key), data, HTTP_X_CSRFTOKEN="b" * 32)
        transaction.set_rollback(True)
    assert response.status_code == 403
    assert not changed(before, db_state())


def test_every_admin_page_refuses_a_post_without_a_token(scenario: S) -> None:
    before = db_state()
    problems = []
    with transaction.atomic():
        for route in ADMIN:
            url = fill(route, admin_values(scenario, route))
            response = client_for(scenario, "superuser", csrf=False).post(url, {})
            if response.status_code != 403:
                problems.append(
                    f"POST {url} ({route.key}) as a superuser without a token: {response.status_code}"
                )
        diff = changed(before, db_state())
        transaction.set_rollback(True)
    assert not problems, "\n".join(problems)
    assert not diff


def test_logging_in_needs_the_token_too(scenario: S) -> None:
    # Login CSRF: another site must not log a visitor into the attacker's account.
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def _launch(client: Client, s: S, **headers: Any) -> Any:
    return client.post(
        "/api/orchestrations/cases/runs",
        json.dumps({"record_id": s.record_a.pk}),
        content_type="application/json",
        **headers,
    )


def test_the_api_with_a_bearer_token_needs_no_csrf_token(scenario: S) -> None:
    runs = Run.objects.count()
    response = _launch(
        Client(enforce_csrf_checks=True), scenario, HTTP_AUTHORIZATION=f"Bearer {scenario.tokens['admin']}"
    )
    assert response.status_code == 201
    assert Run.objects.count() == runs + 1


def test_the_api_with_only_a_session_cookie_is_refused(scenario: S) -> None:
    """What a forged cross-site request would carry: the admin's session cookie (and even a
    valid CSRF token) but no bearer token. Refused, and no run starts."""
    runs = Run.objects.count()
    for csrf in (False, True):
        response = _launch(client_for(scenario, "admin", csrf=csrf), scenario)
        assert response.status_code == 401
        assert response.json()["errors"]["__all__"] == ["give a token: Authorization: Bearer <token>"]
    assert Run.objects.count() == runs
