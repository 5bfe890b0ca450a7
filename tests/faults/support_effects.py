"""What the effect fault tests share: `celery worker` subprocesses started with the fault
injection of tests/faults/fault_flows.py, an HTTP receiver that de-duplicates by
Idempotency-Key, and the SMTP sink (tests/workitems/smtp_sink.py) as a process that can be
stopped and started again on the same port.

The worker itself is started the way tests/integration/conftest.py starts it (same database
name, one Redis database per xdist worker); its helpers are reused, not copied."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_postgresql
from tests.integration.conftest import (
    ROOT,
    _require_redis,
    _reset_broker_pool,
    database_url,
    redis_url_for_worker,
    wait_for,
)

__all__ = ["wait_for"]

SINK = ROOT / "tests" / "workitems" / "smtp_sink.py"
FLOW_MODULE = "tests.faults.fault_flows"


# --- the worker -------------------------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def start_worker(transactional_db, tmp_path, monkeypatch) -> Iterator[Callable[..., Worker]]:  # type: ignore[no-untyped-def]
    """`start_worker(**env)` starts `celery worker` (prefork, 2 children: a child that kills
    itself is replaced and its task redelivered, reject_on_worker_lost) on the test database
    and this process's Redis database, with ORCHESTRATION_FLOW_MODULES naming the fault module
    and FAULT_MARKER_DIR set to `tmp_path / "markers"`, plus `env`. This process's Celery app
    publishes to the same broker (not eagerly). Workers are stopped at the end of the test."""

    from config.celery import app

    require_postgresql("the worker-crash fault tests run on PostgreSQL")
    url = redis_url_for_worker()
    _require_redis(url)
    (tmp_path / "markers").mkdir()
    workers: list[Worker] = []
    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf["broker_url"] = url
    _reset_broker_pool(app)

    def start(**env: str) -> Worker:
        log = tmp_path / f"worker{len(workers)}.log"
        full = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "ORCHESTRATION_RETRY_BASE_SECONDS": "0.2",
            "ORCHESTRATION_FLOW_MODULES": FLOW_MODULE,
            "FAULT_MARKER_DIR": str(tmp_path / "markers"),
            "VAR_DIR": str(tmp_path / "var"),
            **env,
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
                f"--hostname=effects-{os.getpid()}-{len(workers)}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=full,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        worker = Worker(proc, log)
        workers.append(worker)
        deadline = time.time() + 60
        while "ready." not in worker.text():
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("Celery worker did not start:\n" + worker.text()[-3000:])
            time.sleep(0.2)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()
        app.conf.task_always_eager = old[0]
        app.conf["broker_url"] = old[1]
        _reset_broker_pool(app)


def marker(tmp_path: Path, name: str) -> Path:
    """The file the fault module creates when it has injected the fault `name` (once)."""
    return tmp_path / "markers" / name


# --- an HTTP receiver that de-duplicates ------------------------------------------------------


@dataclass
class Receiver:
    """Records every request; applies each Idempotency-Key once (a repeat is answered 200 with
    the first result, as Stripe-style APIs do) and counts what it applied."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    applied: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            key = self.headers.get("Idempotency-Key", "")
            with state.lock:
                state.requests.append({"path": self.path, "key": key, "body": body})
                repeat = key in state.applied
                if not repeat:
                    state.applied[key] = body
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"repeat": repeat}).encode())

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- the SMTP sink ----------------------------------------------------------------------------


@dataclass
class Sink:
    folder: Path
    port: int = 0
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> Sink:
        args = [sys.executable, str(SINK), "--folder", str(self.folder)]
        if self.port:
            args += ["--port", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "PORT <n>" once it listens
        assert line.startswith("PORT "), f"the SMTP sink did not start: {line!r}"
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        """The mail server goes away: connections to its port are refused."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def messages(self) -> list[email.message.EmailMessage]:
        out = []
        for path in sorted(self.folder.glob("*.eml"), key=lambda p: int(p.stem)):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, email.message.EmailMessage)
            out.append(msg)
        return out


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    s = Sink(tmp_path / "mail").start()
    try:
        yield s
    finally:
        s.stop()
