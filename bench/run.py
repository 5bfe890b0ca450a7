#!/usr/bin/env python
"""Engine benchmarks on PostgreSQL (see bench/README.md for what is measured and the figures).

    .venv/bin/python bench/run.py                       # = all: the quick set, a few minutes
    .venv/bin/python bench/run.py all --full            # the issue's sizes (2,000 / 10,000 runs)
    .venv/bin/python bench/run.py counts                # SQL statements per run and transition
    .venv/bin/python bench/run.py w1-inprocess --processes 2 --runs 1000
    .venv/bin/python bench/run.py w2-inprocess --processes 2 --runs 2000
    .venv/bin/python bench/run.py w1-celery --runs 2000
    .venv/bin/python bench/run.py worker-memory --runs 10000 --every 1000
    .venv/bin/python bench/run.py pgbench --seconds 15
    .venv/bin/python bench/run.py setup --recreate      # drop and rebuild the benchmark database
    .venv/bin/python bench/run.py peer                  # = make bench-peer: side by side with Viewflow 2.4

The database (default postgres://postgres@127.0.0.1:5432/flow_bench, or BENCH_DATABASE_URL /
--database-url) is created, migrated and loaded with the W1/W2 definitions on first use. The
Celery figures use Redis database 5 (BENCH_BROKER_URL / --broker-url).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workloads

TARGETS = {
    "w1_inprocess_2": 80.0,
    "w2_inprocess_2": 150.0,
    "w1_celery": 20.0,
    "w1_statements": 40,
    "w2_statements": 25,
}
QUICK = {"w1_runs": 200, "w2_runs": 400, "celery_runs": 300, "memory_runs": 800, "memory_every": 200}
FULL = {"w1_runs": 2000, "w2_runs": 4000, "celery_runs": 2000, "memory_runs": 10000, "memory_every": 1000}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@contextmanager
def eager() -> Any:
    """Tasks enqueued on commit run right there, in this process (as in the test suite)."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def print_environment(args: argparse.Namespace) -> None:
    import celery
    import django

    config = workloads.configuration()
    print(f"date        {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine     {platform.machine()}, {os.cpu_count()} CPUs, load average {loadavg()}")
    print(
        f"versions    Python {config['python']} (PGO {'on' if config['python_pgo'] else 'off'}), "
        f"PostgreSQL {config['postgresql']}, Django {django.get_version()}, Celery {celery.__version__}, "
        f"psycopg {config['psycopg']}"
    )
    print(f"database    {args.database_url}")
    print(f"settings    {settings_line(config)}")
    print(f"calibration {calibration_line()}")
    print()


def settings_line(config: dict[str, Any] | None = None) -> str:
    c = config or workloads.configuration()
    return (
        f"DEBUG={c['debug']}, server_side_binding={c['server_side_binding']}, "
        f"prepare_threshold={c['prepare_threshold']}, CONN_MAX_AGE={c['conn_max_age']}, "
        f"plan_cache_mode={c['plan_cache_mode']}, synchronous_commit={c['synchronous_commit']}"
    )


def calibration_line() -> str:
    """How fast the machine is right now (see workloads.calibrate): print it beside every figure."""
    c = workloads.calibrate()
    return f"Python loop {c['python_loop_ms']:.1f} ms, SELECT 1 round trip {c['select1_us']:.0f} µs"


# --- the measurements -------------------------------------------------------------------------


def cmd_counts(args: argparse.Namespace) -> dict[str, Any]:
    fx = workloads.fixture()
    with eager():
        w1 = workloads.count_w1(fx)
        w1i = workloads.count_w1_inline(fx)
        w2 = workloads.count_w2(fx)
    print("SQL statements (in-process; background steps run eagerly, each charged to its own task)")
    for name, counter in (("W1", w1), ("W1 inline", w1i), ("W2", w2)):
        phases = ", ".join(f"{p.name} {len(p.statements)}" for p in counter.phases)
        print(f"  {name} run: {counter.total():3d}  ({phases}; + {counter.transaction_control} BEGIN/COMMIT)")
        if args.verbose:
            for p in counter.phases:
                print(f"    -- {p.name}")
                for sql in p.statements:
                    print(f"       {sql[:160]}")
    print()
    return {"w1_statements": w1.total(), "w1_inline_statements": w1i.total(), "w2_statements": w2.total()}


def cmd_inprocess(args: argparse.Namespace, workload: str) -> dict[str, Any]:
    result = workloads.inprocess_throughput(workload, processes=args.processes, runs=args.runs)
    cpu = result["cpu_ms_app"] + result["cpu_ms_db"]
    print(
        f"{workload.upper()} in-process, {args.processes} process(es): {result['runs_per_s']:7.1f} runs/s "
        f"({result['runs']} runs in {result['seconds']:.1f} s; load average {loadavg()})\n"
        f"    CPU per run: {result['cpu_ms_app']:.1f} ms Python + {result['cpu_ms_db']:.1f} ms PostgreSQL "
        f"= {cpu:.1f} ms, so at most {2000 / cpu:.0f} runs/s on 2 otherwise idle cores\n"
        f"    machine now: {calibration_line()}"
    )
    return {
        f"{workload}_inprocess_{args.processes}": result["runs_per_s"],
        f"{workload}_cpu_ms": cpu,
    }


def cmd_w1_celery(args: argparse.Namespace) -> dict[str, Any]:
    from bench import celery_bench

    result = celery_bench.w1_celery(
        database_url=args.database_url, broker_url=args.broker_url, runs=args.runs
    )
    print(
        f"W1 through Celery (prefork worker, 2 processes): {result['runs_per_s']:7.1f} runs/s "
        f"({result['runs']} runs in {result['seconds']:.1f} s from the first launch to the last "
        f"completion; launching alone {result['launch_runs_per_s']:.0f} runs/s; load average {loadavg()})"
    )
    cpu = result["cpu_ms"]
    total = sum(cpu.values())
    parts = " + ".join(f"{v:.1f} ms {k}" for k, v in cpu.items())
    print(f"    CPU per run: {parts} = {total:.1f} ms, so at most {2000 / total:.0f} runs/s on 2 idle cores")
    print(f"    machine now: {calibration_line()}")
    return {"w1_celery": result["runs_per_s"]}


def cmd_worker_memory(args: argparse.Namespace) -> dict[str, Any]:
    from bench import celery_bench

    print(f"Celery worker memory over {args.runs} W1 runs (sampled every {args.every}):")
    result = celery_bench.worker_memory(
        database_url=args.database_url, broker_url=args.broker_url, runs=args.runs, every=args.every
    )
    print(
        f"  growth after the first batch: {result['growth_kib'] / 1024:+.1f} MiB "
        f"({result['growth_pct']:+.1f} %); {result['runs_per_s']:.1f} runs/s in batches"
    )
    print()
    return {"memory_growth_pct": result["growth_pct"], "memory_growth_mib": result["growth_kib"] / 1024}


def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    """cProfile of warm runs in this process: where the Python time of a run goes."""
    import cProfile
    import pstats

    fx = workloads.fixture()
    run = workloads.WORKLOADS[args.workload]
    with eager():
        for i in range(20):
            run(fx, i)
        profiler = cProfile.Profile(time.process_time)  # CPU, not time spent waiting for PostgreSQL
        started = time.process_time()
        profiler.enable()
        for i in range(args.runs):
            run(fx, i)
        profiler.disable()
        cpu = (time.process_time() - started) / args.runs * 1000
    print(f"{args.workload.upper()}: {cpu:.1f} ms of CPU per run under the profiler ({args.runs} runs)")
    stats = pstats.Stats(profiler)
    stats.sort_stats(args.sort).print_stats(args.top)
    if args.output:
        stats.dump_stats(args.output)
    return {}


def cmd_launch_many(args: argparse.Namespace) -> dict[str, Any]:
    """Launching W2 runs in bulk (launch_many, batches of --batch) against one by one (run_launch)."""
    from orchestration.services import launch_many, run_launch

    fx = workloads.fixture()
    records = [fx.record(i) for i in range(args.runs)]
    workloads.database_reset()
    started = time.monotonic()
    ids = launch_many(orchestration=workloads.W2, records=records, actor=fx.user, batch_size=args.batch)
    bulk = len(ids) / (time.monotonic() - started)
    single_runs = min(args.runs, 2000)
    workloads.database_reset()
    started = time.monotonic()
    for record in records[:single_runs]:
        run_launch(orchestration=workloads.W2, record=record, actor=fx.user)
    single = single_runs / (time.monotonic() - started)
    print(
        f"Launching W2 runs: launch_many {len(ids)} runs in batches of {args.batch}: {bulk:7.1f} runs/s; "
        f"run_launch one by one ({single_runs} runs): {single:7.1f} runs/s; {bulk / single:.1f}x "
        f"(load average {loadavg()})\n    machine now: {calibration_line()}"
    )
    workloads.database_reset()
    return {"launch_many": bulk, "run_launch": single}


def cmd_pgbench(args: argparse.Namespace) -> dict[str, Any]:
    from bench.pgbench import pgbench

    result = pgbench(database_url=args.database_url, seconds=args.seconds)
    for name, r in result.items():
        print(
            f"pgbench {name.replace('_', '-')}, 2 clients, {args.seconds} s: {r['tps']:8.0f} TPS "
            f"(latency {r['latency_ms']} ms)"
        )
    print()
    return {f"pgbench_{k}": v["tps"] for k, v in result.items()}


def cmd_all(args: argparse.Namespace) -> dict[str, Any]:
    sizes = FULL if args.full else QUICK
    results: dict[str, Any] = {}
    results |= cmd_counts(argparse.Namespace(**{**vars(args), "verbose": False}))
    for workload, runs in (("w1", sizes["w1_runs"]), ("w2", sizes["w2_runs"])):
        for processes in (1, 2):
            ns = argparse.Namespace(**{**vars(args), "processes": processes, "runs": runs})
            results |= cmd_inprocess(ns, workload)
    print()
    results |= cmd_w1_celery(argparse.Namespace(**{**vars(args), "runs": sizes["celery_runs"]}))
    print()
    results |= cmd_worker_memory(
        argparse.Namespace(**{**vars(args), "runs": sizes["memory_runs"], "every": sizes["memory_every"]})
    )
    results |= cmd_pgbench(argparse.Namespace(**{**vars(args), "seconds": args.seconds}))
    summary(results)
    return results


def cmd_peer(args: argparse.Namespace) -> dict[str, Any]:
    from bench import peer

    only = set(args.only.split(",")) if args.only else None
    measures = peer.compare(
        database_url=args.database_url,
        broker_url=args.broker_url,
        peer_dir=Path(args.peer_dir),
        reps=args.reps,
        seconds=args.seconds,
        warmup=args.warmup,
        celery_runs=args.celery_runs,
        only=only,
    )
    print()
    print(
        f"This project and Viewflow 2.4, alternating rep by rep ({time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"load average {loadavg()}):"
    )
    print()
    print(peer.table(measures))
    return {m.key: m.ratio() for m in measures}


def summary(r: dict[str, Any]) -> None:
    def row(label: str, key: str, unit: str, target: str, ok: bool | None) -> None:
        value = r.get(key)
        shown = "—" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))
        verdict = "" if ok is None or value is None else ("met" if ok else "MISSED")
        print(f"  {label:<44} {shown:>9} {unit:<8} {target:<10} {verdict}")

    def at_least(key: str) -> bool | None:
        return None if key not in r else r[key] >= TARGETS[key]

    def at_most(key: str) -> bool | None:
        return None if key not in r else r[key] <= TARGETS[key]

    print(f"Summary (load average {loadavg()})")
    row("W1 in-process, 1 process", "w1_inprocess_1", "runs/s", "", None)
    row("W1 in-process, 2 processes", "w1_inprocess_2", "runs/s", "≥ 80", at_least("w1_inprocess_2"))
    row("W2 in-process, 1 process", "w2_inprocess_1", "runs/s", "", None)
    row("W2 in-process, 2 processes", "w2_inprocess_2", "runs/s", "≥ 150", at_least("w2_inprocess_2"))
    row("W1 through Celery, 2-process worker", "w1_celery", "runs/s", "≥ 20", at_least("w1_celery"))
    row("SQL statements per W1 run", "w1_statements", "", "≤ 40", at_most("w1_statements"))
    row("SQL statements per W2 run", "w2_statements", "", "≤ 25", at_most("w2_statements"))
    row("Worker RSS growth after the first batch", "memory_growth_pct", "%", "flat", None)
    row("pgbench select-only, 2 clients", "pgbench_select_only", "TPS", "", None)
    row("pgbench tpcb-like, 2 clients", "pgbench_tpcb_like", "TPS", "", None)


# --- command line -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", workloads.DEFAULT_DATABASE_URL)
    )
    p.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL", workloads.DEFAULT_BROKER_URL))
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("setup", help="create, migrate and load the benchmark database")
    s.add_argument("--recreate", action="store_true", help="drop it first")
    s = sub.add_parser("counts", help="SQL statements per run and per transition")
    s.add_argument("-v", "--verbose", action="store_true", help="print the statements")
    for name in ("w1-inprocess", "w2-inprocess"):
        s = sub.add_parser(name, help="runs/s with background work executed in the launching process")
        s.add_argument("--processes", type=int, choices=(1, 2), default=1)
        s.add_argument("--runs", type=int, default=1000)
    s = sub.add_parser("w1-celery", help="W1 runs/s through a 2-process Celery worker")
    s.add_argument("--runs", type=int, default=2000)
    s = sub.add_parser("worker-memory", help="the worker's resident memory across many runs")
    s.add_argument("--runs", type=int, default=10000)
    s.add_argument("--every", type=int, default=1000)
    s = sub.add_parser("profile", help="cProfile of warm in-process runs (where the Python time goes)")
    s.add_argument("workload", choices=sorted(workloads.WORKLOADS))
    s.add_argument("--runs", type=int, default=300)
    s.add_argument("--sort", default="tottime", help="pstats sort key: tottime, cumulative, ...")
    s.add_argument("--top", type=int, default=40)
    s.add_argument("--output", help="also write the raw profile here (for snakeviz, pstats)")
    s = sub.add_parser("launch-many", help="bulk launching (launch_many) against run_launch one by one")
    s.add_argument("--runs", type=int, default=10000)
    s.add_argument("--batch", type=int, default=500)
    s = sub.add_parser("pgbench", help="PostgreSQL's own ceiling (pgbench TPS)")
    s.add_argument("--seconds", type=int, default=15)
    s = sub.add_parser("all", help="everything, quick sizes unless --full")
    s.add_argument("--full", action="store_true", help="the issue's sizes: 2,000 and 10,000 runs")
    s.add_argument("--seconds", type=int, default=15, help="pgbench duration")
    s = sub.add_parser("peer", help="this engine and Viewflow 2.4 alternately, rep by rep, with ratios")
    s.add_argument(
        "--peer-dir",
        default=os.environ.get(
            "VIEWFLOW_PEER_DIR", str(Path(workloads.ROOT).parent / "shared/peers/viewflow")
        ),
        help="the Viewflow peer harness (its bench.py and requirements.txt)",
    )
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--seconds", type=float, default=10, help="measured window of each in-process figure")
    s.add_argument("--warmup", type=int, default=20, help="untimed runs per process before the window")
    s.add_argument("--celery-runs", type=int, default=2000, help="runs through Celery per rep (0: skip)")
    s.add_argument("--only", default="", help="comma list of w1_1,w1_2,w1i_1,w1i_2,w2_1,w2_2,w1_celery")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["all"])
    workloads.configure(database_url=args.database_url, broker_url=args.broker_url, eager=False)
    # Child processes (spawned) read these from the environment.
    os.environ["DATABASE_URL"], os.environ["CELERY_BROKER_URL"] = args.database_url, args.broker_url
    workloads.database_prepare(args.database_url, drop=getattr(args, "recreate", False))
    if args.command == "setup":
        print(f"ready: {args.database_url}")
        return 0
    print_environment(args)
    commands = {
        "counts": cmd_counts,
        "w1-inprocess": lambda a: cmd_inprocess(a, "w1"),
        "w2-inprocess": lambda a: cmd_inprocess(a, "w2"),
        "w1-celery": cmd_w1_celery,
        "worker-memory": cmd_worker_memory,
        "profile": cmd_profile,
        "launch-many": cmd_launch_many,
        "pgbench": cmd_pgbench,
        "all": cmd_all,
        "peer": cmd_peer,
    }
    commands[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
