"""Login throttling (django-axes, enabled as in production): AXES_FAILURE_LIMIT wrong passwords
for one username from one address lock that pair out for AXES_COOLOFF_MINUTES, on our own login
page with a 429; `manage.py axes_reset` lifts the lock."""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client

from tests.factories import login_request

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str, password: str, ip: str = "10.0.0.1") -> object:
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_it_is_on_with_five_failures_and_fifteen_minutes():
    assert settings.AXES_ENABLED is True
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.AXES_FAILURE_LIMIT == 5
    assert dt.timedelta(minutes=15) == settings.AXES_COOLOFF_TIME


def test_five_wrong_passwords_lock_the_username_from_that_address_even_with_the_right_one(personas):
    client = Client()
    for _ in range(4):
        response = attempt(client, "alice", "wrong")
        assert response.status_code == 200  # the form again, with Django's error
        assert "Please enter a correct username and password" in response.content.decode()
    response = attempt(client, "alice", "wrong")  # the fifth
    assert response.status_code == 429
    page = response.content.decode()
    assert 'id="login-locked"' in page
    assert "Too many failed logins" in page
    assert "blocked for 15 minutes" in page
    assert "Account locked: too many login attempts" not in page  # not django-axes' own text
    assert response["Retry-After"] == "900"
    assert '<form method="post" action="/login/">' in page  # our login page, in our layout

    # Now even the right password is refused, and no session is opened.
    response = attempt(client, "alice", "pw")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="alice", ip_address="10.0.0.1").failures_since_start >= 5


def test_the_lock_is_per_username_and_address(personas):
    client = Client()
    for _ in range(5):
        attempt(client, "alice", "wrong", ip="10.0.0.1")
    assert attempt(client, "alice", "pw", ip="10.0.0.1").status_code == 429
    # alice from another address, and bob from the same one, still log in.
    other = Client()
    response = attempt(other, "alice", "pw", ip="10.0.0.2")
    assert response.status_code == 302
    assert other.session["_auth_user_id"] == str(personas.alice.pk)
    bob = Client()
    assert attempt(bob, "bob", "pw", ip="10.0.0.1").status_code == 302


def test_a_successful_login_forgets_earlier_failures(personas):
    client = Client()
    for _ in range(4):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "pw").status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "alice", "wrong").status_code == 200
    assert attempt(client, "alice", "pw").status_code == 302


def test_the_lock_ends_after_the_cool_off(personas):
    client = Client()
    for _ in range(5):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "pw").status_code == 429
    # Fifteen minutes and a second later (the attempt row is what the cool-off is measured from).
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=15, seconds=1))
    assert attempt(client, "alice", "pw").status_code == 302


def test_axes_reset_lifts_every_lock(personas):
    client = Client()
    for _ in range(5):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "pw").status_code == 429
    call_command("axes_reset")
    assert AccessAttempt.objects.count() == 0
    assert attempt(client, "alice", "pw").status_code == 302


def test_the_admin_login_is_throttled_too(personas):
    client = Client()
    for _ in range(5):
        client.post("/admin/login/", {"username": "admin", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
    response = client.post("/admin/login/", {"username": "admin", "password": "pw"}, REMOTE_ADDR="10.0.0.9")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_the_page_says_the_configured_limits(settings, personas):
    """AXES_FAILURE_LIMIT and AXES_COOLOFF_MINUTES (read from the environment: see
    test_deploy_settings.py) are what the lock-out page states."""
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=30)
    client = Client()
    assert attempt(client, "alice", "wrong").status_code == 200
    response = attempt(client, "alice", "wrong")
    assert response.status_code == 429
    assert "After 2 wrong passwords" in response.content.decode()
    assert "blocked for 30 minutes" in response.content.decode()
    assert response["Retry-After"] == "1800"


def test_authenticate_needs_a_request_so_tests_pass_one(personas):
    """django-axes refuses `authenticate()` (and `client.login()`) without a request: the tests
    pass tests.factories.login_request() rather than switching axes off."""
    with pytest.raises(ValueError, match="requires a request"):
        authenticate(username="alice", password="pw")
    assert authenticate(login_request(), username="alice", password="pw") == personas.alice
    client = Client()
    assert client.login(request=login_request(), username="alice", password="pw")
