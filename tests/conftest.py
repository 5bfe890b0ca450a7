from __future__ import annotations

import os

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# tests/engine_alone runs under its own settings (orchestration without records or workitems),
# in a process of its own that tests/orchestration/test_engine_alone.py starts.
collect_ignore = [] if os.environ.get("ENGINE_ALONE") == "1" else ["engine_alone"]


def require_postgresql(why: str) -> None:
    """Tests that only mean something on PostgreSQL (locks across processes, a server to
    restart): skipped on the embedded SQLite default (`make test` on a fresh machine), failed
    under REQUIRE_SERVICES=1 (CI), so that CI can never skip them."""
    from django.db import connection

    if connection.vendor == "postgresql":
        return
    message = f"{why}: set DATABASE_URL=postgres://…"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _eager_celery(settings):  # type: ignore[no-untyped-def]
    """Unit and service tests run Celery tasks in-process on commit. Integration tests that
    start a real worker override this with `real_celery`."""
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    settings.ORCHESTRATION_RETRY_BASE_SECONDS = 0
    # Each test starts without a remembered "nobody is away" (workitems/delegation.py; not
    # installed in tests/engine_alone).
    from django.apps import apps

    if apps.is_installed("workitems"):
        from workitems import delegation

        delegation.forget()
    # An event name that orchestration/events.py does not list fails the test that writes it.
    settings.ORCHESTRATION_STRICT_EVENTS = True
    # Password hashing dominates user-heavy tests; the slow hasher proves nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def personas(db):  # type: ignore[no-untyped-def]
    from tests.factories import make_personas

    return make_personas()
