"""A real Celery worker process against a real broker (Redis), on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def redis_url_for_worker() -> str:
    base = os.environ.get("CELERY_BROKER_URL", "")
    if not base.startswith("redis://"):
        base = "redis://127.0.0.1:6379/0"
    # One Redis database per xdist worker, so parallel test processes don't share a queue
    # (TEST_REDIS_DB_BASE moves the range when two checkouts test on one Redis at once).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(os.environ.get("TEST_REDIS_DB_BASE", "8")) + int(worker.removeprefix("gw") or 0)
    return base.rsplit("/", 1)[0] + f"/{n}"


def _require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required for the Celery integration tests ({url}): {exc}")


def _reset_broker_pool(app) -> None:  # type: ignore[no-untyped-def]
    # The app may already hold connections to another broker: drop them so the next publish
    # connects to the URL just configured.
    # (Closing the old pool would break producers still cached by kombu; dropping it is enough.)
    app._pool = None
    app.amqp._producer_pool = None


def database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{s['USER']}:{s.get('PASSWORD') or ''}@{host}:{port}/{s['NAME']}"


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Start `celery worker` (prefork, 2 processes) as a subprocess; switch this process's
    Celery app from eager mode to the same Redis broker. Yields the broker URL."""
    from config.celery import app

    url = redis_url_for_worker()
    _require_redis(url)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "ORCHESTRATION_RETRY_BASE_SECONDS": "0.2",
        "VAR_DIR": str(tmp_path / "var"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "--loglevel=INFO",
            f"--hostname=test-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf["broker_url"] = url
    _reset_broker_pool(app)
    try:
        deadline = time.time() + 60
        while "ready." not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("Celery worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        app.conf.task_always_eager = old[0]
        app.conf["broker_url"] = old[1]
        _reset_broker_pool(app)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f}s")
