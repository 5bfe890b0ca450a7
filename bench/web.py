"""W2 through the web stack: gunicorn (4 sync workers), 50 concurrent clients finishing work
items in the Work Guide, and the Python CPU each page costs.

    .venv/bin/python bench/web.py                       # 50 clients, 60 s
    .venv/bin/python bench/web.py --clients 50 --seconds 60 --workers 4

It drops and recreates its own database (`flow_web`, `--database-url`), migrates it, creates
50 end users (one record each, `--items` open work items each, launched with launch_many) and
an admin, starts gunicorn with production settings (bench/load/run.py's `server_env`: DEBUG
off, persistent connections, a real secret key), and then:

1. **Throughput**: one thread per client (requests, its own session), logged in; each loops
   until the window closes: GET My Work, GET the Work Guide of its next item (the record page
   with `?item=`), POST Finish with the form as parsed from the page (the CSRF token included),
   GET the page it is sent to, which must say "Done:". Completions are counted from the
   database (items completed in the window); any other status, a page without its form or a
   Finish without "Done" is a failure.
2. **CPU per page**: one client, warm server; for each page (Work Guide, My Work, Finish POST,
   runs page as the admin, run detail) the CPU seconds of the gunicorn workers (/proc) over N
   requests of that page alone, divided by N.

Everything it writes is under var/web/ (gunicorn's log, the report). The Viewflow peer harness
has no HTTP views (its URL conf is empty), so these figures are this project's alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import run as load  # noqa: E402  (the same servers, settings and /proc readers)
from bench.load.pages import form_posting_to, parse, path_of, screen_submission  # noqa: E402

VAR = ROOT / "var" / "web"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/flow_web"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/13"
PASSWORD = "web-bench-password"
ORCHESTRATION = "web_w2"


def seed(*, clients: int, items: int) -> dict[str, Any]:
    """Users, their records and open items; an admin for the runs pages."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from orchestration.services import definitions_import, launch_many
    from tests.factories import case_type, make_case, orchestration, screen_flow

    User = get_user_model()
    hashed = make_password(PASSWORD)
    admin = User.objects.create(username="web-admin", password=hashed, is_staff=True, is_superuser=True)
    case_type()
    definitions_import(
        items=[
            ("web/flow.yaml", screen_flow("web_review")),
            (
                "web/orch.yaml",
                orchestration(
                    ORCHESTRATION,
                    start={
                        "type": "autolaunched",
                        "record_type": "case",
                        "inputs": [{"name": "assignee", "type": "text", "required": True}],
                    },
                    stages=[
                        {
                            "key": "review",
                            "steps": [
                                {
                                    "key": "review",
                                    "kind": "interactive",
                                    "flow": "web_review",
                                    "assignee": {"expression": "inputs.assignee"},
                                    "email": {"enabled": False},
                                }
                            ],
                        }
                    ],
                ),
            ),
        ]
    )
    people = []
    for n in range(1, clients + 1):
        user = User.objects.create(username=f"web{n:02d}", password=hashed)
        record = make_case(f"Web case {n}", owner=user)
        launch_many(
            orchestration=ORCHESTRATION,
            records=[record] * items,
            inputs={"assignee": user.username},
            actor=None,
        )
        people.append({"username": user.username, "record": f"/records/case/{record.pk}/"})
    return {"people": people, "admin": admin.username}


class Client:
    """One person in a browser without JavaScript: a session, plain links and form posts."""

    def __init__(self, base: str, username: str) -> None:
        import requests

        self.base, self.username = base, username
        self.http = requests.Session()
        self.timings: dict[str, list[float]] = {}
        self.failures: list[str] = []

    def request(self, name: str, method: str, path: str, **kwargs: Any) -> Any:
        started = time.monotonic()
        response = self.http.request(method, self.base + path, allow_redirects=False, timeout=120, **kwargs)
        self.timings.setdefault(name, []).append((time.monotonic() - started) * 1000)
        return response

    def log_in(self) -> None:
        from bench.load.pages import csrf

        page = self.http.get(self.base + "/login/", timeout=60)
        data = {"username": self.username, "password": PASSWORD, "csrfmiddlewaretoken": csrf(page.text)}
        r = self.http.post(self.base + "/login/", data=data, allow_redirects=False, timeout=60)
        if r.status_code != 302:
            raise SystemExit(f"login as {self.username}: {r.status_code}")

    def finish_one(self, item: int, record: str) -> bool:
        r = self.request("GET My Work", "GET", "/my-work/")
        if r.status_code != 200 or "My Work" not in r.text:
            self.failures.append(f"My Work: {r.status_code}")
            return False
        r = self.request("GET Work Guide (record page, ?item=)", "GET", f"{record}?item={item}")
        form = form_posting_to(parse(r.text), f"/work-items/{item}/screen") if r.status_code == 200 else None
        if form is None:
            self.failures.append(f"Work Guide {item}: {r.status_code}, no form")
            return False
        data = screen_submission(form, username=self.username)
        r = self.request("POST Work Guide: Finish", "POST", path_of(form["action"]), data=data)
        location = r.headers.get("Location", "")
        if r.status_code != 302 or "check=1" in location:
            self.failures.append(f"Finish {item}: {r.status_code} {location}")
            return False
        r = self.request("GET Record page (after Finish)", "GET", path_of(location))
        done = parse(r.text) if r.status_code == 200 else None
        if done is None or not any(level == "success" and t.startswith("Done:") for level, t in done.alerts):
            self.failures.append(f"after Finish {item}: {r.status_code}, no Done message")
            return False
        return True


def open_items(username: str) -> list[int]:
    from workitems.models import WorkItem

    return list(
        WorkItem.objects.filter(assignee_user__username=username, status="assigned")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def throughput(base: str, plan: dict[str, Any], seconds: float) -> dict[str, Any]:
    people = plan["people"]
    clients = [Client(base, p["username"]) for p in people]
    queues = {p["username"]: open_items(p["username"]) for p in people}
    for c in clients:
        c.log_in()
    barrier = threading.Barrier(len(clients) + 1)
    deadline = [0.0]
    done = [0] * len(clients)

    def work(i: int) -> None:
        c, record = clients[i], people[i]["record"]
        barrier.wait()
        while time.monotonic() < deadline[0] and queues[c.username]:
            if c.finish_one(queues[c.username].pop(0), record):
                done[i] += 1

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    start_wall = datetime.now(UTC)
    deadline[0] = time.monotonic() + seconds
    barrier.wait()
    started = time.monotonic()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    end_wall = datetime.now(UTC)
    from workitems.models import WorkItem

    completed = WorkItem.objects.filter(
        status="completed", completed_at__gte=start_wall, completed_at__lt=end_wall
    ).count()
    timings: dict[str, list[float]] = {}
    for c in clients:
        for name, values in c.timings.items():
            timings.setdefault(name, []).extend(values)
    return {
        "seconds": elapsed,
        "completed_db": completed,
        "completed_clients": sum(done),
        "failures": [f for c in clients for f in c.failures],
        "timings": timings,
        "ran_dry": sum(1 for q in queues.values() if not q),
    }


def cpu_per_page(base: str, plan: dict[str, Any], workers: list[int], n: int) -> dict[str, Any]:
    """Gunicorn workers' CPU over n requests of one page at a time, one client, warm."""
    person = plan["people"][0]
    user = Client(base, person["username"])
    user.log_in()
    admin = Client(base, plan["admin"])
    admin.log_in()
    from orchestration.models import Run

    run_ids = list(Run.objects.order_by("-pk").values_list("pk", flat=True)[:n])
    items = open_items(person["username"])
    pages: dict[str, Any] = {
        "My Work": lambda i: user.request("x", "GET", "/my-work/"),
        "Work Guide (record page, ?item=)": lambda i: user.request(
            "x", "GET", f"{person['record']}?item={items[i]}"
        ),
        "Runs page (admin)": lambda i: admin.request("x", "GET", "/monitor/runs/"),
        "Run detail (admin)": lambda i: admin.request("x", "GET", f"/monitor/runs/{run_ids[i]}/"),
    }
    out: dict[str, Any] = {}
    for name, fetch in pages.items():
        for i in range(5):  # warm
            assert fetch(i).status_code == 200, name
        before = load.cpu_seconds(workers)
        for i in range(n):
            fetch(i)
        out[name] = (load.cpu_seconds(workers) - before) / n * 1000
    # Finish: the POST alone (its Work Guide page fetched before the CPU count starts).
    forms = []
    for item in items[10 : 10 + n]:
        page = parse(user.request("x", "GET", f"{person['record']}?item={item}").text)
        forms.append(form_posting_to(page, f"/work-items/{item}/screen"))
    before = load.cpu_seconds(workers)
    for form in forms:
        assert form is not None
        r = user.request("x", "POST", path_of(form["action"]), data=screen_submission(form, username="web"))
        assert r.status_code == 302, r.status_code
    out["Work Guide: Finish (POST)"] = (load.cpu_seconds(workers) - before) / len(forms) * 1000
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--items", type=int, default=60, help="open items per client before the start")
    parser.add_argument("--cpu-requests", type=int, default=40, help="requests per page for CPU per page")
    parser.add_argument("--database-url", default=os.environ.get("WEB_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--broker-url", default=os.environ.get("WEB_BROKER_URL", DEFAULT_BROKER_URL))
    args = parser.parse_args(argv)
    command = "bench/web.py " + " ".join(argv if argv is not None else sys.argv[1:])

    VAR.mkdir(parents=True, exist_ok=True)
    load.VAR = VAR  # the shared helpers write their logs and key here
    port = load.free_port()
    env = load.server_env(database_url=args.database_url, broker_url=args.broker_url, port=port)
    from bench.workloads import database_create

    print(f"database {args.database_url}: recreating and migrating …", flush=True)
    database_create(args.database_url, drop=True)
    load.django_setup(env)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    print(f"creating {args.clients} people with {args.items} open items each …", flush=True)
    plan = seed(clients=args.clients, items=args.items + args.cpu_requests + 10)
    servers = load.Servers()
    try:
        servers.start(
            "gunicorn",
            [str(load.PROJECT_BIN / "gunicorn"), "config.wsgi", "--workers", str(args.workers),
             "--bind", f"127.0.0.1:{port}", "--timeout", "120"],
            env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        load.wait_for(lambda: load.http_ok(base + "/healthz"), "gunicorn")
        workers = load.children(servers.procs["gunicorn"].pid)
        rss_before = [load.rss_mib(p) for p in workers]
        print("CPU per page (one client) …", flush=True)
        cpu = cpu_per_page(base, plan, workers, args.cpu_requests)
        load_before = load.loadavg()
        sampler = load.LoadSampler()
        sampler.start()
        print(f"{args.clients} clients for {args.seconds:.0f} s …", flush=True)
        cpu_before = load.cpu_seconds(workers)
        result = throughput(base, plan, args.seconds)
        web_cpu = load.cpu_seconds(workers) - cpu_before
        sampler.done.set()
        rss_after = [load.rss_mib(p) for p in workers]
    finally:
        servers.stop()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    samples = sampler.samples or [load.loadavg()[0]]
    requests_total = sum(len(v) for v in result["timings"].values())
    lines = [
        f"`{command}`, {when}; load average (1 min) before {load_before[0]:.2f}, during "
        f"{min(samples):.2f} to {max(samples):.2f}; {load.machine()}",
        "",
        f"**{result['completed_db']} work items completed in {result['seconds']:.1f} s = "
        f"{result['completed_db'] / result['seconds']:.1f} completions/s** by {args.clients} clients on "
        f"{args.workers} gunicorn workers; {len(result['failures'])} failures in {requests_total} requests"
        f" (clients counted {result['completed_clients']} completions;"
        f" {result['ran_dry']} ran out of items).",
        "",
        "| request | count | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, values in result["timings"].items():
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(values):.0f} | {percentile(values, 95):.0f} | "
            f"{percentile(values, 99):.0f} | {max(values):.0f} |"
        )
    lines += [
        "",
        f"Web workers' CPU in the window: {web_cpu:.1f} s ="
        f" {web_cpu / max(result['completed_db'], 1) * 1000:.0f} ms"
        f" per completion (its four requests); RSS of the {args.workers} workers "
        f"{sum(rss_before):.0f} → {sum(rss_after):.0f} MiB.",
        "",
        "| page (one client, warm, gunicorn workers' CPU) | CPU ms per request |",
        "|---|---:|",
        *(f"| {name} | {ms:.1f} |" for name, ms in cpu.items()),
    ]
    if result["failures"]:
        lines += ["", "Failures (first 10):", *(f"- {f}" for f in result["failures"][:10])]
    text = "\n".join(lines)
    (VAR / "report.md").write_text(text + "\n")
    print("\n" + text)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
