"""PostgreSQL's own ceiling on the same server: pgbench on a scratch database beside the
benchmark's, with as many clients as the 2-process figures use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlparse

from . import workloads

TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
LATENCY = re.compile(r"latency average = ([0-9.]+) ms")


def _connection_args(database_url: str) -> tuple[list[str], dict[str, str]]:
    parts = urlparse(database_url)
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    if parts.username:
        args += ["-U", parts.username]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return args, env


def pgbench(*, database_url: str, seconds: int = 15, clients: int = 2, scale: int = 10) -> dict[str, Any]:
    """Initialise a scratch database (`pgbench -i -s scale`), then run select-only and
    tpcb-like for `seconds` each with `clients` clients and as many threads."""
    exe = shutil.which("pgbench")
    if exe is None:
        raise SystemExit("pgbench is not installed (Debian: apt-get install postgresql-client)")
    scratch = urlparse(database_url).path.lstrip("/") + "_pgbench"
    scratch_url = database_url.rsplit("/", 1)[0] + "/" + scratch
    workloads.database_create(scratch_url, drop=True)
    args, env = _connection_args(database_url)
    subprocess.run(
        [exe, *args, "-i", "-s", str(scale), "-q", scratch], env=env, check=True, capture_output=True
    )
    out: dict[str, Any] = {}
    for name, extra in (("select_only", ["-S"]), ("tpcb_like", [])):
        done = subprocess.run(
            [exe, *args, "-c", str(clients), "-j", str(clients), "-T", str(seconds), *extra, scratch],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        tps, latency = TPS.search(done.stdout), LATENCY.search(done.stdout)
        if tps is None:
            raise SystemExit(f"could not read pgbench's output:\n{done.stdout}\n{done.stderr}")
        out[name] = {"tps": float(tps.group(1)), "latency_ms": float(latency.group(1)) if latency else None}
    workloads.database_drop(scratch_url)
    return out
