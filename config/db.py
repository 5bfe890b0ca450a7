"""Database helpers shared by migrations."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def trigram_index(*, table: str, column: str, name: str) -> migrations.RunPython:
    """A migration operation adding a GIN trigram index on UPPER(column), for Django's
    `icontains` (`UPPER(col) LIKE UPPER('%term%')` on PostgreSQL), so that a free-text search
    does not scan the table.

    PostgreSQL only (pg_trgm is a trusted extension from PostgreSQL 13, so the database owner
    may create it); other databases keep scanning, as before. Statistics on the expression
    (PostgreSQL 14+) let the planner estimate how many rows a term matches: without them it
    assumes a fixed 0.5 %, and for a term every row matches it picks the trigram index over an
    index scan that stops after a page (500 ms instead of 5 at a million runs). Built CONCURRENTLY so that
    migrating a live database does not block writes: the migration must say `atomic = False`.
    The index is not in the model's Meta (Django cannot express it for SQLite too), so
    `makemigrations` does not know it; the database does."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} "
            f"USING gin (UPPER({column}) gin_trgm_ops)"
        )
        if schema_editor.connection.pg_version >= 140000:
            schema_editor.execute(
                f"CREATE STATISTICS IF NOT EXISTS {name}_stats ON (UPPER({column}::text)) FROM {table}"
            )
            _analyze_if_filled(schema_editor, table)

    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}_stats")
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")

    return migrations.RunPython(forwards, backwards, elidable=False)


def _analyze_if_filled(schema_editor: Any, table: str) -> None:
    """ANALYZE a table that has rows, so that new statistics count at once (on a new, empty
    table an ANALYZE would only teach the planner that it is empty)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    if row and row[0] > 0:
        schema_editor.execute(f"ANALYZE {table}")


def column_statistics(*, table: str, columns: dict[str, tuple[str, ...]]) -> migrations.RunPython:
    """A migration operation creating multi-column statistics (`{name: (column, …)}`, kinds
    mcv and dependencies, PostgreSQL 12+) so that the planner knows which combinations of
    filter values occur: by default it assumes the columns independent, and for a combination
    that matches nothing (runs started by one user that are in error, say) it walks the whole
    id index of a million runs expecting to meet a page of matches soon. PostgreSQL only."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql" or schema_editor.connection.pg_version < 120000:
            return
        for name, cols in columns.items():
            on = ", ".join(cols)
            schema_editor.execute(
                f"CREATE STATISTICS IF NOT EXISTS {name} (mcv, dependencies) ON {on} FROM {table}"
            )
        _analyze_if_filled(schema_editor, table)

    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for name in columns:
                schema_editor.execute(f"DROP STATISTICS IF EXISTS {name}")

    return migrations.RunPython(forwards, backwards, elidable=False)


def prefer_custom_plans() -> None:
    """Web processes: PostgreSQL plans every statement for its actual parameters.

    Statements are prepared after 5 uses per connection (config/settings.py), and PostgreSQL
    then switches to a generic plan, made without the parameters' values, when it looks no
    worse. For the engine's statements (a run by id, its steps) that is what we want. For the
    monitoring and work lists, whose filters match from none to a million rows, a generic plan
    for `status = $1` or `assignee_user_id = $1` is often wrong: with persistent connections
    pages went from 40 ms to 0.8 to 1.4 s once their statements were prepared (bench/MONITOR.md).
    `plan_cache_mode = force_custom_plan` keeps the parse saved by preparing and plans each
    execution for its values. Called by config/wsgi.py before the first connection; workers
    and commands keep PostgreSQL's default. An explicit plan_cache_mode in the database
    OPTIONS (`?options=-c plan_cache_mode=…` in DATABASE_URL) wins."""
    from django.conf import settings

    for db in settings.DATABASES.values():
        if db.get("ENGINE") != "django.db.backends.postgresql":
            continue
        options = db.setdefault("OPTIONS", {})
        current = str(options.get("options", ""))
        if "plan_cache_mode" not in current:
            options["options"] = f"{current} -c plan_cache_mode=force_custom_plan".strip()
