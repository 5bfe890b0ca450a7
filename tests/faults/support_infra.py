"""Servers the infrastructure fault tests may stop and restart: a private Redis, a private
PostgreSQL cluster, and `celery worker` / `celery beat` / gunicorn subprocesses.

Never the shared PostgreSQL (5432) or Redis (6379/6380): every server here runs on a free port
of its own, under a temporary folder, and is stopped by its pid (or its pg_ctl) in a finalizer."""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout:.0f}s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- Redis --------------------------------------------------------------------------------------


NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


@dataclass
class PrivateRedis:
    """`redis-server` without persistence on a free port: stop() loses every queued message,
    as a broker restarted without persistence does."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is required for the fault tests (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [*("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"), *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _port_open(self.port), timeout=10, what=f"redis on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # a broker that goes away without saying goodbye
            self.proc.wait(timeout=10)
        self.proc = None


@contextmanager
def running_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass
class PrivateCluster:
    """A PostgreSQL 15 cluster in a temporary folder owned by postgres (root may not run the
    server), trust authentication, listening on 127.0.0.1:<free port>."""

    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            pytest.fail(f"PostgreSQL 15 server binaries are required in {PG_BIN}")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres")

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=60"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-m",
            "fast",  # terminate the sessions: the clients see their connections die
            "-w",
            action,
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


@contextmanager
def running_cluster() -> Iterator[PrivateCluster]:
    folder = Path(tempfile.mkdtemp(prefix="faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    cluster = PrivateCluster(folder=folder)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():  # not left stopped by the test
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Service:
    """A subprocess (worker, beat, web server) writing to a log file; stopped by its pid."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    ready: str  # a line in the log that says it is ready
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        start_all(self, timeout=timeout)

    def launch(self) -> int:
        """Start the process; returns where its log stood (wait_ready reads on from there)."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        return offset

    def wait_ready(self, offset: int, deadline: float) -> None:
        assert self.proc is not None
        while self.ready not in self.text()[offset:]:
            if self.proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"{self.name} did not start:\n" + self.text()[-3000:])
            time.sleep(0.2)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def start_all(*services: Service, timeout: float = 60) -> None:
    """Start the services at once (each takes seconds to import Django and Celery), then wait
    until every one says it is ready."""
    offsets = [service.launch() for service in services]
    deadline = time.time() + timeout
    for service, offset in zip(services, offsets, strict=True):
        service.wait_ready(offset, deadline)


def service_env(*, database_url: str, broker_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: the given database and broker, fast sweeps and retries."""
    var_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "ORCHESTRATION_RETRY_BASE_SECONDS": "0.2",
        "ORCHESTRATION_SWEEP_SECONDS": "1",
        "VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def celery_worker(env: dict[str, str], log: Path, *, concurrency: int = 2, name: str = "worker") -> Service:
    return Service(
        name=name,
        cmd=[
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            f"--hostname={name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        # The tests read each sweep's result from Celery's own lines, at DEBUG by default.
        env={**env, "ORCHESTRATION_LOG_SWEEP_TASKS": "true"},
        log=log,
        ready="ready.",
    )


def celery_beat(env: dict[str, str], log: Path, *, schedule: Path, name: str = "beat") -> Service:
    return Service(
        name=name,
        cmd=[
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel=INFO",
            f"--schedule={schedule}",
            f"--pidfile={schedule}.pid",
        ],
        env={**env, "ORCHESTRATION_LOG_SWEEP_TASKS": "true"},
        log=log,
        ready="beat: Starting",
    )


@contextmanager
def broker_for_this_process(url: str) -> Iterator[None]:
    """Switch this process's Celery app from eager mode to `url` (tasks published from the
    test, e.g. by run_launch, go to the worker subprocess), and back afterwards."""
    from config.celery import app

    def reset_pool() -> None:
        # Drop the connections to the previous broker; the next publish connects to `url`.
        app._pool = None  # type: ignore[attr-defined]
        app.amqp._producer_pool = None  # type: ignore[attr-defined]

    old = (app.conf.task_always_eager, app.conf.broker_url, os.environ.get("CELERY_BROKER_URL"))
    app.conf.task_always_eager = False
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads it before its own configuration
    app.conf["broker_url"] = url
    reset_pool()
    try:
        yield
    finally:
        app.conf.task_always_eager = old[0]
        app.conf["broker_url"] = old[1]
        if old[2] is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = old[2]
        reset_pool()


def subprocess_database_url() -> str:
    """The URL of pytest-django's test database, for subprocesses."""
    from django.db import connection

    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{s['USER']}:{s.get('PASSWORD') or ''}@{host}:{port}/{s['NAME']}"


_SWEEP_DONE = re.compile(r"Task orchestration\.tasks\.sweep\[[^\]]+\] succeeded in [\d.]+s: (\{.*\})")


def sweep_reports(worker_log: str) -> list[dict[str, Any]]:
    """Every sweep a worker finished, as the task returned it (Celery logs the return value)."""
    return [ast.literal_eval(m.group(1)) for m in _SWEEP_DONE.finditer(worker_log)]


def sweeps_received(worker_log: str) -> int:
    return len(re.findall(r"Task orchestration\.tasks\.sweep\[[^\]]+\] received", worker_log))
