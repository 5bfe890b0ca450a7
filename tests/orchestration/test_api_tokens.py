"""API tokens: stored hashed with a short prefix, shown once, expiring (API_TOKEN_DAYS by default),
revocable; the API says why it refuses one; `manage.py api_token` and the "Your API tokens" page."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from orchestration.models import ApiToken
from orchestration.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

URL = "/account/tokens/"


def call(raw: str) -> Any:
    """An API call that needs only a valid token (the OpenAPI document needs none, so: runs)."""
    return Client().get("/api/orchestrations", headers={"Authorization": f"Bearer {raw}"})


def message(response: Any) -> str:
    return response.json()["errors"]["__all__"][0]


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- services and the API ------------------------------------------------------------------------


def test_a_token_is_stored_as_a_digest_and_a_prefix_only(personas):
    token, raw = api_token_create(user=personas.admin, name="ci")
    row = ApiToken.objects.values().get(pk=token.pk)
    assert raw not in {str(v) for v in row.values()}
    assert row["digest"] == ApiToken.digest_of(raw)
    assert row["prefix"] == raw[:11] and raw.startswith(row["prefix"]) and len(raw) > 40
    assert call(raw).status_code == 200


def test_the_default_lifetime_is_api_token_days(personas, settings):
    settings.API_TOKEN_DAYS = 90
    before = timezone.now()
    token, _ = api_token_create(user=personas.admin, name="ci")
    assert before + dt.timedelta(days=90) <= token.expires_at <= timezone.now() + dt.timedelta(days=90)
    settings.API_TOKEN_DAYS = 7
    token, _ = api_token_create(user=personas.admin, name="short")
    assert token.expires_at - token.created_at < dt.timedelta(days=7, seconds=5)
    token, _ = api_token_create(user=personas.admin, name="year", days=365)
    assert token.expires_at - token.created_at > dt.timedelta(days=364)
    token, _ = api_token_create(user=personas.admin, name="forever", never_expires=True)
    assert token.expires_at is None
    with pytest.raises(ValueError):
        api_token_create(user=personas.admin, name="zero", days=0)


def test_an_expired_token_gets_401_saying_it_expired(personas):
    token, raw = api_token_create(user=personas.admin, name="nightly")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = call(raw)
    assert response.status_code == 401
    assert "the token 'nightly' expired on" in message(response)
    assert 'error="invalid_token"' in response["WWW-Authenticate"]
    assert ApiToken.objects.get(pk=token.pk).last_used_at is None  # a refused call is no use


def test_a_revoked_token_gets_401_saying_it_was_revoked(personas):
    token, raw = api_token_create(user=personas.admin, name="laptop")
    assert call(raw).status_code == 200
    assert api_token_revoke(token=token) is True
    first = ApiToken.objects.get(pk=token.pk).revoked_at
    assert api_token_revoke(token=token) is False  # the first revocation's time stays
    assert ApiToken.objects.get(pk=token.pk).revoked_at == first
    response = call(raw)
    assert response.status_code == 401
    assert "the token 'laptop' was revoked on" in message(response)


def test_an_unknown_token_and_an_inactive_user_are_told_apart(personas):
    assert "unknown" in message(call("fo_not-a-token"))
    _, raw = api_token_create(user=personas.bob, name="x")
    personas.bob.is_active = False
    personas.bob.save()
    response = call(raw)
    assert response.status_code == 401
    assert "inactive" in message(response)


# --- manage.py api_token -----------------------------------------------------------------------


def test_command_create_prints_the_raw_token_once_on_stdout(personas):
    out, err = run("api_token", "create", "admin", "--name", "ci", "--days", "30")
    raw = out.strip()
    token = ApiToken.objects.get()
    assert token.digest == ApiToken.digest_of(raw)
    assert (token.name, token.user) == ("ci", personas.admin)
    assert token.expires_at - token.created_at < dt.timedelta(days=30, seconds=5)
    assert "shown once" in err and token.prefix in err and raw not in err
    out, _ = run("api_token", "create", "admin", "--name", "forever", "--never-expires")
    assert ApiToken.objects.get(name="forever").expires_at is None
    assert call(out.strip()).status_code == 200


def test_command_create_refuses_bad_input(personas):
    for args, fragment in [
        (["api_token", "create", "nobody", "--name", "x"], "no user 'nobody'"),
        (["api_token", "create", "admin", "--name", "x", "--days", "0"], "--days must be 1 or more"),
    ]:
        with pytest.raises(CommandError, match=re.escape(fragment)):
            call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError):  # argparse: --days and --never-expires together
        call_command(
            "api_token",
            "create",
            "admin",
            "--name",
            "x",
            "--days",
            "3",
            "--never-expires",
            stderr=io.StringIO(),
        )
    assert not ApiToken.objects.exists()


def test_command_list_shows_tokens_but_never_their_value(personas):
    a, raw_a = api_token_create(user=personas.admin, name="ci")
    b, raw_b = api_token_create(user=personas.bob, name="bob's script", never_expires=True)
    api_token_revoke(token=b)
    out, _ = run("api_token", "list")
    lines = out.splitlines()
    assert lines[0].split() == [
        "id",
        "user",
        "name",
        "prefix",
        "created",
        "last",
        "used",
        "expires",
        "revoked",
        "state",
    ]
    assert len(lines) == 3
    assert raw_a not in out and raw_b not in out
    assert a.digest not in out and b.digest not in out
    assert f"{a.prefix}…" in out and f"{b.prefix}…" in out
    bob_line = next(line for line in lines if "bob's script" in line)
    assert "never" in bob_line and bob_line.rstrip().endswith("revoked")
    out, _ = run("api_token", "list", "--user", "admin")
    assert len(out.splitlines()) == 2 and "bob" not in out


def test_command_revoke_by_id_or_prefix(personas):
    a, raw_a = api_token_create(user=personas.admin, name="one")
    b, raw_b = api_token_create(user=personas.admin, name="two")
    out, _ = run("api_token", "revoke", str(a.pk))
    assert f"revoked token {a.pk} 'one'" in out
    out, _ = run("api_token", "revoke", b.prefix)
    assert f"revoked token {b.pk} 'two'" in out
    out, _ = run("api_token", "revoke", b.prefix)
    assert "already revoked" in out
    assert call(raw_a).status_code == 401 and call(raw_b).status_code == 401
    for ref, fragment in [("999999", "no token '999999'"), ("fo_", "whole prefix")]:
        with pytest.raises(CommandError, match=fragment):
            call_command("api_token", "revoke", ref, stdout=io.StringIO())


def test_create_api_token_is_kept_and_takes_the_lifetime_options(personas):
    out, _ = run("create_api_token", "admin", "--name", "old habits", "--days", "2")
    token = ApiToken.objects.get()
    assert token.digest == ApiToken.digest_of(out.strip())
    assert token.expires_at - token.created_at < dt.timedelta(days=2, seconds=5)


# --- the "Your API tokens" page ----------------------------------------------------------------


def test_the_page_lists_only_my_tokens(client, personas):
    mine, _ = api_token_create(user=personas.alice, name="alice's laptop")
    theirs, _ = api_token_create(user=personas.bob, name="bob's server")
    client.force_login(personas.alice)
    response = client.get(URL)
    page = response.content.decode()
    assert response.status_code == 200
    assert "alice&#x27;s laptop" in page and mine.prefix in page
    assert "bob" not in page.split("Your API tokens", 1)[1] and theirs.prefix not in page
    assert page.count("<tr data-token=") == 1
    # The user menu links to it.
    assert 'href="/account/tokens/"' in client.get("/").content.decode()


def test_creating_a_token_shows_it_once(client, personas):
    client.force_login(personas.alice)
    response = client.post(URL, {"name": "script", "lifetime": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = re.search(
        r'<code class="api-token-raw" id="api-token">([^<]+)</code>', response.content.decode()
    ).group(1)
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.digest) == (personas.alice, "script", ApiToken.digest_of(raw))
    assert token.expires_at - token.created_at < dt.timedelta(days=30, seconds=5)
    assert call(raw).status_code == 403  # a valid token: alice has no API permission
    assert raw not in client.get(URL).content.decode()  # never shown again
    client.post(URL, {"name": "forever", "lifetime": "never"})
    assert ApiToken.objects.get(name="forever").expires_at is None


def test_an_invalid_form_creates_nothing(client, personas):
    client.force_login(personas.alice)
    response = client.post(URL, {"name": "", "lifetime": "9999"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_i_can_revoke_mine_but_not_someone_elses(client, personas):
    mine, raw_mine = api_token_create(user=personas.alice, name="mine")
    theirs, _ = api_token_create(user=personas.bob, name="theirs")
    client.force_login(personas.alice)
    response = client.post(f"{URL}{theirs.pk}/revoke/")
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None
    response = client.post(f"{URL}{mine.pk}/revoke/", follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "is revoked" in response.content.decode()
    assert ApiToken.objects.get(pk=mine.pk).revoked_at is not None
    assert call(raw_mine).status_code == 401
    assert client.get(f"{URL}{mine.pk}/revoke/").status_code == 405  # only a POST revokes


def test_the_page_needs_a_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/account/tokens/")
    assert client.post(f"{URL}1/revoke/").status_code == 302
