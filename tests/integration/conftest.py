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


class WorkerControl:
    """Start, stop and kill `celery worker` subprocesses (prefork, 2 processes) on one broker
    and the test database: a test that restarts the worker starts another with `start`."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> subprocess.Popen[bytes]:
        assert self.proc is None or self.proc.poll() is not None, "a worker is running already"
        self.starts += 1
        log = self.tmp_path / ("worker.log" if self.starts == 1 else f"worker{self.starts}.log")
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": self.url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "ORCHESTRATION_RETRY_BASE_SECONDS": "0.2",
            "VAR_DIR": str(self.tmp_path / "var"),
        }
        self.proc = proc = subprocess.Popen(
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
                f"--hostname=test-{os.getpid()}-{self.starts}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while "ready." not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("Celery worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        return proc

    def stop(self, *, kill: bool = False) -> None:
        """Stop the worker: `kill` is SIGKILL (a crash: nothing is acknowledged or cleaned up)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


@pytest.fixture
def celery_worker_control(transactional_db, tmp_path, monkeypatch) -> Iterator[WorkerControl]:  # type: ignore[no-untyped-def]
    """Switch this process's Celery app from eager mode to a Redis broker of its own, and give
    the test a WorkerControl to start (and restart) workers on it; any worker left is stopped."""
    from config.celery import app

    url = redis_url_for_worker()
    _require_redis(url)
    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf["broker_url"] = url
    _reset_broker_pool(app)
    control = WorkerControl(url, tmp_path)
    try:
        yield control
    finally:
        control.stop()
        app.conf.task_always_eager = old[0]
        app.conf["broker_url"] = old[1]
        _reset_broker_pool(app)


@pytest.fixture
def celery_worker_process(celery_worker_control: WorkerControl) -> Iterator[str]:
    """Start `celery worker` (prefork, 2 processes) as a subprocess; switch this process's
    Celery app from eager mode to the same Redis broker. Yields the broker URL."""
    celery_worker_control.start()
    yield celery_worker_control.url


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.0f}s")
