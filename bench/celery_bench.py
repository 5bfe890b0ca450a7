"""W1 through a real Celery worker: throughput and the worker's memory over many runs.

The worker is a separate `celery -A config worker --pool prefork --concurrency 2` process on
the benchmark's database and its own Redis database; this process launches the runs (each
launch commits, then publishes step a's task) and watches the database until they complete.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import workloads

READY_TIMEOUT = 60.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    nodename: str
    log_path: Path

    def pids(self) -> list[int]:
        """The worker's main process and its pool processes."""
        pids = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return pids
        return pids + [int(p) for p in children.split()]

    def rss_kib(self) -> dict[int, int]:
        """Resident memory (VmRSS, KiB) of each worker process."""
        out: dict[int, int] = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1])
            except OSError:
                continue
        return out


def _worker_env(database_url: str, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DEBUG": "false",
            "EMAIL_URL": "locmem:",
            # Persistent connections: without them Django's Celery integration closes the
            # connection after every task and each task pays a new PostgreSQL connection.
            "DB_CONN_MAX_AGE": "600",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def _purge(app: Any) -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("celery")


@contextmanager
def running_worker(*, database_url: str, broker_url: str, concurrency: int = 2) -> Iterator[Worker]:
    """Start a worker, wait until it answers a ping, and stop it (by its pid) afterwards."""
    from config.celery import app

    _purge(app)  # leftovers of an interrupted benchmark would run first
    nodename = f"bench{os.getpid()}@localhost"
    log_path = workloads.ROOT / "var" / "bench-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "-n",
        nodename,
        "--loglevel",
        "WARNING",
        # No cluster chatter: one worker, nothing to synchronise with.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=workloads.ROOT,
        env=_worker_env(database_url, broker_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so that we can stop exactly it
    )
    worker = Worker(process=proc, nodename=nodename, log_path=log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not app.control.ping(destination=[nodename], timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise SystemExit(f"the Celery worker did not start ({log_path}):\n{tail}")
        yield worker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown: the pool processes exit too
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created for it
                proc.wait()
        log.close()


def _wait_completed(first_id: int, last_id: int, *, timeout: float) -> dict[str, int]:
    """Poll until every run in [first_id, last_id] has ended; return counts by status."""
    from django.db.models import Count

    from orchestration.models import Run, RunStatus

    deadline = time.monotonic() + timeout
    ended = {RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.CANCELED}
    while True:
        counts = dict(
            Run.objects.filter(pk__gte=first_id, pk__lte=last_id)
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        if sum(n for s, n in counts.items() if s in ended) >= last_id - first_id + 1:
            return counts
        if time.monotonic() > deadline:
            raise SystemExit(f"runs still open after {timeout:.0f} s: {counts}")
        time.sleep(0.25)


def _launch(fx: workloads.Fixture, n: int, offset: int) -> tuple[int, int]:
    ids = [workloads.w1_run(fx, offset + i) for i in range(n)]
    return ids[0], ids[-1]


def _last_end(first_id: int, last_id: int) -> dt.datetime:
    from django.db.models import Max

    from orchestration.models import Run

    end = Run.objects.filter(pk__gte=first_id, pk__lte=last_id).aggregate(m=Max("ended_at"))["m"]
    assert end is not None
    return end


def w1_celery(*, database_url: str, broker_url: str, runs: int, warmup: int = 20) -> dict[str, Any]:
    """Runs per second from the first launch to the last completion of `runs` W1 runs."""
    from django.utils import timezone

    fx = workloads.fixture()
    with running_worker(database_url=database_url, broker_url=broker_url) as worker:
        first, last = _launch(fx, warmup, 0)  # the pool processes connect and parse definitions
        _wait_completed(first, last, timeout=120)
        # Where the CPU goes: the worker's processes, this (launching) process, the PostgreSQL
        # server processes of every connection to the database, and Redis.
        pids = {
            "worker": worker.pids(),
            "launcher": [os.getpid()],
            "postgresql": workloads.backend_pids(all_connections=True),
            "redis": _pids_named("redis-server"),
        }
        cpu = {k: workloads.cpu_seconds(v) for k, v in pids.items()}
        started = timezone.now()
        t0 = time.monotonic()
        first, last = _launch(fx, runs, warmup)
        launch_seconds = time.monotonic() - t0
        counts = _wait_completed(first, last, timeout=max(300.0, runs / 2))
        elapsed = (_last_end(first, last) - started).total_seconds()
        cpu = {k: workloads.cpu_seconds(v) - cpu[k] for k, v in pids.items()}
    if counts.get("completed", 0) != runs:
        raise SystemExit(f"not every run completed: {counts}")
    return {
        "runs": runs,
        "seconds": elapsed,
        "runs_per_s": runs / elapsed,
        "launch_runs_per_s": runs / launch_seconds,
        "cpu_ms": {k: 1000 * v / runs for k, v in cpu.items()},
    }


def _pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def worker_memory(*, database_url: str, broker_url: str, runs: int, every: int) -> dict[str, Any]:
    """Run `runs` W1 runs through the worker in batches of `every`; after each batch (all of
    its runs completed, the worker idle) sample the resident memory of the worker processes."""
    fx = workloads.fixture()
    samples: list[tuple[int, dict[int, int]]] = []
    with running_worker(database_url=database_url, broker_url=broker_url) as worker:
        samples.append((0, worker.rss_kib()))
        print(f"    at start:          {_format_sample(samples[0][1])}", flush=True)
        done = 0
        t0 = time.monotonic()
        while done < runs:
            n = min(every, runs - done)
            first, last = _launch(fx, n, done)
            counts = _wait_completed(first, last, timeout=max(300.0, n / 2))
            if counts.get("completed", 0) != n:
                raise SystemExit(f"not every run completed: {counts}")
            done += n
            samples.append((done, worker.rss_kib()))
            print(f"    after {done:6d} runs: {_format_sample(samples[-1][1])}", flush=True)
        elapsed = time.monotonic() - t0
    totals = [sum(s.values()) for _, s in samples]
    # Growth is measured from the first batch on: the first tasks fill caches (parsed
    # definitions, compiled expressions, Django's per-process state) once.
    base = totals[1] if len(totals) > 1 else totals[0]
    return {
        "runs": runs,
        "runs_per_s": runs / elapsed,
        "samples": samples,
        "total_kib": totals,
        "growth_kib": totals[-1] - base,
        "growth_pct": 100.0 * (totals[-1] - base) / base,
    }


def _format_sample(sample: dict[int, int]) -> str:
    parts = [f"{kib / 1024:.1f}" for _, kib in sorted(sample.items())]
    return f"total {sum(sample.values()) / 1024:.1f} MiB (main, pool: {' / '.join(parts)} MiB)"
