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
import threading
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.pool
from locust import HttpUser, between, events, task

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

OWN_LOW, OWN_TOP_UP = 3, 5
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


# --- parsing what the browser would see ----------------------------------------------------------


class Forms(HTMLParser):
    """Every form of a page with its fields (name, type, value, options), its submit buttons,
    every link, My Work's rows and the messages (alerts) shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.alerts: list[tuple[str, str]] = []
        self.owned: dict[str, list[dict[str, Any]]] = {}  # fields outside a form, by its id (form="…")
        self._form: dict[str, Any] | None = None
        self._select: dict[str, Any] | None = None
        self._textarea: dict[str, Any] | None = None
        self._alert: list[Any] | None = None
        self._alert_depth = 0
        self._row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if self._alert is not None and tag == "div":
            self._alert_depth += 1
        if tag == "tr" and "data-item" in a:
            self.rows.append({"pk": int(a["data-item"]), "url": None, "claim": None, "text": ""})
            self._row = True
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
            if self.rows and self.rows[-1]["url"] is None and "?item=" in a["href"]:
                self.rows[-1]["url"] = a["href"]
        elif tag == "form":
            self._form = {
                "action": a.get("action", ""),
                "method": a.get("method", "get"),
                "fields": [],
                "buttons": [],
            }
            self.forms.append(self._form)
            if self.rows and "/claim/" in self._form["action"]:
                self.rows[-1]["claim"] = self._form
        elif tag == "div" and "alert" in a.get("class", "").split():
            level = next((c[6:] for c in a["class"].split() if c.startswith("alert-")), "")
            self._alert, self._alert_depth = [level, ""], 1
        if tag == "input" and a.get("form"):
            self.owned.setdefault(a["form"], []).append(
                {"name": a.get("name", ""), "type": a.get("type", "text"), "value": a.get("value", "")}
            )
            return
        if self._form is None:
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind == "submit":
                self._form["buttons"].append((a.get("name", ""), a.get("value", "")))
            else:
                self._form["fields"].append(
                    {
                        "name": a.get("name", ""),
                        "type": kind,
                        "value": a.get("value", ""),
                        "checked": "checked" in a,
                    }
                )
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._form["buttons"].append((a.get("name", ""), a.get("value", "")))
        elif tag == "select":
            self._select = {"name": a.get("name", ""), "type": "select", "options": [], "value": ""}
            self._form["fields"].append(self._select)
        elif tag == "option" and self._select is not None:
            self._select["options"].append(a.get("value", ""))
            if "selected" in a:
                self._select["value"] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = {"name": a.get("name", ""), "type": "textarea", "value": ""}
            self._form["fields"].append(self._textarea)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = False
        elif tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "div" and self._alert is not None:
            self._alert_depth -= 1
            if self._alert_depth == 0:
                self.alerts.append((self._alert[0], " ".join(self._alert[1].split())))
                self._alert = None

    def handle_data(self, data: str) -> None:
        if self._row:
            self.rows[-1]["text"] += data
        if self._textarea is not None:
            self._textarea["value"] += data
        if self._alert is not None:
            self._alert[1] += data


def parse(html: str) -> Forms:
    p = Forms()
    p.feed(html)
    return p


def held_by_other(row: dict[str, Any]) -> bool:
    text = " ".join(row["text"].split())
    return "held by " in text and "held by you" not in text


def form_data(form: dict[str, Any]) -> dict[str, Any]:
    """What the browser sends as the form stands (hidden inputs, current values)."""
    data: dict[str, Any] = {}
    for f in form["fields"]:
        if not f["name"] or (f["type"] == "checkbox" and not f["checked"]):
            continue
        data[f["name"]] = f["value"] if f["type"] != "checkbox" else (f["value"] or "on")
    return data


def csrf(html: str) -> str:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    return m.group(1) if m else ""


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


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
        form = next((f for f in page.forms if f["action"].endswith(f"/work-items/{pk}/screen")), None)
        if form is None:
            text = " ".join(t for _level, t in page.alerts)
            if "completed" in text or "reassigned" in text or "canceled" in text:
                outcome("end user: item gone before it was opened (completed, reassigned or canceled)")
            else:
                check_failed("Work Guide shows the form", f"item {pk}: no form on {url} ({text!r})")
            return
        data = form_data(form)
        for f in form["fields"]:
            if f["type"] == "select" and not data.get(f["name"]):
                data[f["name"]] = random.choice([o for o in f["options"] if o])
            elif f["type"] in {"text", "textarea"} and f["name"] not in {"screen", "csrfmiddlewaretoken"}:
                data[f["name"]] = f"Checked by {self.username} at {time.strftime('%H:%M:%S')}"
            elif f["type"] == "checkbox" and random.random() < 0.3:
                data[f["name"]] = f["value"] or "on"
        name, value = next(((n, v) for n, v in form["buttons"] if v == "finish"), ("action", "finish"))
        data[name] = value
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
        form = next((f for f in page.forms if f["action"].endswith("/work-items/reassign/")), None)
        # The row checkboxes sit in the table and join the reassign form by its id (form="…").
        boxes = [f["value"] for f in page.owned.get("reassign-form", []) if f["name"] == "items"]
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
            outcome("admin: no runs listed")
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
        self.pool = gevent.pool.Pool(4)

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
