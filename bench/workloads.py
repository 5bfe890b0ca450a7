"""The two benchmark workloads, the database they run on, and how statements are counted.

Imported by bench/run.py (the entry point) and by its child processes, so that `spawn`ed
children find the functions by module name. Every function here assumes `django.setup()`
has run with the environment bench/run.py prepared (see `configure`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flow_bench"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/5"

USERNAME = "bench_user"
W1 = "bench_w1"
W1_INLINE = "bench_w1_inline"
W2 = "bench_w2"
QUEUE = "bench_queue"
RECORD_POOL = 50  # runs are anchored on these case records, round robin


def configure(*, database_url: str, broker_url: str, eager: bool) -> None:
    """Set the environment the settings module reads, then set Django up.

    Must run before anything imports Django settings; child processes call it too."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = broker_url
    # Eager: a task enqueued on commit runs right there, in the launching process.
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true" if eager else "false"
    os.environ["DEBUG"] = "false"  # no query log growing in long runs
    os.environ["EMAIL_URL"] = "locmem:"
    os.environ["LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    # One connection per process for the whole benchmark, as a worker or a web process with
    # persistent connections would have.
    os.environ["DB_CONN_MAX_AGE"] = "600"
    import django

    django.setup()


# --- the database -----------------------------------------------------------------------------


def database_create(database_url: str, *, drop: bool = False) -> None:
    """Create the benchmark database if missing (or recreate it with `drop`)."""
    import psycopg
    from psycopg import sql

    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and drop:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    name = database_url.rsplit("/", 1)[1].split("?", 1)[0]
    with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def w1_documents() -> list[dict[str, Any]]:
    """W1: one stage; a; then b and c in parallel (both after a); then d (after b and c).

    Each step runs an autolaunched flow with one set_outputs action writing one output, kept
    in the run as steps.<key>.value. The expressions read earlier outputs, as real ones do."""
    from tests.factories import auto_flow, orchestration

    flows = {
        "a": "1",
        "b": "steps.a.value + 1",
        "c": "steps.a.value * 2",
        "d": "steps.b.value + steps.c.value",
    }
    docs = [auto_flow(f"bench_w1_{k}", outputs={"value": expr}) for k, expr in flows.items()]
    # W1 as it is, and W1 with inline steps (`run: inline`): the same flows run in the launch's
    # own transaction, as the Viewflow peer's W1a runs Function nodes in the caller's.
    for api_name, run in ((W1, "worker"), (W1_INLINE, "inline")):
        step = {"kind": "background", "run": run}
        docs.append(
            orchestration(
                api_name,
                stages=[
                    {
                        "key": "work",
                        "steps": [
                            {**step, "key": "a", "flow": "bench_w1_a"},
                            {**step, "key": "b", "flow": "bench_w1_b", "start": {"after": ["a"]}},
                            {**step, "key": "c", "flow": "bench_w1_c", "start": {"after": ["a"]}},
                            {**step, "key": "d", "flow": "bench_w1_d", "start": {"after": ["b", "c"]}},
                        ],
                    }
                ],
            )
        )
    return docs


def w2_documents() -> list[dict[str, Any]]:
    """W2: one interactive step for a queue the bench user is a member of (a screen flow with
    two fields): the user claims the item, then completes it, as the Viewflow peer's W2 creates
    its task unassigned, assigns it to the user, then completes it (three transitions each).

    The assignment email is switched off: it is a task of its own (on a worker), not part of
    launching or completing the run."""
    from tests.factories import orchestration, screen_flow

    return [
        screen_flow("bench_w2_review"),
        orchestration(
            W2,
            stages=[
                {
                    "key": "review",
                    "steps": [
                        {
                            "key": "review",
                            "kind": "interactive",
                            "flow": "bench_w2_review",
                            "assignee": {"queue": QUEUE},
                            "email": {"enabled": False},
                        }
                    ],
                }
            ],
        ),
    ]


def database_prepare(database_url: str, *, drop: bool = False) -> None:
    """Create and migrate the database, the bench user, case records and the definitions."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command

    from orchestration.services import definitions_import
    from records.models import Record
    from tests.factories import case_type, make_case

    database_create(database_url, drop=drop)
    call_command("migrate", verbosity=0, interactive=False)
    User = get_user_model()
    user, created = User.objects.get_or_create(username=USERNAME, defaults={"email": "bench@example.com"})
    if created:
        user.set_password("bench")
        user.save()
    # A launcher sees the record it launches on (run_launch checks it).
    user.user_permissions.add(
        Permission.objects.get(codename="launch_orchestration"),
        Permission.objects.get(codename="view_record", content_type__app_label="records"),
    )
    from workitems.models import Queue

    queue, _ = Queue.objects.get_or_create(api_name=QUEUE, defaults={"label": "Bench queue"})
    queue.users.add(user)
    case_type()
    missing = RECORD_POOL - Record.objects.filter(record_type__api_name="case").count()
    for i in range(missing):
        make_case(f"Bench case {i + 1}", owner=user)
    items = [(f"bench/{d['api_name']}.yaml", d) for d in (*w1_documents(), *w2_documents())]
    definitions_import(items=items)


def database_reset() -> None:
    """Empty the runtime tables (runs, their stages, steps, events, work items) and analyse
    them, so that each measurement of a side-by-side comparison starts from empty tables, as
    the Viewflow peer's `reset` does. Definitions, users and records stay."""
    from django.db import connection

    tables = ["workitems_workitemdraft", "workitems_workitem", "orchestration_runevent"]
    tables += ["orchestration_steprun", "orchestration_stagerun", "orchestration_run"]
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(t for t in tables if t in existing)} RESTART IDENTITY CASCADE")
        for table in tables:
            if table in existing:
                cursor.execute(f"VACUUM ANALYZE {table}")


@dataclass
class Fixture:
    """What one process needs to launch runs: the user (permissions cached) and records."""

    user: Any
    records: list[Any]

    def record(self, i: int) -> Any:
        return self.records[i % len(self.records)]


def fixture() -> Fixture:
    from django.contrib.auth import get_user_model

    from records.models import Record

    user = get_user_model().objects.get(username=USERNAME)
    user.has_perm("orchestration.launch_orchestration")  # fills the per-user permission cache
    # As a record page would have loaded them (run_launch checks the record's type).
    records = list(
        Record.objects.filter(record_type__api_name="case").select_related("record_type").order_by("pk")
    )[:RECORD_POOL]
    return Fixture(user=user, records=records)


# --- one run of each workload -------------------------------------------------------------------


def w1_run(fx: Fixture, i: int) -> int:
    from orchestration.services import run_launch

    return run_launch(orchestration=W1, record=fx.record(i), actor=fx.user).pk


def w1_inline_run(fx: Fixture, i: int) -> int:
    from orchestration.services import run_launch

    return run_launch(orchestration=W1_INLINE, record=fx.record(i), actor=fx.user).pk


def w2_run(fx: Fixture, i: int) -> int:
    from orchestration.services import run_launch
    from workitems.services import workitem_claim, workitem_complete

    run = run_launch(orchestration=W2, record=fx.record(i), actor=fx.user)
    # The item as the Work Guide loads it (the peer's inbox lookup); both services re-read it
    # under the run lock, so the completion is checked against the claim just made.
    item = w2_item(run.pk)
    workitem_claim(item=item, user=fx.user)
    workitem_complete(item=item, user=fx.user, data={"approved": "true", "comment": "fine"})
    return run.pk


def w2_item(run_id: int) -> Any:
    """The work item as the Work Guide loads it: with its step run and the flow to show."""
    from workitems.models import WorkItem

    return WorkItem.objects.select_related("step_run__flow_version").get(run_id=run_id)


WORKLOADS: dict[str, Callable[[Fixture, int], int]] = {"w1": w1_run, "w1i": w1_inline_run, "w2": w2_run}


def check_completed(run_ids: list[int]) -> None:
    from orchestration.models import Run, RunStatus

    bad = Run.objects.filter(pk__in=run_ids).exclude(status=RunStatus.COMPLETED).count()
    if bad:
        raise SystemExit(f"{bad} of {len(run_ids)} runs did not complete")


# --- what the figures depend on ---------------------------------------------------------------


def configuration() -> dict[str, Any]:
    """The settings that change the engine's cost per run, as this process really has them."""
    import sysconfig

    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    options = db.get("OPTIONS", {})
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0].split()[0]
        cursor.execute("SHOW plan_cache_mode")
        plan_cache_mode = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        synchronous_commit = cursor.fetchone()[0]
    config_args = sysconfig.get_config_var("CONFIG_ARGS") or ""
    import psycopg

    return {
        "debug": settings.DEBUG,
        "server_side_binding": options.get("server_side_binding", False),
        "prepare_threshold": options.get("prepare_threshold", "psycopg default (5)"),
        "conn_max_age": db.get("CONN_MAX_AGE"),
        "plan_cache_mode": plan_cache_mode,
        "synchronous_commit": synchronous_commit,
        "python": sys.version.split()[0],
        "python_pgo": "--enable-optimizations" in config_args,
        "postgresql": pg,
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
    }


def calibrate() -> dict[str, float]:
    """Two fixed pieces of work that say how fast this machine is today, so that figures taken
    on different days or machines can be compared: a pure-Python loop (ms, best of 5) and the
    round trip of `SELECT 1` on the benchmark's connection (µs, median of 2,000).

    The VM this project is measured on has varied by a factor of 3 between days (bench/README.md,
    "Reproducing the figures"): engine figures without these beside them cannot be compared."""
    import json
    import statistics

    from django.db import connection

    def python_work() -> None:
        steps = {f"s{i}": {"value": str(i), "label": f"Step {i}"} for i in range(50)}
        for _ in range(200):
            json.loads(json.dumps({"steps": steps}))
            sorted(steps.items(), key=lambda kv: kv[1]["label"])

    python_ms = []
    for _ in range(5):
        start = time.perf_counter()
        python_work()
        python_ms.append(1000 * (time.perf_counter() - start))
    trips = []
    with connection.cursor() as cursor:
        for _ in range(2000):
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            trips.append(1e6 * (time.perf_counter() - start))
    return {"python_loop_ms": min(python_ms), "select1_us": statistics.median(trips)}


# --- throughput -------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time consumed so far by these processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            # Fields after the command name (which is in parentheses and may contain spaces).
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def backend_pids(*, all_connections: bool = False) -> list[int]:
    """The PostgreSQL server process of this connection (or of every connection to the
    benchmark database): its CPU time is the database's share of the work."""
    from django.db import connection

    with connection.cursor() as cursor:
        if all_connections:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        else:
            cursor.execute("SELECT pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def inprocess_child(
    workload: str, runs: int, warmup: int, barrier: Any, out: Any, seconds: float = 0
) -> None:
    """One process of the in-process benchmark: warm up, wait for the others, run, report.

    With `seconds`, it runs for that long after the barrier (as the Viewflow peer's loop does)
    instead of a fixed number of runs."""
    configure(database_url=os.environ["DATABASE_URL"], broker_url=os.environ["CELERY_BROKER_URL"], eager=True)
    fx = fixture()
    fn = WORKLOADS[workload]
    for i in range(warmup):
        fn(fx, i)
    backend = backend_pids()
    barrier.wait()
    ids = []
    cpu_app, cpu_db = cpu_seconds([os.getpid()]), cpu_seconds(backend)
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on Linux
    if seconds:
        deadline, i = start + seconds, 0
        while True:
            ids.append(fn(fx, i))
            i += 1
            if time.monotonic() >= deadline:
                break
    else:
        for i in range(runs):
            ids.append(fn(fx, i))
    end = time.monotonic()
    cpu_app, cpu_db = cpu_seconds([os.getpid()]) - cpu_app, cpu_seconds(backend) - cpu_db
    check_completed(ids)
    out.put((start, end, len(ids), cpu_app, cpu_db))


def inprocess_throughput(
    workload: str, *, processes: int, runs: int = 0, warmup: int = 20, seconds: float = 0
) -> dict[str, Any]:
    """Runs per second with `processes` processes launching `runs` runs between them, and the
    CPU time one run costs (the benchmark processes and their PostgreSQL server processes)."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")  # fresh interpreters: no database connection shared by fork
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    share = [runs // processes + (1 if p < runs % processes else 0) for p in range(processes)]
    procs = [
        ctx.Process(target=inprocess_child, args=(workload, n, warmup, barrier, out, seconds)) for n in share
    ]
    for p in procs:
        p.start()
    results: list[tuple[float, float, int, float, float]] = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=5))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                barrier.abort()
                for p in procs:
                    p.join()
                raise SystemExit("a benchmark process failed (its traceback is above)") from None
    for p in procs:
        p.join()
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    done = sum(r[2] for r in results)
    return {
        "runs": done,
        "seconds": elapsed,
        "runs_per_s": done / elapsed,
        "cpu_ms_app": 1000 * sum(r[3] for r in results) / done,
        "cpu_ms_db": 1000 * sum(r[4] for r in results) / done,
    }


# --- statement counts -------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    statements: list[str] = field(default_factory=list)


class PhaseCounter:
    """Counts statements per phase: the launch, then each background step's task.

    With eager Celery a step's task runs inside the commit of the transaction that queued
    it, so phases nest; each statement is charged to the innermost phase."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.stack: list[Phase] = []
        # BEGIN and COMMIT are not statements the engine writes, but Django logs them as queries
        # (assertNumQueries counts them); they are reported beside the statements.
        self.transaction_control = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.stack:
            self.stack[-1].statements.append(sql)
        return execute(sql, params, many, context)

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        ph = Phase(name)
        self.phases.append(ph)
        self.stack.append(ph)
        try:
            yield ph
        finally:
            self.stack.pop()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The benchmark's own look-ups are not the engine's statements."""
        self.stack.append(Phase("(not counted)"))
        try:
            yield
        finally:
            self.stack.pop()

    def total(self) -> int:
        return sum(len(p.statements) for p in self.phases)


@contextmanager
def counting() -> Iterator[PhaseCounter]:
    """Install a PhaseCounter on the connection and name each background step's phase."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orchestration import services
    from orchestration.models import StepRun

    counter = PhaseCounter()
    original = services.background_step_execute

    def wrapped(*, step_run_id: int, attempt: int) -> str:
        with counter.paused():
            key = StepRun.objects.values_list("key", flat=True).get(pk=step_run_id)
        with counter.phase(f"step {key}"):
            return original(step_run_id=step_run_id, attempt=attempt)

    services.background_step_execute = wrapped  # type: ignore[assignment]
    try:
        with CaptureQueriesContext(connection) as logged, connection.execute_wrapper(counter):
            yield counter
    finally:
        services.background_step_execute = original  # type: ignore[assignment]
    counter.transaction_control = sum(
        q["sql"] in {"BEGIN", "COMMIT", "ROLLBACK"} for q in logged.captured_queries
    )


def count_w1(fx: Fixture) -> PhaseCounter:
    w1_run(fx, 0)  # warm the caches (parsed definitions, content types)
    with counting() as counter, counter.phase("launch"):
        run_id = w1_run(fx, 1)
    check_completed([run_id])
    return counter


def count_w1_inline(fx: Fixture) -> PhaseCounter:
    w1_inline_run(fx, 0)
    with counting() as counter, counter.phase("launch"):
        run_id = w1_inline_run(fx, 1)
    check_completed([run_id])
    return counter


def count_w2(fx: Fixture) -> PhaseCounter:
    from orchestration.services import run_launch
    from workitems.services import workitem_claim, workitem_complete

    w2_run(fx, 0)
    with counting() as counter:
        with counter.phase("launch"):
            run = run_launch(orchestration=W2, record=fx.record(1), actor=fx.user)
        with counter.phase("load item"):
            item = w2_item(run.pk)
        with counter.phase("claim"):
            workitem_claim(item=item, user=fx.user)
        with counter.phase("complete"):
            workitem_complete(item=item, user=fx.user, data={"approved": "true", "comment": "fine"})
    check_completed([run.pk])
    return counter
