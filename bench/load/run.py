"""Load and soak benchmark: 50 people on gunicorn (4 workers) + 2 Celery workers + PostgreSQL.

One command (run with the project's Python; locust gets a virtualenv of its own under
var/load-venv, since it pulls gevent, which must stay out of the project's venv):

    .venv/bin/python bench/load/run.py --minutes 10

It drops and recreates its own database (`flow_load`, `--database-url`), migrates it, creates
the people (end users in four teams and a queue, managers who may reassign, admins with the
monitoring permissions, an API client that launches runs), a record type, a one-screen
interactive orchestration whose second stage is a background step on Celery, and enough runs
that every end user has items. Then it starts gunicorn (4 workers), two Celery workers and
beat on Redis database 40 of the helpers' server (`--broker-url`; only that database is
emptied, with FLUSHDB), runs locust headless (bench/load/locustfile.py: 45 end users, 3
managers, 2 admins and the feeder that keeps launching runs through the JSON API), stops
everything it started by pid, and prints the figures as a Markdown table.

Everything it writes is under var/load/ (logs, the plan handed to locust, locust's CSV
files, the outbox of assignment emails, the report).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VAR = ROOT / "var" / "load"
VENV = ROOT / "var" / "load-venv"
PROJECT_BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flow_load"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"

PASSWORD = "load-bench-password"
ORCHESTRATION = "load_review"
RECORD_TYPE = "load_case"
QUEUE = "load_desk"
TEAMS = ["load-team-a", "load-team-b", "load-team-c", "load-team-d"]
END_USERS = 60  # in the database; the locust end users are the first ones, the rest are "away"
MANAGERS = 3
ADMINS = 2
RECORDS_PER_USER = 3
SHARED_RECORDS = 24  # the records that team and queue items are on
SPAWN_RATE = 2  # people arriving per second
PRELAUNCH = {"active": 10, "away": 4, "team": 3, "queue": 8}  # runs per user / team / the queue


# --- the environment every process shares --------------------------------------------------------


def server_env(*, database_url: str, broker_url: str, port: int) -> dict[str, str]:
    """Production-like settings: persistent connections, DEBUG off, a real secret key."""
    VAR.mkdir(parents=True, exist_ok=True)
    key_file = VAR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "CELERY_TASK_ALWAYS_EAGER"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        DB_CONN_MAX_AGE="600",
        DEBUG="false",
        SECRET_KEY_FILE=str(key_file),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL=f"http://127.0.0.1:{port}",
        VAR_DIR=str(VAR),
        # Assignment emails are sent (a Celery task per new item), to files.
        EMAIL_URL=f"file://{VAR / 'outbox'}",
        LOG_LEVEL=os.environ.get("LOAD_LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )
    return env


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.pop("SECRET_KEY", None)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_venv() -> Path:
    """var/load-venv with the pinned locust, created with the Python this runs on."""
    locust = VENV / "bin" / "locust"
    requirements = HERE / "requirements.txt"
    stamp = VENV / ".requirements"
    if locust.exists() and stamp.exists() and stamp.read_text() == requirements.read_text():
        return locust
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"creating {VENV} with {base} and installing {requirements.name} …", flush=True)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", "-r", str(requirements)], check=True, cwd=ROOT
    )
    stamp.write_text(requirements.read_text())
    return locust


# --- the data -------------------------------------------------------------------------------------


def definitions() -> list[dict[str, Any]]:
    """One screen (a decision and a comment), then a background step that files the decision on
    the record: every completion is also a Celery task, a record save and a second transition."""
    return [
        {
            "kind": "screen_flow",
            "api_name": "load_review",
            "label": "Review the case",
            "screens": [
                {
                    "key": "decision",
                    "fields": [
                        {
                            "name": "decision",
                            "type": "choice",
                            "label": "Decision",
                            "required": True,
                            "choices": ["Approve", "Decline"],
                        },
                        {"name": "comment", "type": "text", "label": "Comment", "required": True},
                        {"name": "urgent", "type": "boolean", "label": "Urgent"},
                    ],
                }
            ],
        },
        {
            "kind": "autolaunched_flow",
            "api_name": "load_file",
            "label": "File the decision",
            "inputs": [{"name": "decision", "type": "text"}, {"name": "comment", "type": "text"}],
            "actions": [
                {
                    "type": "update_record",
                    "values": {
                        "status": "'Reviewed'",
                        "decision": "inputs.decision",
                        "notes": "inputs.comment",
                    },
                }
            ],
        },
        {
            "kind": "orchestration",
            "api_name": ORCHESTRATION,
            "label": "Load review",
            "start": {
                "type": "autolaunched",
                "record_type": RECORD_TYPE,
                "inputs": [{"name": "assignee", "type": "text", "required": True}],
            },
            "stages": [
                {
                    "key": "review",
                    "label": "Review",
                    "steps": [
                        {
                            "key": "review",
                            "label": "Review the case",
                            "kind": "interactive",
                            "flow": "load_review",
                            "assignee": {"expression": "inputs.assignee"},
                        }
                    ],
                },
                {
                    "key": "file",
                    "label": "File",
                    "steps": [
                        {
                            "key": "file",
                            "kind": "background",
                            "flow": "load_file",
                            "inputs": {
                                "decision": "steps.review.decision",
                                "comment": "steps.review.comment",
                            },
                        }
                    ],
                },
            ],
        },
    ]


def seed(*, end_users: int) -> dict[str, Any]:
    """People, permissions, records, definitions, an API token and the first runs.

    Permissions as demo/services.py grants them: managers get the "Managers" group's, admins the
    "Orchestration Admins" group's (not superusers: the permission checks run as for real admins)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, Permission

    from demo.services import GROUP_PERMISSIONS
    from orchestration.services import api_token_create, definitions_import, run_launch
    from records.services import record_create, record_type_upsert
    from workitems.models import Queue

    def perms(dotted: list[str]) -> list[Permission]:
        return [
            Permission.objects.get(content_type__app_label=p.split(".")[0], codename=p.split(".")[1])
            for p in dotted
        ]

    User = get_user_model()
    hashed = make_password(PASSWORD)  # once: hashing is slow on purpose
    staff = Group.objects.create(name="load-staff")
    staff.permissions.add(*perms(["records.view_record"]))
    managers_group = Group.objects.create(name="load-managers")
    managers_group.permissions.add(*perms(GROUP_PERMISSIONS["Managers"]))
    admins_group = Group.objects.create(name="load-admins")
    admins_group.permissions.add(*perms(GROUP_PERMISSIONS["Orchestration Admins"]))
    teams = [Group.objects.create(name=name) for name in TEAMS]
    queue = Queue.objects.create(api_name=QUEUE, label="Load desk")
    queue.groups.add(teams[0], teams[1])  # half the end users may take queue items

    def person(username: str, *groups: Group) -> Any:
        user = User.objects.create(username=username, email=f"{username}@example.com", password=hashed)
        user.groups.add(staff, *groups)
        return user

    users = [person(f"user{i:02d}", teams[(i - 1) % len(teams)]) for i in range(1, END_USERS + 1)]
    managers = [person(f"manager{i}", managers_group) for i in range(1, MANAGERS + 1)]
    admins = [person(f"admin{i}", admins_group) for i in range(1, ADMINS + 1)]
    feeder = User.objects.create(username="load-feeder", email="feeder@example.com", password=hashed)
    # Launching on a record is seeing it (orchestration.services.record_visible_to).
    feeder.user_permissions.add(*perms(["orchestration.launch_orchestration", "records.view_record"]))
    _token, raw_token = api_token_create(user=feeder, name="load benchmark feeder")

    rt = record_type_upsert(
        api_name=RECORD_TYPE,
        label="Load case",
        fields=[
            {"name": "status", "type": "text"},
            {"name": "decision", "type": "choice", "choices": ["Approve", "Decline"]},
            {"name": "notes", "type": "text"},
        ],
    )
    own: dict[str, list[Any]] = {}
    for user in users:
        own[user.username] = [
            record_create(
                record_type=rt, name=f"Case {user.username}-{n}", values={"status": "New"}, owner=user
            )
            for n in range(1, RECORDS_PER_USER + 1)
        ]
    shared = [
        record_create(record_type=rt, name=f"Shared case {n}", values={"status": "New"})
        for n in range(1, SHARED_RECORDS + 1)
    ]
    definitions_import(items=[(f"load/{d['api_name']}.yaml", d) for d in definitions()])

    active = [u.username for u in users[:end_users]]
    away = [u.username for u in users[end_users:]]

    def launch(record: Any, assignee: str) -> None:
        run_launch(orchestration=ORCHESTRATION, record=record, inputs={"assignee": assignee}, actor=feeder)

    for name in active:
        for n in range(PRELAUNCH["active"]):
            launch(own[name][n % RECORDS_PER_USER], name)
    for name in away:
        for n in range(PRELAUNCH["away"]):
            launch(own[name][n % RECORDS_PER_USER], name)
    for t, team in enumerate(teams):
        for n in range(PRELAUNCH["team"]):
            launch(shared[(t * PRELAUNCH["team"] + n) % SHARED_RECORDS], f"group:{team.name}")
    for n in range(PRELAUNCH["queue"]):
        launch(shared[-1 - n % SHARED_RECORDS], f"queue:{QUEUE}")

    members = {team.name: [u.username for u in users if team in u.groups.all()] for team in teams}
    return {
        "password": PASSWORD,
        "prelaunched": PRELAUNCH["active"],
        "token": raw_token,
        "orchestration": ORCHESTRATION,
        "queue": QUEUE,
        "end_users": [{"username": n, "records": [r.pk for r in own[n]]} for n in active],
        "away": [{"username": n, "records": [r.pk for r in own[n]]} for n in away],
        "teams": members,
        "queue_teams": [teams[0].name, teams[1].name],
        "shared_records": [r.pk for r in shared],
        "managers": [m.username for m in managers],
        "admins": [a.username for a in admins],
    }


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Servers:
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(VAR / f"{name}.log", "wb")  # noqa: SIM115 (the process keeps it)
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        """SIGTERM (gunicorn and Celery shut down warm), then SIGKILL after 30 s, by pid only."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"{name} (pid {proc.pid}) did not stop: killing it and its children", flush=True)
                for child in children(proc.pid):
                    os.kill(child, signal.SIGKILL)
                proc.kill()
                proc.wait()


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise SystemExit(f"{what} did not come up within {timeout:.0f} s (see {VAR}/*.log)")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Memory:
    """Resident memory of the web workers and of each Celery worker's processes."""

    web: list[float]
    celery: dict[str, list[float]]

    @classmethod
    def read(cls, servers: Servers) -> Memory:
        web = [rss_mib(p) for p in children(servers.procs["gunicorn"].pid)]
        celery = {}
        for name, proc in servers.procs.items():
            if name.startswith("celery-worker"):
                celery[name] = [rss_mib(proc.pid)] + [rss_mib(p) for p in children(proc.pid)]
        return cls(web=web, celery=celery)

    def celery_total(self) -> float:
        return sum(sum(v) for v in self.celery.values())


class LoadSampler(threading.Thread):
    """The 1-minute load average every 15 s during the measurement."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(15):
            self.samples.append(loadavg()[0])


def loadavg() -> tuple[float, float, float]:
    a, b, c = Path("/proc/loadavg").read_text().split()[:3]
    return float(a), float(b), float(c)


# --- the figures --------------------------------------------------------------------------------


def database_figures(start: datetime, end: datetime) -> dict[str, Any]:
    from orchestration.models import Run, RunEvent, RunStatus, StepRun
    from workitems.models import WorkItem, WorkItemStatus

    completed = WorkItem.objects.filter(
        status=WorkItemStatus.COMPLETED, completed_at__gte=start, completed_at__lt=end
    ).count()
    runs_completed = Run.objects.filter(
        status=RunStatus.COMPLETED, ended_at__gte=start, ended_at__lt=end
    ).count()
    return {
        "items_completed": completed,
        "runs_completed": runs_completed,
        "runs_launched": Run.objects.filter(started_at__gte=start, started_at__lt=end).count(),
        "runs_total": Run.objects.count(),
        "runs_in_error": Run.objects.filter(status=RunStatus.ERROR).count(),
        "steps_in_error": StepRun.objects.filter(status="error").count(),
        "items_open": WorkItem.objects.filter(status=WorkItemStatus.ASSIGNED).count(),
        "reassigned": RunEvent.objects.filter(
            name="workitems.item.reassigned", created_at__gte=start, created_at__lt=end
        ).count(),
        "claimed": RunEvent.objects.filter(
            name="workitems.item.claimed", created_at__gte=start, created_at__lt=end
        ).count(),
    }


def versions(locust: Path, broker_url: str) -> dict[str, str]:
    import celery
    import django
    import psycopg
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]  # type: ignore[index]
    gunicorn = subprocess.run(
        [str(PROJECT_BIN / "gunicorn"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    locust_v = subprocess.run([str(locust), "--version"], capture_output=True, text=True).stdout.split(
        " from "
    )[0]
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "celery": celery.__version__,
        "gunicorn": gunicorn.replace("gunicorn (version ", "").rstrip(")"),
        "locust": locust_v.replace("locust ", ""),
        "postgresql": pg,
        "redis": redis_version(broker_url),
    }


def redis_version(broker_url: str) -> str:
    import redis

    return str(redis.Redis.from_url(broker_url).info("server").get("redis_version", "?"))


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return f"{os.cpu_count()} vCPU ({model}), {int(mem) / 1024 / 1024:.0f} GiB, {platform.platform()}"


def locust_stats(prefix: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], dict[str, str]]:
    """(pages, named outcomes, the aggregated row) from locust's `<prefix>_stats.csv`."""
    with open(f"{prefix}_stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    pages = [r for r in rows if r["Name"] != "Aggregated" and r["Type"] != "OUTCOME"]
    outcomes = [r for r in rows if r["Type"] == "OUTCOME"]
    return pages, outcomes, total


def report(
    *,
    args: argparse.Namespace,
    command: str,
    start: datetime,
    end: datetime,
    prefix: Path,
    figures: dict[str, Any],
    before: Memory,
    after: Memory,
    cpu: dict[str, float],
    load: dict[str, Any],
    info: dict[str, str],
    log_errors: dict[str, int],
) -> str:
    pages, outcomes, total = locust_stats(prefix)
    seconds = (end - start).total_seconds()
    logins = sorted(json.loads((VAR / "window.json").read_text())["logins"])
    lines = [
        f"Command: `{command}`",
        "",
        f"Measured {start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC ({seconds:.0f} s), {args.users} people "
        f"(locust users: {args.users - MANAGERS - ADMINS} end users, {MANAGERS} managers, {ADMINS} admins) "
        "+ 1 feeder (JSON API).",
        "",
        "| page | requests | failures | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in pages:
        if r["Request Count"] == "0":
            continue
        lines.append(
            f"| {r['Type']} {r['Name']} | {r['Request Count']} | {r['Failure Count']} | {r['50%']} | "
            f"{r['95%']} | {r['99%']} | {float(r['Max Response Time']):.0f} |"
        )
    lines.append(
        f"| **all** | **{total['Request Count']}** | **{total['Failure Count']}** | {total['50%']} | "
        f"{total['95%']} | {total['99%']} | {float(total['Max Response Time']):.0f} |"
    )
    rps = int(total["Request Count"]) / seconds
    lines += [
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests/s | {rps:.1f} |",
        f"| logins while people arrived ({SPAWN_RATE}/s, before the window opened): p50 / p95 / max | "
        f"{pct(logins, 50)} / {pct(logins, 95)} / {pct(logins, 100)} ms ({len(logins)} logins) |",
        f"| failures | **{total['Failure Count']}** |",
        f"| work items completed (database, in the window) | {figures['items_completed']} "
        f"= **{figures['items_completed'] / seconds:.2f} completions/s** |",
        f"| runs completed (both stages, the second on Celery) | {figures['runs_completed']} "
        f"({figures['runs_completed'] / seconds:.2f}/s) |",
        f"| runs launched in the window (feeder, JSON API) | {figures['runs_launched']} |",
        f"| runs or steps in error at the end | {figures['runs_in_error']} / {figures['steps_in_error']} |",
        f"| open work items at the end | {figures['items_open']} |",
        f"| items reassigned by managers / claimed by end users (events in the window) | "
        f"{figures['reassigned']} / {figures['claimed']} |",
        f"| errors in the server logs (gunicorn / Celery: ERROR or Traceback) | "
        f"{log_errors['web']} / {log_errors['celery']} |",
    ]
    for r in outcomes:
        lines.append(f"| named outcome: {r['Name']} | {r['Request Count']} |")
    web_b, web_a = sum(before.web), sum(after.web)
    lines += [
        f"| web RSS, {len(after.web)} gunicorn workers (sum) | {web_b:.1f} → {web_a:.1f} MiB "
        f"(per worker {', '.join(f'{v:.0f}' for v in after.web)}) |",
        f"| Celery RSS, 2 workers (main + pool process each, sum) | {before.celery_total():.1f} → "
        f"{after.celery_total():.1f} MiB |",
        f"| CPU during the window: web / Celery / PostgreSQL (this database) / locust | "
        f"{cpu['web']:.0f} / {cpu['celery']:.0f} / {cpu['postgres']:.0f} / {cpu['locust']:.0f} s "
        f"of {2 * seconds:.0f} s on 2 cores |",
        f"| load average (1 min) before / during (min-max, mean) / after | {load['before']:.2f} / "
        f"{load['min']:.2f}-{load['max']:.2f}, {load['mean']:.2f} / {load['after']:.2f} |",
        f"| machine | {machine()} |",
        "| versions | " + ", ".join(f"{k} {v}" for k, v in info.items()) + " |",
    ]
    return "\n".join(lines)


def pct(values: list[int], p: float) -> int:
    """Nearest-rank percentile of sorted values (0 when there are none)."""
    if not values:
        return 0
    return values[max(int(-(-len(values) * p // 100)) - 1, 0)]


def log_error_counts() -> dict[str, int]:
    def count(pattern: str) -> int:
        n = 0
        for path in VAR.glob(pattern):
            for line in path.read_text(errors="replace").splitlines():
                if "Traceback" in line or " ERROR" in line or line.startswith("ERROR"):
                    n += 1
        return n

    return {"web": count("gunicorn.log"), "celery": count("celery-worker-*.log")}


def postgres_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10, help="length of the measurement (default 10)")
    parser.add_argument("--users", type=int, default=50, help="people simulated (default 50: 45 end users)")
    parser.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--broker-url", default=os.environ.get("LOAD_BROKER_URL", DEFAULT_BROKER_URL))
    parser.add_argument("--web-workers", type=int, default=4)
    args = parser.parse_args(argv)
    end_users = args.users - MANAGERS - ADMINS
    if not 1 <= end_users <= END_USERS - 5:
        parser.error(f"--users must leave between 1 and {END_USERS - 5} end users")
    command = "bench/load/run.py " + " ".join(argv if argv is not None else sys.argv[1:])

    locust = locust_venv()
    port = free_port()
    env = server_env(database_url=args.database_url, broker_url=args.broker_url, port=port)
    for stale in [*VAR.glob("*.log"), *VAR.glob("locust_*.csv"), VAR / "celerybeat-schedule"]:
        stale.unlink(missing_ok=True)
    for mail in (VAR / "outbox").glob("*"):
        mail.unlink()

    sys.path.insert(0, str(ROOT))
    from bench.workloads import database_create

    print(f"database {args.database_url}: recreating and migrating …", flush=True)
    database_create(args.database_url, drop=True)
    django_setup(env)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    # As a deployment would (whitenoise serves them; locust, like a browser with a warm cache,
    # does not fetch them): staticfiles/ in the work tree, ignored by git.
    call_command("collectstatic", verbosity=0, interactive=False)
    # Only this benchmark's Redis database is emptied (never FLUSHALL: the server is shared).
    import redis

    redis.Redis.from_url(args.broker_url).flushdb()

    servers = Servers()
    try:
        for n in (1, 2):
            servers.start(
                f"celery-worker-{n}",
                [
                    str(PROJECT_BIN / "celery"), "-A", "config", "worker", "--concurrency", "1",
                    "--hostname", f"load{n}@%h", "--without-gossip", "--without-mingle",
                    "--loglevel", "WARNING",
                ],
                env,
            )  # fmt: skip
        servers.start(
            "celery-beat",
            [str(PROJECT_BIN / "celery"), "-A", "config", "beat", "--loglevel", "WARNING",
             "--schedule", str(VAR / "celerybeat-schedule")],
            env,
        )  # fmt: skip
        print("creating people, records, definitions and the first runs …", flush=True)
        plan = seed(end_users=end_users)
        plan_file = VAR / "plan.json"
        plan_file.write_text(json.dumps(plan))
        plan_file.chmod(0o600)
        servers.start(
            "gunicorn",
            [
                str(PROJECT_BIN / "gunicorn"), "config.wsgi", "--workers", str(args.web_workers),
                "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "--access-logformat",
                '%(t)s "%(r)s" %(s)s %(b)s %(M)sms', "--timeout", "60",
                # Its default, ~/.gunicorn/gunicorn.ctl, is one path for every gunicorn of the
                # user: another one on this machine would lose its socket to ours.
                "--no-control-socket",
            ],
            env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{base}/healthz"), "gunicorn")
        wait_for(lambda: len(children(servers.procs["gunicorn"].pid)) == args.web_workers, "gunicorn workers")
        for name, proc in servers.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited at start: see {VAR}/{name}.log")
        # A few health checks, as a load balancer makes before sending traffic.
        for _ in range(args.web_workers * 2):
            http_ok(f"{base}/healthz")
        time.sleep(2)

        before = Memory.read(servers)
        web_pids = children(servers.procs["gunicorn"].pid)
        celery_pids = [
            pid
            for name, proc in servers.procs.items()
            if name.startswith("celery-worker")
            for pid in (proc.pid, *children(proc.pid))
        ]
        load_before = loadavg()[0]
        sampler = LoadSampler()
        sampler.start()
        prefix = VAR / "locust"
        # People arrive at SPAWN_RATE a second and log in; the locustfile opens the window (and
        # resets the statistics) once all are in, and stops locust --minutes later. --run-time
        # is only a safety net.
        window_file = VAR / "window.json"
        window_file.unlink(missing_ok=True)
        locust_env = {
            **os.environ,
            "LOAD_PLAN": str(plan_file),
            "LOAD_WINDOW": str(window_file),
            "LOAD_SECONDS": str(args.minutes * 60),
            "PYTHONUNBUFFERED": "1",
        }
        locust_argv = [
            str(locust), "-f", str(HERE / "locustfile.py"), "--headless", "--host", base,
            "--users", str(args.users + 1), "--spawn-rate", str(SPAWN_RATE),
            "--run-time", f"{int(args.minutes * 60 + 600)}s",
            "--stop-timeout", "15", "--csv", str(prefix), "--only-summary",
            "--loglevel", "WARNING", "--logfile", str(VAR / "locust.log"),
        ]  # fmt: skip
        print(f"locust: {args.users} people + feeder for {args.minutes:g} min on {base} …", flush=True)
        with open(VAR / "locust-output.log", "wb") as out:
            locust_proc = subprocess.Popen(
                locust_argv, cwd=ROOT, env=locust_env, stdout=out, stderr=subprocess.STDOUT
            )
            locust_cpu, cpu_before = 0.0, None
            while locust_proc.poll() is None:
                if cpu_before is None and window_file.exists():
                    cpu_before = {
                        "web": cpu_seconds(web_pids),
                        "celery": cpu_seconds(celery_pids),
                        "postgres": cpu_seconds(postgres_pids()),
                        "locust": cpu_seconds([locust_proc.pid]),
                    }
                locust_cpu = max(locust_cpu, cpu_seconds([locust_proc.pid]))
                time.sleep(1)
        if cpu_before is None:
            raise SystemExit(f"locust ended before the measurement started: see {VAR}/locust*.log")
        sampler.done.set()
        window = json.loads(window_file.read_text())
        if "end" not in window:
            raise SystemExit(f"locust stopped before the window closed: see {VAR}/locust*.log")
        start = datetime.fromtimestamp(window["start"], UTC)
        end = datetime.fromtimestamp(window["end"], UTC)
        after = Memory.read(servers)
        cpu = {
            "web": cpu_seconds(web_pids) - cpu_before["web"],
            "celery": cpu_seconds(celery_pids) - cpu_before["celery"],
            # Persistent connections: the same server processes as at the start of the window.
            "postgres": cpu_seconds(postgres_pids()) - cpu_before["postgres"],
            "locust": locust_cpu - cpu_before["locust"],
        }
        time.sleep(3)  # let the last background steps finish before counting
        samples = sampler.samples or [load_before]
        load = {
            "before": load_before,
            "min": min(samples),
            "max": max(samples),
            "mean": sum(samples) / len(samples),
            "after": loadavg()[0],
        }
        figures = database_figures(start, end)
        text = report(
            args=args,
            command=command,
            start=start,
            end=end,
            prefix=prefix,
            figures=figures,
            before=before,
            after=after,
            cpu=cpu,
            load=load,
            info=versions(locust, args.broker_url),
            log_errors=log_error_counts(),
        )
    finally:
        servers.stop()
    (VAR / "report.md").write_text(text + "\n")
    print()
    print(text)
    print(f"\n(also in {VAR / 'report.md'}; logs in {VAR}/)")
    _pages, _outcomes, total = locust_stats(prefix)
    return 0 if int(total["Failure Count"]) == 0 and locust_proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
