"""Redirects after login, logout and htmx's session-expired path go only to this site: a link
another site crafts (`?next=https://evil.example/`) cannot send a person there."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from .support import PASSWORD, client_for

pytestmark = pytest.mark.django_db

FOREIGN = ["https://evil.example/", "//evil.example/", "/\\evil.example/", "https:evil.example"]


@pytest.mark.parametrize("target", FOREIGN)
def test_login_does_not_follow_a_foreign_next(target: str, scenario: SimpleNamespace) -> None:
    response = client_for(scenario, "anonymous").post(
        f"/login/?next={target}", {"username": "bob", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("target", FOREIGN)
def test_logout_does_not_follow_a_foreign_next(target: str, scenario: SimpleNamespace) -> None:
    response = client_for(scenario, "outsider").post(f"/logout/?next={target}")
    assert response.status_code == 302
    assert response["Location"] == "/login/"


def test_login_follows_a_next_on_this_site(scenario: SimpleNamespace) -> None:
    url = f"/records/case/{scenario.record_a.pk}/?item={scenario.mine.pk}"
    response = client_for(scenario, "anonymous").post(
        "/login/", {"username": "alice", "password": PASSWORD, "next": url}
    )
    assert response["Location"] == url


def test_the_htmx_login_redirect_ignores_a_foreign_current_url(scenario: SimpleNamespace) -> None:
    response = client_for(scenario, "anonymous").get(
        "/my-work/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="https://evil.example/steal"
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/"
