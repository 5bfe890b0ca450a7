"""The checks behind /readyz: database, migrations, broker. Each is quick and bounded in time."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

# Migrations change only when a new release is deployed (and processes restart): once they
# are found applied, this process does not ask again.
_migrations_applied = False

DATABASE_TIMEOUT_MS = 2000
BROKER_TIMEOUT_S = 2


def _timed(fn: Any) -> dict[str, Any]:
    start = time.monotonic()
    try:
        detail = fn()
        out: dict[str, Any] = {"ok": True}
        if detail:
            out["detail"] = detail
    except Exception as exc:  # every failure is an answer here, never a 500
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    out["ms"] = round(1000 * (time.monotonic() - start), 1)
    return out


def check_database() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic(using=DEFAULT_DB_ALIAS), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A database that accepts the connection but hangs must not hang the probe
            # (LOCAL: for this transaction only, the connection may be a persistent one).
            cursor.execute(f"SET LOCAL statement_timeout = {DATABASE_TIMEOUT_MS}")
        cursor.execute("SELECT 1")


def check_migrations() -> str | None:
    global _migrations_applied
    if _migrations_applied:
        return None
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise RuntimeError(f"{len(plan)} migration(s) not applied: {names}")
    _migrations_applied = True
    return None


def check_broker() -> str:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_S)
        return conn.as_uri()


def run_checks() -> dict[str, dict[str, Any]]:
    checks = {"database": _timed(check_database)}
    # Without a database, the migrations cannot be read: say so instead of a second error.
    checks["migrations"] = (
        _timed(check_migrations)
        if checks["database"]["ok"]
        else {"ok": False, "error": "database unavailable"}
    )
    if settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = {"ok": True, "detail": "eager: tasks run in this process"}
    else:
        checks["broker"] = _timed(check_broker)
    return checks
