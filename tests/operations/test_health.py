"""/healthz says the process answers; /readyz says whether it can serve (database, migrations,
broker), and names what failed."""

from __future__ import annotations

import socket

import pytest
from django.db import DEFAULT_DB_ALIAS, connection

from config import readiness


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_database(monkeypatch):
    """The probe's database connection points at a port where nothing listens (PostgreSQL) or
    at a file that cannot be opened (SQLite); the test's own connection stays usable."""
    settings_dict = dict(connection.settings_dict)
    if connection.vendor == "postgresql":
        settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
        settings_dict["OPTIONS"] = {**settings_dict.get("OPTIONS", {}), "connect_timeout": 2}
    else:
        settings_dict["NAME"] = "/nonexistent/folder/db.sqlite3"
    down = type(connection)(settings_dict, alias=DEFAULT_DB_ALIAS)
    monkeypatch.setattr(readiness, "connections", {DEFAULT_DB_ALIAS: down})
    return down


@pytest.fixture
def unreachable_broker(monkeypatch, settings):
    from config.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    old = app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf["broker_url"] = url
    yield
    app.conf["broker_url"] = old


@pytest.mark.django_db
def test_healthz_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_on_the_real_services(client, settings):
    # The real broker of this run (Redis in CI), not the eager shortcut.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    readiness._migrations_applied = False
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "migrations": True,
        "broker": True,
    }
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_names_an_unreachable_database_and_healthz_stays_up(client, unreachable_database):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"]
    assert body["checks"]["migrations"] == {"ok": False, "error": "database unavailable"}
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_names_an_unreachable_broker(client, unreachable_broker):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False
    assert "Error" in body["checks"]["broker"]["error"] or "refused" in body["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_readyz_names_unapplied_migrations(client, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    readiness._migrations_applied = False
    monkeypatch.setattr(
        MigrationExecutor,
        "migration_plan",
        lambda self, targets: [(self.loader.graph.nodes[("orchestration", "0001_initial")], False)],
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert (
        "1 migration(s) not applied: orchestration.0001_initial"
        in response.json()["checks"]["migrations"]["error"]
    )


@pytest.mark.django_db
def test_probes_answer_a_caller_that_asks_by_ip_address_over_http(client, settings):
    """A kubelet asks the pod's IP (not in ALLOWED_HOSTS) over plain HTTP, with HTTPS on."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="10.1.2.3").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.1.2.3").status_code in (200, 503)
    assert "sessionid" not in client.cookies
    # Every other page still refuses an unknown host.
    assert client.get("/login/", HTTP_HOST="10.1.2.3").status_code == 400
