"""What the benchmark scripts share: a database of their own, Django set up on it, rows copied
in bulk, a line of timings."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def create_database(url: str) -> None:
    """Drop and create the database `url` names (through the server's `postgres` database)."""
    import psycopg

    name = urlparse(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(url: str, *, eager: bool = False, **env: str) -> None:
    """Django on `url`, the broker in memory; `eager`: Celery tasks run in-process (a launch's
    emails, delivered to the file outbox); `env`: settings given to the environment first."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    for key, value in env.items():
        os.environ.setdefault(key, value)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if eager:
        from config.celery import app

        app.conf.task_always_eager = True


def copy_row(obj: Any, **changes: Any) -> Any:
    """An unsaved copy of a model instance (no primary key), with `changes` (objects for foreign
    keys) applied: for bulk_create."""
    fields = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields if not f.primary_key}
    for key, value in changes.items():
        fields.pop(f"{key}_id", None)
        fields[key] = value
    return type(obj)(**fields)


def timing_row(label: str, times: list[float]) -> str:
    """A Markdown row: label, how many, p50, p95 and max (milliseconds)."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"| {label} | {len(ordered)} | {statistics.median(ordered):.0f} | {p95:.0f} | {ordered[-1]:.0f} |"
