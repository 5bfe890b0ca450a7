"""Time the Analytics page (/monitor/analytics/) on the monitoring bench data set.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/flow_analytics_bench \
        .venv/bin/python bench/analytics.py --generate --requests 10

The database is one `bench/monitor.py generate` filled (1,000,000 runs over about a year ending
when it ran, 3,000,000 work items); `--generate` drops and fills it first, through that script.
Requests go through Django's test client in this process with DEBUG off, logged in as the
bench's superuser:
the time is the view's (queries, rendering, session and permission checks), without gunicorn and
the network, one request at a time.

The page reads the rollups (orchestration/rollup.py): after `--generate` they are built whole
(`analytics_refresh --rebuild`, timed). `--tick N` then times the beat's refresh when N days of
runs changed (an event appended to one run of each of the N newest days), with its statements."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flow_monitor_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-analytics-not-secret")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")


def generate(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import monitor  # type: ignore[import-not-found]

    monitor.DB_URL = os.environ["DATABASE_URL"]
    monitor.generate(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests per URL")
    parser.add_argument("--generate", action="store_true", help="fill the database first (drops it)")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=3_000_000)
    parser.add_argument("--tick", type=int, default=0, metavar="N", help="time a refresh of N changed days")
    args = parser.parse_args()
    if args.generate:
        generate(args)

    import django

    django.setup()
    from orchestration.rollup import refresh

    if args.generate:
        t0 = time.perf_counter()
        report = refresh(rebuild=True)
        print(
            f"rollups built: {report.rebuilt} days and {report.months} months of runs, {report.rows} rows, "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    if args.tick:
        tick(args.tick)
    if not args.requests:
        return
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from orchestration.models import Orchestration

    client = Client()
    client.force_login(get_user_model().objects.get(username="benchadmin"))
    today = timezone.localdate()
    orch = Orchestration.objects.order_by("api_name").values_list("api_name", flat=True).first()

    def since(days: int) -> str:
        return f"started_from={(today - dt.timedelta(days=days - 1)).isoformat()}&started_to={today}"

    urls = [
        ("all, last 30 days (default)", "/monitor/analytics/"),
        (f"{orch}, last 30 days", f"/monitor/analytics/{orch}/"),
        (f"{orch} v1, last 30 days", f"/monitor/analytics/{orch}/?version=1"),
        ("all, last 90 days", f"/monitor/analytics/?{since(90)}"),
        ("all, 366 days (every run)", f"/monitor/analytics/?{since(366)}"),
        ("CSV step durations, 30 days", "/monitor/analytics/?format=csv&section=step_durations"),
    ]
    print("| page | requests | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for label, url in urls:
        for _ in range(2):  # warm-up: caches, the planner's statistics in memory
            assert client.get(url).status_code == 200, url
        times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, url
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(
            f"| {label} | {len(times)} | {statistics.median(times):.0f} | {p95:.0f} | {times[-1]:.0f} |",
            flush=True,
        )


def tick(days: int) -> None:
    """A refresh after an event on one run of each of the `days` newest days of runs, three times:
    its time and statements (the scan, then per day rebuilt, then the months)."""
    from django.db import connection
    from django.db.models.functions import TruncDate
    from django.test.utils import CaptureQueriesContext

    from orchestration.models import Run
    from orchestration.rollup import partition_runs, refresh
    from orchestration.services.common import run_event_add

    refresh()  # up to date first
    newest = (
        Run.objects.annotate(day=TruncDate("started_at"))
        .values("day", "orchestration_id")
        .order_by("-day")
        .distinct()[:days]
    )
    runs = [partition_runs(d["day"], d["orchestration_id"]).first() for d in newest]
    for _ in range(3):
        for run in runs:
            assert run is not None
            run_event_add(
                run=run, name="orchestration.run.variable_changed", actor_id=None, payload={"bench": True}
            )
        with CaptureQueriesContext(connection) as q:
            t0 = time.perf_counter()
            report = refresh()
            took = (time.perf_counter() - t0) * 1000
        print(
            f"refresh after {len(runs)} changed day(s): {report.marked} marked, {report.rebuilt} days and "
            f"{report.months} months rebuilt, {took:.0f} ms, {len(q)} statements",
            flush=True,
        )


if __name__ == "__main__":
    main()
