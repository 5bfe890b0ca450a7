"""This engine and Viewflow 2.4 side by side, rep by rep, on the same PostgreSQL and Redis.

`bench/run.py peer` (or `make bench-peer`) runs the Viewflow peer harness (a folder outside
this repository, `../shared/peers/viewflow/` by default: `--peer-dir` or VIEWFLOW_PEER_DIR)
in a virtualenv of its own under var/bench-peer/, and alternates the two engines on every
workload of every repetition (which one goes first alternates too), so that the machine's
drift and noise fall on both alike. Each side measures its own way the same thing: runs in a
10 s window after 20 warm-up runs per process and a barrier (W1 and W2 in-process), and N runs
through a 2-process prefork Celery worker from the first launch to the last completion.
Both start each measurement from empty runtime tables.

The peer's code is only run, never copied: it is Viewflow's public API driven by the peer's
own `bench.py`, which prints one JSON object per measurement.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

from . import workloads

DEFAULT_PEER_DIR = workloads.ROOT.parent / "shared" / "peers" / "viewflow"
PEER_ROOT = workloads.ROOT / "var" / "bench-peer"


@dataclass
class Measure:
    key: str
    label: str
    unit: str = "runs/s"
    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)

    def ratio(self) -> float | None:
        if not self.ours or not self.peer:
            return None
        return statistics.median(self.ours) / statistics.median(self.peer)


class Peer:
    """The Viewflow harness: its venv, its database beside ours, its Celery worker."""

    def __init__(self, *, peer_dir: Path, database_url: str, broker_url: str):
        if not (peer_dir / "bench.py").is_file():
            raise SystemExit(
                f"no Viewflow peer harness in {peer_dir} (bench.py missing): pass --peer-dir or set "
                "VIEWFLOW_PEER_DIR to the folder that holds it"
            )
        self.dir = peer_dir
        self.venv = PEER_ROOT / "venv"
        parts = urlparse(database_url)
        # The same server and credentials as ours, over the same kind of connection (TCP).
        self.database_url = urlunparse(parts._replace(path="/vfbench", query=""))
        self.broker_url = broker_url
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
            env.pop(name, None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "vfbench_project.settings",
                "VFBENCH_DATABASE_URL": self.database_url,
                "VFBENCH_BROKER_URL": self.broker_url,
                # Nothing is written into the peer's folder.
                "PYTHONPYCACHEPREFIX": str(PEER_ROOT / "pycache"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def install(self) -> None:
        """The peer's pinned requirements in its own venv (re-created when they change)."""
        requirements = self.dir / "requirements.txt"
        digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
        stamp = self.venv / ".requirements-sha256"
        if stamp.is_file() and stamp.read_text() == digest:
            return
        PEER_ROOT.mkdir(parents=True, exist_ok=True)
        print(f"peer: creating {self.venv} with {requirements}", flush=True)
        if not (self.venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        subprocess.run(
            [
                self.python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(requirements),
            ],
            check=True,
        )
        stamp.write_text(digest)

    def create_database(self) -> None:
        workloads.database_create(self.database_url)

    def run(self, *args: str, timeout: float = 1800) -> dict[str, Any]:
        """One sub-command of the peer's bench.py; its JSON line."""
        done = subprocess.run(
            [self.python, str(self.dir / "bench.py"), *args],
            cwd=self.dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 and not lines:
            raise SystemExit(
                f"peer bench.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return json.loads(lines[-1]) if lines else {}

    def start_worker(self) -> None:
        ready = PEER_ROOT / "celery.ready"
        ready.unlink(missing_ok=True)
        _purge_redis(self.broker_url)
        log = (PEER_ROOT / "celery.log").open("ab")
        self.worker = subprocess.Popen(
            [
                str(self.venv / "bin" / "celery"),
                "-A",
                "vfbench_project",
                "worker",
                "--concurrency=2",
                "--pool=prefork",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=self.dir,
            env={**self.env(), "VFBENCH_WORKER_READY_FILE": str(ready)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the peer's Celery worker did not start: see {PEER_ROOT / 'celery.log'}")
            time.sleep(0.25)
        time.sleep(1)

    def stop_worker(self) -> None:
        if self.worker is None:
            return
        self.worker.send_signal(signal.SIGTERM)
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        self.worker = None


def _purge_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def _peer_broker(broker_url: str) -> str:
    """A Redis database of its own for the peer's queue, beside ours on the same server."""
    base, _, db = broker_url.rpartition("/")
    return f"{base}/{(int(db or 0) + 1) % 16}"


def compare(
    *,
    database_url: str,
    broker_url: str,
    peer_dir: Path,
    reps: int = 3,
    seconds: float = 10,
    warmup: int = 20,
    celery_runs: int = 2000,
    only: set[str] | None = None,
) -> list[Measure]:
    from bench import celery_bench

    peer = Peer(peer_dir=peer_dir, database_url=database_url, broker_url=_peer_broker(broker_url))
    peer.install()
    peer.create_database()
    versions = peer.run("prepare")
    print(
        f"peer        django-viewflow {versions.get('django-viewflow')}, Django {versions.get('Django')}, "
        f"database {peer.database_url}",
        flush=True,
    )
    measures = {
        "w1_1": Measure("w1_1", "W1 in-process, 1 process (a commit per step)"),
        "w1_2": Measure("w1_2", "W1 in-process, 2 processes (a commit per step)"),
        # The peer's W1a runs the whole run in the caller's transaction: so do inline steps.
        "w1i_1": Measure("w1i_1", "W1 in-process, 1 process (inline steps: one commit)"),
        "w1i_2": Measure("w1i_2", "W1 in-process, 2 processes (inline steps: one commit)"),
        "w2_1": Measure("w2_1", "W2 in-process, 1 process"),
        "w2_2": Measure("w2_2", "W2 in-process, 2 processes"),
        "w1_celery": Measure("w1_celery", f"W1 through Celery, 2-process worker, {celery_runs} runs"),
    }
    wanted = [k for k in measures if only is None or k in only]
    if not celery_runs and "w1_celery" in wanted:
        wanted.remove("w1_celery")

    def ours(key: str) -> float:
        workloads.database_reset()
        if key == "w1_celery":
            result = celery_bench.w1_celery(
                database_url=database_url, broker_url=broker_url, runs=celery_runs
            )
            return float(result["runs_per_s"])
        workload, processes = key.split("_")
        result = workloads.inprocess_throughput(
            workload, processes=int(processes), warmup=warmup, seconds=seconds
        )
        return float(result["runs_per_s"])

    def theirs(key: str) -> float:
        peer.run("reset")
        if key == "w1_celery":
            peer.start_worker()
            try:
                pid = str(peer.worker.pid) if peer.worker else ""
                result = peer.run("w1celery", "--runs", str(celery_runs), "--worker-pid", pid)
            finally:
                peer.stop_worker()
        else:
            workload, processes = key.split("_")
            kind = "w1sync" if workload.startswith("w1") else "w2"
            result = peer.run(kind, "--procs", processes, "--seconds", str(seconds), "--warmup", str(warmup))
        if not result.get("verified", False):
            raise SystemExit(f"the peer's {key} run did not verify: {result}")
        return float(result["runs_per_s"])

    from bench.run import calibration_line, loadavg

    for rep in range(1, reps + 1):
        print(
            f"repetition {rep}/{reps}: machine now {calibration_line()}, load average {loadavg()}", flush=True
        )
        for key in wanted:
            m = measures[key]
            # Alternate who goes first, so that a trend over the session favours neither.
            order = (
                (("ours", ours), ("viewflow", theirs)) if rep % 2 else (("viewflow", theirs), ("ours", ours))
            )
            for side, fn in order:
                value = fn(key)
                (m.ours if side == "ours" else m.peer).append(value)
                print(f"  {m.label:<48} {side:<9} {value:8.1f} {m.unit}", flush=True)
    return [measures[k] for k in wanted]


def table(measures: list[Measure]) -> str:
    def reps(values: list[float]) -> str:
        return " / ".join(f"{v:.1f}" for v in values)

    lines = [
        "| workload | this project (runs/s, each rep) | Viewflow 2.4 (runs/s, each rep) | ratio of medians |",
        "|---|---|---|---|",
    ]
    for m in measures:
        ratio = m.ratio()
        shown = "—" if ratio is None else f"**{ratio:.2f}×**"  # noqa: RUF001
        lines.append(
            f"| {m.label} | {reps(m.ours)} (median {statistics.median(m.ours):.1f}) | "
            f"{reps(m.peer)} (median {statistics.median(m.peer):.1f}) | {shown} |"
        )
    return "\n".join(lines)
