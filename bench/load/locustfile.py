"""The people of the load benchmark, as a browser without JavaScript drives the pages (plain
links and form posts, post/redirect/get): run by bench/load/run.py in its own virtualenv, with
LOAD_PLAN naming the JSON file of people, records and the API token it created.

- EndUser (the rest of the users): logs in, opens My Work, picks one of their items (sometimes
  claims a team or queue item first), opens its Work Guide (the record page with `?item=`),
  fills the one-screen form as parsed from the page and presses Finish, and checks the record
  page says it is done.
- Manager (3): opens Work Items, filters on a colleague who is away, and reassigns one or two of
  their items to an end user who is working.
- Admin (2): opens the runs page (sometimes filtered) and a run's detail page.
- Feeder (1): launches runs through the JSON API with a token, so that nobody runs dry: every end
  user keeps a few items of their own, the teams and the queue keep a few to claim, and the
  people who are away keep getting work for the managers to move.

Failures are what a person would call broken: an unexpected status, a page without what it
must show, a form shown back with an error. Races that the product handles as designed
(someone else claimed the item first) are counted as named outcomes (type OUTCOME in the
statistics), not failures; each person works on their own items so that they stay rare.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.pool
from locust import HttpUser, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.load.pages import (
    Forms,
    csrf,
    form_data,
    form_posting_to,
    held_by_other,
    parse,
    path_of,
    reassign_boxes,
    screen_submission,
)

PLAN: dict[str, Any] = json.loads(open(os.environ["LOAD_PLAN"]).read())  # noqa: SIM115

_lock = threading.Lock()
_end_users = itertools.cycle(PLAN["end_users"])
_managers = itertools.cycle(range(len(PLAN["managers"])))
_admins = itertools.cycle(PLAN["admins"])
# What the feeder knows of each working end user's own open items: set from My Work, less one per
# Finish, plus one per launch or reassignment to them. Locust runs in one process: plain globals.
OWN_ITEMS: dict[str, int] = {u["username"]: PLAN["prelaunched"] for u in PLAN["end_users"]}
SHARED_SEEN: dict[str, int] = {}  # claimable items last seen in My Work, per team or queue member
TEAM_OF: dict[str, str] = {m: team for team, members in PLAN["teams"].items() for m in members}

# The window: it opens when every person has logged in (the statistics are reset then: a login
# is a slow password hash on purpose, and 50 at once are a start-up burst, reported apart) and
# closes LOAD_SECONDS later. run.py reads both times from LOAD_WINDOW.
LOGINS: list[int] = []
PEOPLE = len(PLAN["end_users"]) + len(PLAN["managers"]) + len(PLAN["admins"])
WINDOW: dict[str, float] = {}
ENVIRONMENT: Any = None

OWN_LOW, OWN_TOP_UP = 4, 8
SHARED_LOW = 4


def outcome(name: str) -> None:
    """A named outcome: counted in the statistics (type OUTCOME), never a failure."""
    events.request.fire(
        request_type="OUTCOME", name=name, response_time=0, response_length=0, exception=None, context={}
    )


@events.init.add_listener
def _keep_environment(environment: Any, **_: Any) -> None:
    global ENVIRONMENT
    ENVIRONMENT = environment


def _window_write() -> None:
    with open(os.environ["LOAD_WINDOW"], "w") as fh:
        json.dump({**WINDOW, "logins": LOGINS}, fh)


def _logged_in(ms: int) -> None:
    """Open the window once everybody is in: reset the statistics, and stop LOAD_SECONDS later."""
    LOGINS.append(ms)
    if len(LOGINS) == PEOPLE and not WINDOW:
        ENVIRONMENT.runner.stats.reset_all()
        WINDOW["start"] = time.time()
        _window_write()
        gevent.spawn_later(float(os.environ["LOAD_SECONDS"]), _window_close)


def _window_close() -> None:
    WINDOW["end"] = time.time()
    _window_write()
    ENVIRONMENT.runner.quit()


def check_failed(name: str, message: str) -> None:
    """A page answered 200 but does not show what it must: a failure (type CHECK)."""
    events.request.fire(
        request_type="CHECK",
        name=name,
        response_time=0,
        response_length=0,
        exception=AssertionError(message),
        context={},
    )


# --- the people ------------------------------------------------------------------------------------


class Person(HttpUser):
    abstract = True
    username = ""

    def log_in(self, next_url: str) -> None:
        with self.client.get("/login/", name="Log in (page)", catch_response=True) as page:
            token = csrf(page.text)
            if page.status_code != 200 or not token:
                page.failure(f"login page: {page.status_code}, csrf token {'found' if token else 'missing'}")
                return
        data = {
            "username": self.username,
            "password": PLAN["password"],
            "csrfmiddlewaretoken": token,
            "next": next_url,
        }
        started = time.monotonic()
        with self.client.post(
            "/login/", data=data, name="Log in (POST)", allow_redirects=False, catch_response=True
        ) as r:
            if r.status_code != 302 or urlsplit(r.headers.get("Location", "")).path != next_url:
                r.failure(f"login as {self.username}: {r.status_code} to {r.headers.get('Location')}")
        # After the with block, so that the last login is recorded before the statistics reset.
        _logged_in(round((time.monotonic() - started) * 1000))

    def get(self, url: str, name: str, must: str = "") -> Forms | None:
        """A page that must answer 200 (and contain `must`)."""
        with self.client.get(url, name=name, catch_response=True, allow_redirects=False) as r:
            if r.status_code != 200:
                r.failure(f"{url}: {r.status_code} {r.headers.get('Location', '')}")
                return None
            if must and must not in r.text:
                r.failure(f"{url}: no “{must}” on the page")
                return None
            return parse(r.text)

    def think(self, low: float, high: float) -> None:
        time.sleep(random.uniform(low, high))  # gevent patches time.sleep


class EndUser(Person):
    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        with _lock:
            me = next(_end_users)
        self.username, self.records = me["username"], me["records"]
        self.log_in("/my-work/")

    @task
    def work_one_item(self) -> None:
        page = self.get("/my-work/", "My Work", must=">My Work</h1>")
        if page is None:
            return
        # Mine: assigned to me, or a team item I hold; not one a teammate holds (My Work lists it,
        # "held by …", without a Claim button).
        own = [r for r in page.rows if r["claim"] is None and r["url"] and not held_by_other(r)]
        claimable = [r for r in page.rows if r["claim"] is not None]
        with _lock:
            OWN_ITEMS[self.username] = len(own)
            if self.username in TEAM_OF:
                SHARED_SEEN[self.username] = len(claimable)
        if claimable and (not own or random.random() < 0.15):
            row = self.claim(random.choice(claimable))
            if row is None:
                return
        elif own:
            row = random.choice(own)
        else:
            outcome("end user: nothing to do (My Work empty)")
            return
        self.think(0.3, 1.0)
        self.finish(row)

    def claim(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """Claim from My Work (post, then My Work again with the message)."""
        form = row["claim"]
        with self.client.post(
            form["action"],
            data=form_data(form),
            name="My Work: claim (POST)",
            allow_redirects=False,
            catch_response=True,
        ) as r:
            if r.status_code != 302:
                r.failure(f"claim {row['pk']}: {r.status_code}")
                return None
            location = path_of(r.headers["Location"])
        page = self.get(location, "My Work (after claim)", must=">My Work</h1>")
        if page is None:
            return None
        said = " ".join(text for _level, text in page.alerts)
        if any(level == "success" and "You now hold" in text for level, text in page.alerts):
            return row
        if any(level == "danger" for level, _ in page.alerts):
            outcome("end user: claim lost (someone else took the item first)")
            return None
        check_failed("claim confirmed", f"claim {row['pk']}: no message ({said!r})")
        return None

    def finish(self, row: dict[str, Any]) -> None:
        pk, url = row["pk"], path_of(row["url"].split("#", 1)[0])
        page = self.get(url, "Work Guide (record page, ?item=)", must="Work Guide")
        if page is None:
            return
        form = form_posting_to(page, f"/work-items/{pk}/screen")
        if form is None:
            text = " ".join(t for _level, t in page.alerts)
            if "completed" in text or "reassigned" in text or "canceled" in text:
                outcome("end user: item gone before it was opened (completed, reassigned or canceled)")
            else:
                check_failed("Work Guide shows the form", f"item {pk}: no form on {url} ({text!r})")
            return
        data = screen_submission(form, username=self.username)
        self.think(1.0, 3.0)  # reading the record, typing the comment
        with self.client.post(
            form["action"],
            data=data,
            name="Work Guide: Finish (POST)",
            allow_redirects=False,
            catch_response=True,
        ) as r:
            location = r.headers.get("Location", "")
            if r.status_code != 302:
                r.failure(f"finish {pk}: {r.status_code}")
                return
            if "check=1" in location:
                r.failure(f"finish {pk}: the form came back with an error ({location})")
                return
        done = self.get(path_of(location), "Record page (after Finish)", must="Work Guide")
        if done is None:
            return
        said = " ".join(t for _level, t in done.alerts)
        if any(level == "success" and t.startswith("Done:") for level, t in done.alerts):
            with _lock:
                OWN_ITEMS[self.username] = max(OWN_ITEMS[self.username] - 1, 0)
        elif "item=" in location:
            outcome("end user: item closed or moved while the form was open (input shown back)")
        else:
            check_failed("Finish says done", f"finish {pk}: no “Done” message ({said!r})")


class Manager(Person):
    fixed_count = len(PLAN["managers"])
    wait_time = between(3, 8)

    def on_start(self) -> None:
        with _lock:
            self.index = next(_managers)
        self.username = PLAN["managers"][self.index]
        # Each manager looks after their own share of the people who are away: two managers do
        # not pick the same item.
        self.away = [
            u["username"] for i, u in enumerate(PLAN["away"]) if i % len(PLAN["managers"]) == self.index
        ]
        self.log_in("/work-items/")

    @task(1)
    def look(self) -> None:
        self.get("/work-items/", "Work Items", must=">Work items</h1>")

    @task(3)
    def reassign(self) -> None:
        colleague = random.choice(self.away)
        url = f"/work-items/?user={colleague}"
        page = self.get(url, "Work Items (?user=)", must=">Work items</h1>")
        if page is None:
            return
        form = form_posting_to(page, "/work-items/reassign/")
        boxes = reassign_boxes(page)
        if form is None or not boxes:
            outcome("manager: nobody's items to move")
            return
        target = random.choice(PLAN["end_users"])["username"]
        chosen = random.sample(boxes, k=min(len(boxes), random.choice([1, 1, 2])))
        data = form_data(form)
        data.update(kind="user", target=target, reason=f"{colleague} is away", items=chosen)
        self.think(1.0, 2.0)
        with self.client.post(
            "/work-items/reassign/", data=data, name="Work Items: reassign (POST)", allow_redirects=False,
            catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code != 302:
                r.failure(f"reassign {chosen}: {r.status_code}")
                return
            location = path_of(r.headers["Location"])
        done = self.get(location, "Work Items (after reassign)", must=">Work items</h1>")
        if done is None:
            return
        moved = [t for level, t in done.alerts if level == "success" and "reassigned to" in t]
        refused = [t for level, t in done.alerts if level == "danger"]
        if moved:
            with _lock:
                OWN_ITEMS[target] = OWN_ITEMS.get(target, 0) + len(chosen) - len(refused)
        if refused:
            outcome("manager: item closed before it was moved")
        if not moved and not refused:
            check_failed("reassign says moved", f"reassign {chosen}: {done.alerts!r}")


class Admin(Person):
    fixed_count = len(PLAN["admins"])
    wait_time = between(2, 6)

    def on_start(self) -> None:
        with _lock:
            self.username = next(_admins)
        self.log_in("/monitor/runs/")

    @task
    def runs(self) -> None:
        url = random.choice(["/monitor/runs/", "/monitor/runs/", "/monitor/runs/?status=in_progress",
                             "/monitor/runs/?status=completed"])  # fmt: skip
        page = self.get(
            url, "Runs" if url.endswith("/") else "Runs (?status=)", must=">Orchestration Runs</h1>"
        )
        if page is None:
            return
        runs = sorted({link for link in page.links if re.fullmatch(r"/monitor/runs/\d+/", link)})
        if not runs:
            outcome("admin: no runs listed (the filter matched none yet)")
            return
        self.think(0.5, 2.0)
        self.get(random.choice(runs), "Run detail", must='<h1 class="h3 mb-0">Run ')


class Feeder(HttpUser):
    """An integration that launches runs through the JSON API, as often as the people need."""

    fixed_count = 1
    wait_time = between(0.5, 1.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {PLAN['token']}"
        self.launch_url = f"/api/orchestrations/{PLAN['orchestration']}/runs"
        self.records = {u["username"]: u["records"] for u in (*PLAN["end_users"], *PLAN["away"])}
        # A few launches at once, as an integration with a small thread pool would: one at a time
        # cannot keep up with 45 people when the machine is busy.
        self.pool = gevent.pool.Pool(6)

    def launch(self, record_id: int, assignee: str) -> bool:
        body = {"record_id": record_id, "inputs": {"assignee": assignee}}
        with self.client.post(
            self.launch_url, json=body, name="API: launch a run (POST)", catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"launch for {assignee}: {r.status_code} {r.text[:200]}")
                return False
        return True

    @task
    def feed(self) -> None:
        with _lock:
            low = {name: OWN_TOP_UP - n for name, n in OWN_ITEMS.items() if n < OWN_LOW}
            for name in low:
                OWN_ITEMS[name] = OWN_TOP_UP  # counted as launched before the launches: no double top-up
        for name, missing in low.items():
            for _ in range(missing):
                self.pool.spawn(self.launch, random.choice(self.records[name]), name)
        # Teams and the queue: enough to claim, judged by what their members last saw.
        for team, members in PLAN["teams"].items():
            seen = [SHARED_SEEN[m] for m in members if m in SHARED_SEEN]
            if seen and min(seen) < SHARED_LOW:
                assignee = (
                    f"queue:{PLAN['queue']}"
                    if team in PLAN["queue_teams"] and random.random() < 0.5
                    else f"group:{team}"
                )
                self.pool.spawn(self.launch, random.choice(PLAN["shared_records"]), assignee)
        # The people who are away get work now and then, for the managers to move.
        if random.random() < 0.3:
            away = random.choice(PLAN["away"])
            self.pool.spawn(self.launch, random.choice(away["records"]), away["username"])
        self.pool.join()
