"""The SLA tick's cost (workitems/sla.py) with many open items that have rules: one tick when
nothing is due, and one when a batch of rules is due, timed and counted in SQL statements.

    .venv/bin/python bench/sla.py --items 100000 --due 1000

Creates (or empties) the database in $DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/flow_sla_bench), migrates it, imports one orchestration whose
interactive step has an SLA with two rules (an email to the assignee 4 h before due, an
escalation at due), launches one run through the engine and copies its run, stage run, step run
and work item `--items` times (bulk inserts), with `--due` of them due now and the rest next
week; then ANALYZEs and measures. Results go to stdout; bench/README.md records them."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import copy_row, create_database, django_setup  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/flow_sla_bench"
DB_URL = os.environ.get("DATABASE_URL", DEFAULT_DB)


def _setup(items: int, due: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from orchestration.models import Run, StageRun, StepRun
    from orchestration.services import definitions_import, run_launch
    from workitems.models import WorkItem

    call_command("migrate", verbosity=0)
    User = get_user_model()
    User.objects.create_user("alice", email="alice@example.com")
    definitions_import(
        items=[
            (
                "form.yaml",
                {
                    "kind": "screen_flow",
                    "api_name": "form",
                    "screens": [{"key": "s", "fields": [{"name": "ok", "type": "boolean"}]}],
                },
            ),
            (
                "proc.yaml",
                {
                    "kind": "orchestration",
                    "api_name": "sla_bench",
                    "start": {"type": "autolaunched"},
                    "stages": [
                        {
                            "key": "review",
                            "steps": [
                                {
                                    "key": "check",
                                    "kind": "interactive",
                                    "flow": "form",
                                    "assignee": {"user": "alice"},
                                    "email": {"enabled": False},
                                    "sla": {
                                        "due": "2d",
                                        "rules": [
                                            {
                                                "key": "remind",
                                                "at": "-4h",
                                                "email": {"to": "assignee", "subject": "Due soon"},
                                            },
                                            {
                                                "key": "escalate",
                                                "at": "due",
                                                "priority": "raise",
                                                "note": "late",
                                            },
                                        ],
                                    },
                                }
                            ],
                        }
                    ],
                },
            ),
        ]
    )
    template = run_launch(orchestration="sla_bench")
    stage = StageRun.objects.get(run=template)
    step = StepRun.objects.get(run=template)
    item = WorkItem.objects.get(run=template)
    now = timezone.now()
    t0 = time.perf_counter()
    batch = 5000
    with transaction.atomic():
        for start in range(0, items, batch):
            n = min(batch, items - start)
            runs = Run.objects.bulk_create([copy_row(template) for _ in range(n)])
            stages = StageRun.objects.bulk_create([copy_row(stage, run=r) for r in runs])
            steps = StepRun.objects.bulk_create(
                [copy_row(step, run=r, stage_run=s) for r, s in zip(runs, stages, strict=True)]
            )
            rows = []
            for i, (r, s) in enumerate(zip(runs, steps, strict=True)):
                k = start + i
                is_due = k < due
                due_at = now - dt.timedelta(minutes=1) if is_due else now + dt.timedelta(days=7)
                rows.append(
                    copy_row(
                        item,
                        run=r,
                        step_run=s,
                        due_at=due_at,
                        next_rule_at=due_at - dt.timedelta(hours=4),
                    )
                )
            WorkItem.objects.bulk_create(rows)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"created {items} open items with rules ({due} due) in {time.perf_counter() - t0:.1f} s")


def _measure(rounds: int) -> None:
    import logging

    from django.db import connection

    from config.celery import app

    # As in production: the tick writes outbox rows and queues their delivery; workers deliver.
    app.conf.task_always_eager = False
    logging.disable(logging.INFO)
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from workitems.models import FiredRule, WorkItem
    from workitems.sla import sla_tick

    open_items = WorkItem.objects.filter(status="assigned", next_rule_at__isnull=False).count()
    for label in ("nothing due (idle)", "the due batch"):
        now = timezone.now() - dt.timedelta(hours=6) if label.startswith("nothing") else timezone.now()
        times, counts, fired = [], [], 0
        for _ in range(rounds if label.startswith("nothing") else 1):
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                report = sla_tick(now=now)
                times.append(time.perf_counter() - t0)
            counts.append(len(ctx.captured_queries))
            fired += report.fired
        per = f", {counts[-1] / max(fired, 1):.1f} statements per firing" if fired else ""
        print(
            f"{label}: {open_items} open items with rules; tick {min(times) * 1000:.1f} ms "
            f"(median {sorted(times)[len(times) // 2] * 1000:.1f} ms), {counts[-1]} statements, "
            f"{fired} firings{per}"
        )
    print(f"FiredRule rows: {FiredRule.objects.count()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    create_database(DB_URL)
    django_setup(DB_URL, eager=True)
    _setup(args.items, args.due)
    _measure(args.rounds)


if __name__ == "__main__":
    main()
