"""Moving running runs to a new version (orchestration/services/migration.py): how long the
preview and the apply take for many open runs, runs per second, and SQL statements per batch.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/flow_migration_bench
    .venv/bin/python bench/migration.py --runs 10000

Creates (or empties) the database in $DATABASE_URL (required), migrates it, imports version 1 of
an orchestration (one stage, one interactive step `check`), launches one run through the engine
and copies its run, stage run, step run and work item `--runs` times (bulk inserts), imports
version 2 with the step renamed to `verify`, ANALYZEs, then previews and applies the migration
(mapping check → verify) through the service, in the service's batches (migration.BATCH runs):
the preview reads them in those batches; the apply is called once per batch with its run ids,
each run in a transaction of its own under its run lock, as the service does. Results go to
stdout; bench/README.md records them."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import copy_row, create_database, django_setup  # noqa: E402

NAME = "migration_bench"


def definition(step: str) -> dict[str, Any]:
    return {
        "kind": "orchestration",
        "api_name": NAME,
        "start": {"type": "autolaunched"},
        "variables": [{"name": "amount", "type": "number", "default": "1"}],
        "stages": [
            {
                "key": "review",
                "steps": [
                    {
                        "key": step,
                        "kind": "interactive",
                        "flow": "migration_form",
                        "assignee": {"user": "alice"},
                        "email": {"enabled": False},
                    }
                ],
            }
        ],
    }


FORM = {
    "kind": "screen_flow",
    "api_name": "migration_form",
    "screens": [{"key": "s", "fields": [{"name": "ok", "type": "boolean"}]}],
}


def setup(runs: int) -> None:
    """Version 1 with `runs` open runs in its stage (each with its work item), and version 2 with
    the step renamed. Needs a migrated database."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from orchestration.models import Run, StageRun, StepRun
    from orchestration.services import definitions_import, run_launch
    from workitems.models import WorkItem

    get_user_model().objects.get_or_create(username="alice", defaults={"email": "alice@example.com"})
    definitions_import(items=[("form.yaml", FORM), ("v1.yaml", definition("check"))])
    template = run_launch(orchestration=NAME)
    stage = StageRun.objects.get(run=template)
    step = StepRun.objects.get(run=template)
    item = WorkItem.objects.get(run=template)
    t0 = time.perf_counter()
    batch = 5000
    with transaction.atomic():
        for start in range(0, runs - 1, batch):
            n = min(batch, runs - 1 - start)
            copies = Run.objects.bulk_create([copy_row(template) for _ in range(n)])
            stages = StageRun.objects.bulk_create([copy_row(stage, run=r) for r in copies])
            steps = StepRun.objects.bulk_create(
                [copy_row(step, run=r, stage_run=s) for r, s in zip(copies, stages, strict=True)]
            )
            WorkItem.objects.bulk_create(
                [copy_row(item, run=r, step_run=s) for r, s in zip(copies, steps, strict=True)]
            )
    definitions_import(items=[("v2.yaml", definition("verify"))])
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    print(f"created {runs} open runs on v1 in {time.perf_counter() - t0:.1f} s")


def measure(*, verbose: bool = False) -> dict[str, Any]:
    """Preview, then apply batch by batch; prints the figures (with `verbose`, the SQL of one
    run's move) and returns them."""
    import logging

    logging.disable(logging.INFO)  # the service logs a line per apply call
    try:
        return _measure(verbose)
    finally:
        logging.disable(logging.NOTSET)  # as it was (the smoke test runs in the test process)


def _measure(verbose: bool) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orchestration.models import OrchestrationVersion, Run, RunEvent
    from orchestration.services import migration

    source, target = (
        OrchestrationVersion.objects.get(orchestration__api_name=NAME, number=n) for n in (1, 2)
    )
    mapping = migration.Mapping(steps={"check": "verify"})
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as ctx:
        t0 = time.perf_counter()
        preview = migration.migration_preview(source=source, target=target, mapping=mapping)
        preview_s = time.perf_counter() - t0
    runs = len(preview.movable) + len(preview.refused)
    batches = max(1, -(-runs // migration.BATCH))
    preview_statements = len(ctx.captured_queries)
    print(
        f"preview: {runs} open runs, {len(preview.movable)} can move, {len(preview.refused)} refused; "
        f"{preview_s:.2f} s ({runs / preview_s:,.0f} runs/s); {preview_statements} statements, "
        f"{preview_statements / batches:.1f} per batch of {migration.BATCH}"
    )

    ids = preview.movable
    per_batch, migrated, refused = [], 0, 0
    t0 = time.perf_counter()
    for start in range(0, len(ids), migration.BATCH):
        chunk = ids[start : start + migration.BATCH]
        connection.queries_log.clear()  # it keeps 9,000: a full log would count nothing
        with CaptureQueriesContext(connection) as ctx:
            outcome = migration.migration_apply(source=source, target=target, mapping=mapping, run_ids=chunk)
        per_batch.append(len(ctx.captured_queries))
        if verbose and start == 0:
            per_run = len(ctx.captured_queries) // len(chunk)
            print(f"the statements of one run ({per_run}):")
            for q in ctx.captured_queries[:per_run]:
                print("   ", q["sql"][:160])
        migrated += len(outcome.migrated)
        refused += len(outcome.refused)
    apply_s = time.perf_counter() - t0
    statements = max(per_batch, default=0)  # a full batch (the last one may be smaller)
    print(
        f"apply: {migrated} migrated, {refused} refused; {apply_s:.2f} s "
        f"({migrated / apply_s:,.0f} runs/s); {statements} statements per batch of {migration.BATCH} "
        f"({statements / migration.BATCH:.1f} per run)"
    )
    on_target = Run.objects.filter(version=target).count()
    events = RunEvent.objects.filter(name="orchestration.run.migrated").count()
    print(f"check: {on_target} runs on v2, {events} orchestration.run.migrated events")
    return {
        "runs": runs,
        "movable": len(preview.movable),
        "preview_s": preview_s,
        "preview_statements": preview_statements,
        "preview_batches": batches,
        "migrated": migrated,
        "refused": refused,
        "apply_s": apply_s,
        "apply_statements_per_batch": per_batch,
        "on_target": on_target,
        "events": events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000, help="open runs on version 1 (default 10,000)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the SQL of one run's move")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        parser.error("set DATABASE_URL to a PostgreSQL database the benchmark may drop and create")
    create_database(url)
    django_setup(url, eager=True)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    setup(args.runs)
    measure(verbose=args.verbose)


if __name__ == "__main__":
    main()
