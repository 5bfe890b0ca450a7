"""Monitoring pages at scale: generate a million runs and three million work items, then time
the runs page, run detail and Work Items page the way production serves them.

    .venv/bin/python bench/monitor.py generate --runs 1000000 --items 3000000
    .venv/bin/python bench/monitor.py measure --requests 200

`generate` creates (or empties) the database in $DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/flow_monitor_bench), migrates it, creates the definitions,
record type, users, groups and queues through the services (so generated rows reference real
versions), then fills runs, stage/step runs, events, work items and records with
INSERT ... SELECT generate_series(...) and ANALYZEs. `measure` starts gunicorn (DEBUG off, two
workers) on 127.0.0.1:8765, logs in as the superuser `benchadmin` and times each page. See
bench/MONITOR.md."""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flow_monitor_bench"
DB_URL = os.environ.get("DATABASE_URL", DEFAULT_DB)
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
ADMIN = ("benchadmin", "bench-password-1")
RECORDS = 100_000
ORCHESTRATIONS = ("case_review", "case_escalation", "case_closure")


def _django() -> None:
    os.environ["DATABASE_URL"] = DB_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _create_database() -> None:
    import psycopg

    url = urlparse(DB_URL)
    name = url.path.lstrip("/")
    admin_url = DB_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _definitions() -> list[tuple[str, dict]]:
    review = {
        "kind": "screen_flow",
        "api_name": "bench_review",
        "screens": [
            {
                "key": "main",
                "fields": [{"name": "approved", "type": "boolean"}, {"name": "comment", "type": "text"}],
            }
        ],
        "inputs": [],
    }
    enrich = {
        "kind": "autolaunched_flow",
        "api_name": "bench_enrich",
        "inputs": [],
        "outputs": [{"name": "score", "type": "json"}],
        "actions": [{"type": "set_outputs", "values": {"score": "42"}}],
    }
    docs: list[tuple[str, dict]] = [("review.yaml", review), ("enrich.yaml", enrich)]
    assignees = [{"user": "alice"}, {"group": "support"}, {"queue": "triage"}]
    for name in ORCHESTRATIONS:
        docs.append(
            (
                f"{name}.yaml",
                {
                    "kind": "orchestration",
                    "api_name": name,
                    "label": name.replace("_", " ").title(),
                    "start": {"type": "autolaunched", "record_type": "case"},
                    "variables": [],
                    "stages": [
                        {
                            "key": "intake",
                            "label": "Intake",
                            "steps": [{"key": "enrich", "kind": "background", "flow": "bench_enrich"}],
                        },
                        {
                            "key": "review",
                            "label": "Review",
                            "steps": [
                                {
                                    "key": f"review_{c}",
                                    "kind": "interactive",
                                    "flow": "bench_review",
                                    "assignee": a,
                                }
                                for c, a in zip("abc", assignees, strict=True)
                            ],
                        },
                        {
                            "key": "approval",
                            "label": "Approval",
                            "steps": [
                                {
                                    "key": "decide",
                                    "kind": "interactive",
                                    "flow": "bench_review",
                                    "assignee": {"group": "managers"},
                                }
                            ],
                        },
                    ],
                },
            )
        )
    return docs


def _setup_objects() -> None:
    """The small tables, through the services and the ORM."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from orchestration.services import definitions_import
    from records.services import record_type_upsert
    from workitems.models import Queue

    User = get_user_model()
    groups = {n: Group.objects.get_or_create(name=n)[0] for n in ("engineering", "support", "managers")}
    groups["managers"].permissions.add(Permission.objects.get(codename="reassign_workitem"))
    for i, name in enumerate(["alice", "bob", "charlie", *[f"user{n:02d}" for n in range(1, 21)]]):
        u = User.objects.create_user(username=name, email=f"{name}@example.com", password="pw")
        u.groups.add(list(groups.values())[i % 3])
    User.objects.create_superuser(username=ADMIN[0], email="admin@example.com", password=ADMIN[1])
    triage = Queue.objects.create(api_name="triage", label="Triage")
    triage.users.add(User.objects.get(username="bob"))
    Queue.objects.create(api_name="eng_queue", label="Engineering queue").groups.add(groups["engineering"])
    record_type_upsert(
        api_name="case",
        label="Case",
        fields=[
            {"name": "severity", "type": "choice", "choices": ["Low", "Medium", "High"], "required": True},
            {"name": "description", "type": "long_text"},
        ],
    )
    definitions_import(items=_definitions())


# Status of run g (1-based) out of 100 buckets: 80 % completed, 10 % in progress, 4 % error,
# 4 % canceled, 2 % suspended. The bucket is a hash of g so statuses interleave.
BUCKET = "((g::bigint * 7919) % 100)"
STATUS = f"""CASE WHEN {BUCKET} < 80 THEN 'completed' WHEN {BUCKET} < 90 THEN 'in_progress'
    WHEN {BUCKET} < 94 THEN 'error' WHEN {BUCKET} < 98 THEN 'canceled' ELSE 'suspended' END"""


def _sql_steps(runs: int, items: int) -> list[tuple[str, str]]:
    return [
        (
            "records",
            f"""INSERT INTO records_record (record_type_id, name, owner_id, data, created_at, updated_at)
            SELECT (SELECT id FROM records_recordtype WHERE api_name = 'case'), 'Case ' || g,
                   (SELECT min(id) FROM auth_user) + g % 20,
                   jsonb_build_object('severity', (ARRAY['Low','Medium','High'])[1 + g % 3]),
                   now() - (({RECORDS} - g) * interval '5 minutes'), now()
            FROM generate_series(1, {RECORDS}) g""",
        ),
        (
            "runs",
            f"""INSERT INTO orchestration_run (orchestration_id, version_id, record_type_id, record_id,
                record_label, status, variables, inputs, step_outputs, current_stage, started_at, ended_at,
                created_at, started_by_id, error, recheck)
            SELECT v.orchestration_id, v.id, ct.id, r0.min_id + g % {RECORDS}, 'Case ' || (1 + g % {RECORDS}),
                   s.status, '{{"priority": "normal"}}', '{{}}', '{{}}',
                   CASE s.status WHEN 'completed' THEN '' WHEN 'canceled' THEN '' ELSE 'review' END,
                   t.started, CASE WHEN s.status IN ('completed', 'canceled')
                                   THEN t.started + ((g % 240) + 5) * interval '1 minute' END,
                   t.started, u.min_id + g % 20,
                   CASE s.status WHEN 'error' THEN 'Step review_a failed: division by zero' ELSE '' END, false
            FROM generate_series(1, {runs}) g
            CROSS JOIN LATERAL (SELECT {STATUS} AS status) s
            CROSS JOIN LATERAL (SELECT now() - (({runs} - g) * interval '30 seconds') AS started) t
            JOIN (SELECT id, orchestration_id, row_number() OVER (ORDER BY id) - 1 AS n
                  FROM orchestration_orchestrationversion) v ON v.n = g % 3
            CROSS JOIN (SELECT id FROM django_content_type
                        WHERE app_label = 'records' AND model = 'record') ct
            CROSS JOIN (SELECT min(id) AS min_id FROM records_record) r0
            CROSS JOIN (SELECT min(id) AS min_id FROM auth_user) u
            ORDER BY g""",
        ),
        # Runs with stages: every open run, and one in ten of the finished ones.
        (
            "detailed runs",
            """CREATE UNLOGGED TABLE bench_detailed AS
            SELECT id, status, started_at FROM orchestration_run
            WHERE status IN ('in_progress', 'error', 'suspended') OR id % 10 = 0""",
        ),
        (
            "stage runs",
            """INSERT INTO orchestration_stagerun (run_id, key, index, status, outcome, started_at, ended_at)
            SELECT r.id, st.key, st.idx,
                   CASE WHEN st.idx = 0 OR r.status = 'completed' THEN 'completed'
                        WHEN r.status = 'canceled' THEN 'canceled' ELSE 'in_progress' END,
                   CASE WHEN st.idx = 2 THEN 'approved' ELSE '' END,
                   r.started_at + st.idx * interval '10 minutes',
                   CASE WHEN st.idx = 0 OR r.status IN ('completed', 'canceled')
                        THEN r.started_at + (st.idx + 1) * interval '10 minutes' END
            FROM bench_detailed r
            CROSS JOIN (VALUES (0, 'intake'), (1, 'review'), (2, 'approval')) st(idx, key)
            WHERE st.idx < 2 OR r.status = 'completed'
            ORDER BY r.id, st.idx""",
        ),
        (
            "step runs",
            """INSERT INTO orchestration_steprun (run_id, stage_run_id, key, kind, status, flow_version_id,
                inputs, outputs, attempts, exec_state, error, started_at, ended_at)
            SELECT sr.run_id, sr.id, sp.key, sp.kind,
                   CASE WHEN sr.status = 'in_progress' AND r.status = 'error' AND sp.key = 'review_a'
                        THEN 'error'
                        WHEN sr.status = 'in_progress' AND r.status = 'error' THEN 'completed'
                        ELSE sr.status END,
                   fv.id, '{"case": "bench"}',
                   CASE WHEN sr.status = 'completed' THEN '{"approved": true}'::jsonb ELSE '{}'::jsonb END,
                   CASE WHEN r.status = 'error' AND sp.key = 'review_a' THEN 3 ELSE 1 END,
                   CASE WHEN sp.kind = 'background' THEN 'done' ELSE 'idle' END,
                   CASE WHEN r.status = 'error' AND sp.key = 'review_a' AND sr.status = 'in_progress'
                        THEN 'division by zero' ELSE '' END,
                   sr.started_at, sr.ended_at
            FROM orchestration_stagerun sr
            JOIN bench_detailed r ON r.id = sr.run_id
            JOIN (VALUES ('intake', 'enrich', 'background', 'bench_enrich'),
                         ('review', 'review_a', 'interactive', 'bench_review'),
                         ('review', 'review_b', 'interactive', 'bench_review'),
                         ('review', 'review_c', 'interactive', 'bench_review'),
                         ('approval', 'decide', 'interactive', 'bench_review')) sp(stage, key, kind, flow)
              ON sp.stage = sr.key
            JOIN orchestration_flow f ON f.api_name = sp.flow
            JOIN orchestration_flowversion fv ON fv.flow_id = f.id AND fv.is_active
            ORDER BY sr.id, sp.key""",
        ),
        (
            "run events",
            """INSERT INTO orchestration_runevent (run_id, name, actor_id, stage, step, payload, created_at)
            SELECT run_id, name, NULL, stage, step, payload, at FROM (
                SELECT r.id AS run_id, 'orchestration.run_started' AS name, '' AS stage, '' AS step,
                       '{}'::jsonb AS payload, r.started_at AS at, 0 AS o
                FROM bench_detailed r
                UNION ALL
                SELECT s.run_id, 'orchestration.step_' || s.status, sr.key, s.key,
                       jsonb_build_object('attempts', s.attempts), coalesce(s.ended_at, s.started_at), s.id
                FROM orchestration_steprun s JOIN orchestration_stagerun sr ON sr.id = s.stage_run_id
            ) e ORDER BY run_id, o""",
        ),
        # Interactive step runs, numbered, to spread the work items over.
        (
            "open steps",
            """CREATE UNLOGGED TABLE bench_open_steps AS
            SELECT row_number() OVER (ORDER BY s.id) AS n, s.id, s.run_id, s.started_at, s.key
            FROM orchestration_steprun s JOIN orchestration_run r ON r.id = s.run_id
            WHERE s.kind = 'interactive' AND s.status = 'in_progress' AND r.status = 'in_progress'""",
        ),
        (
            "closed steps",
            """CREATE UNLOGGED TABLE bench_closed_steps AS
            SELECT row_number() OVER (ORDER BY s.id) - 1 AS n, s.id, s.run_id, s.started_at, s.key
            FROM orchestration_steprun s
            WHERE s.kind = 'interactive' AND s.status = 'completed'""",
        ),
        # About 10 % of the items are open, one per open interactive step run (there is at most one
        # open item per step run); the rest are completed (and a few canceled) items spread over the
        # finished interactive step runs.
        (
            "work items",
            f"""WITH ids AS (SELECT (SELECT min(id) FROM auth_user) AS u0,
                                    (SELECT array_agg(id ORDER BY id) FROM auth_group) AS groups,
                                    (SELECT array_agg(id ORDER BY id) FROM workitems_queue) AS queues,
                                    (SELECT count(*) FROM bench_closed_steps) AS closed,
                                    (SELECT id FROM django_content_type
                                     WHERE app_label = 'records' AND model = 'record') AS ct)
            INSERT INTO workitems_workitem (run_id, step_run_id, record_type_id, record_id, label, status,
                assignee_user_id, assignee_group_id, assignee_queue_id, claimed_by_id, completed_by_id,
                outputs, created_at, completed_at, due_at)
            SELECT x.run_id, x.step_id, ids.ct, r.record_id, 'Review ' || r.record_label, x.status,
                   CASE WHEN x.k % 3 = 0 THEN ids.u0 + x.k % 20 END,
                   CASE WHEN x.k % 3 = 1 THEN ids.groups[1 + x.k % array_length(ids.groups, 1)] END,
                   CASE WHEN x.k % 3 = 2 THEN ids.queues[1 + x.k % array_length(ids.queues, 1)] END,
                   CASE WHEN x.status = 'assigned' AND x.k % 7 = 0 THEN ids.u0 + x.k % 20 END,
                   CASE WHEN x.status = 'completed' THEN ids.u0 + x.k % 20 END,
                   CASE WHEN x.status = 'completed' THEN '{{"approved": true}}'::jsonb ELSE '{{}}'::jsonb END,
                   x.created,
                   CASE WHEN x.status = 'completed' THEN x.created + (x.k % 600) * interval '1 minute' END,
                   CASE WHEN x.k % 4 = 0 THEN NULL ELSE x.created + (x.k % 30 - 5) * interval '1 day' END
            FROM (
                SELECT o.id AS step_id, o.run_id, o.started_at AS created, 'assigned' AS status, o.n AS k
                FROM bench_open_steps o
                WHERE o.n <= {items // 10}
                UNION ALL
                SELECT c.id, c.run_id, c.started_at,
                       CASE WHEN g % 31 = 0 THEN 'canceled' ELSE 'completed' END, g
                FROM generate_series(1, {items - items // 10}) g
                CROSS JOIN ids
                JOIN bench_closed_steps c ON c.n = g % ids.closed
            ) x
            JOIN orchestration_run r ON r.id = x.run_id
            CROSS JOIN ids
            ORDER BY x.created, x.step_id""",
        ),
        ("drop helpers", "DROP TABLE bench_detailed, bench_open_steps, bench_closed_steps"),
    ]


# Columns added after the INSERTs above were written are NOT NULL without a default in the database
# (Django fills them in Python): while the INSERTs run, they get one by type, dropped afterwards.
_FILLERS = {"boolean": "false", "integer": "0", "smallint": "0", "bigint": "0", "jsonb": "'{}'"}
_TABLES = ("orchestration_run", "orchestration_stagerun", "orchestration_steprun", "workitems_workitem")


def _column_defaults(cur: Any, *, drop: bool) -> None:
    cur.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ANY(%s) AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
        [list(_TABLES)],
    )
    for table, column, kind in cur.fetchall():
        filler = "''" if kind in ("text", "character varying") else _FILLERS.get(kind)
        if filler:
            what = "DROP DEFAULT" if drop else f"SET DEFAULT {filler}"
            cur.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" {what}')


def generate(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    _create_database()
    env = {**os.environ, "DATABASE_URL": DB_URL}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    _django()
    from django.db import connection

    _setup_objects()
    print(f"schema and definitions: {time.monotonic() - t0:.1f} s", flush=True)
    with connection.cursor() as cur:
        cur.execute("SET work_mem = '256MB'")
        cur.execute("SET maintenance_work_mem = '512MB'")
        cur.execute("SET synchronous_commit = off")
        # The rows are consistent by construction: skipping the per-row foreign key triggers makes
        # the inserts several times faster (needs a superuser, which the bench database has).
        cur.execute("SET session_replication_role = replica")
        _column_defaults(cur, drop=False)
        for name, sql in _sql_steps(args.runs, args.items):
            t = time.monotonic()
            cur.execute(sql)
            print(f"{name}: {cur.rowcount} rows, {time.monotonic() - t:.1f} s", flush=True)
        _column_defaults(cur, drop=True)
        for table in (
            "orchestration_run",
            "orchestration_stagerun",
            "orchestration_steprun",
            "orchestration_runevent",
            "workitems_workitem",
            "records_record",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        t = time.monotonic()
        cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("VACUUM ANALYZE")
        print(f"vacuum analyze: {time.monotonic() - t:.1f} s", flush=True)
        cur.execute(
            "SELECT (SELECT count(*) FROM orchestration_run), (SELECT count(*) FROM workitems_workitem), "
            "(SELECT count(*) FROM workitems_workitem WHERE status = 'assigned'), "
            "(SELECT count(*) FROM orchestration_stagerun), (SELECT count(*) FROM orchestration_steprun), "
            "(SELECT count(*) FROM orchestration_runevent), (SELECT count(*) FROM records_record), "
            "pg_size_pretty(pg_database_size(current_database()))"
        )
        runs, items, open_items, stages, steps, events, records, size = cur.fetchone()
    print(
        f"runs {runs}, work items {items} ({open_items} open), stage runs {stages}, step runs {steps}, "
        f"events {events}, records {records}; database {size}; total {time.monotonic() - t0:.0f} s"
    )


# --- measure ------------------------------------------------------------------------------------


def _wait_up(proc: subprocess.Popen) -> None:
    import requests

    for _ in range(100):
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited")
        try:
            requests.get(f"{BASE}/login/", timeout=30)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not start")


def _login():
    import requests

    s = requests.Session()
    page = s.get(f"{BASE}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    r = s.post(
        f"{BASE}/login/",
        data={"username": ADMIN[0], "password": ADMIN[1], "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{BASE}/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, f"login failed: {r.status_code}"
    return s


def _targets(session) -> list[tuple[str, list[str]]]:
    """(page, [urls]) to time. Runs to open: random runs that have stage runs."""
    _django()
    from orchestration.models import Orchestration, Run

    rng = random.Random(4)
    first = session.get(f"{BASE}/monitor/runs/", timeout=30).text
    older = re.search(r'href="\?[^"]*before=(\d+)', first)
    before = int(older.group(1)) if older else 0
    max_id = Run.objects.order_by("-id").values_list("id", flat=True).first() or 0
    # A page deep in the history: keyset pages cost the same wherever they are.
    deep = max_id // 2
    orch = Orchestration.objects.order_by("api_name").values_list("api_name", flat=True).first()
    detail_ids = [run_id for run_id in (rng.randint(1, max_id) for _ in range(4000)) if run_id % 10 == 0]
    return [
        ("runs: default", ["/monitor/runs/"]),
        ("runs: status=error", ["/monitor/runs/?status=error"]),
        (f"runs: orchestration={orch}", [f"/monitor/runs/?orchestration={orch}"]),
        (
            "runs: orchestration + status=in_progress",
            [f"/monitor/runs/?orchestration={orch}&status=in_progress"],
        ),
        ("runs: Older page (before=)", [f"/monitor/runs/?before={before}"]),
        ("runs: page at mid-history", [f"/monitor/runs/?before={deep}"]),
        # Free-text search on the record name: a rare term (a hundred runs), a term every run
        # matches, and one nothing matches (answered by the trigram index, migration 0004).
        ("runs: search q=Case 4242", ["/monitor/runs/?q=Case+4242"]),
        ("runs: search q=case (every run)", ["/monitor/runs/?q=case"]),
        ("runs: search q=nomatch", ["/monitor/runs/?q=nomatch"]),
        ("run detail (random runs with stages)", [f"/monitor/runs/{i}/" for i in detail_ids]),
        ("work items: open", ["/work-items/"]),
        ("work items: overdue", ["/work-items/?view=overdue"]),
        ("work items: stalled", ["/work-items/?view=stalled"]),
        ("work items: completed", ["/work-items/?view=completed"]),
        ("work items: group=support", ["/work-items/?group=support"]),
        (f"work items: orchestration={orch}", [f"/work-items/?orchestration={orch}"]),
        ("work items: user=bob, completed", ["/work-items/?view=completed&user=bob"]),
    ]


def measure(args: argparse.Namespace) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": DB_URL,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": "bench-" + "x" * 50,
        "LOG_LEVEL": "WARNING",
    }
    gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-w", "2", "-b", f"127.0.0.1:{PORT}", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_up(proc)
        session = _login()
        targets = _targets(session)
        rows = []
        for name, urls in targets:
            for url in urls[:3]:  # warm both workers (template and plan caches)
                session.get(BASE + url, timeout=30)
                session.get(BASE + url, timeout=30)
            times = []
            for i in range(args.requests):
                url = urls[i % len(urls)]
                t = time.perf_counter()
                r = session.get(BASE + url, timeout=30)
                times.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200 or "/login/" in r.url:
                    raise SystemExit(f"{url}: HTTP {r.status_code} ({r.url})")
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            rows.append((name, statistics.median(times), p95, times[-1], len(r.content)))
            print(f"{name:45} p50 {rows[-1][1]:6.1f}  p95 {p95:6.1f}  max {times[-1]:6.1f} ms", flush=True)
        print()
        print(f"| page ({args.requests} requests each) | p50 ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|")
        for name, p50, p95, mx, _size in rows:
            print(f"| {name} | {p50:.0f} | {p95:.0f} | {mx:.0f} |")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="create and fill the bench database")
    g.add_argument("--runs", type=int, default=1_000_000)
    g.add_argument("--items", type=int, default=3_000_000)
    m = sub.add_parser("measure", help="time the monitoring pages through gunicorn")
    m.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.chdir(ROOT)
    generate(args) if args.command == "generate" else measure(args)


if __name__ == "__main__":
    main()
