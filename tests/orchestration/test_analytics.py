"""The Analytics page: four runs with known times (set after launching), and each figure checked
against the hand computation written next to it; the filters, the CSV, who may see the page and a
query count that does not grow with the runs."""

from __future__ import annotations

import csv
import datetime as dt
import io
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.models import Run, RunStatus, StageRun, StepRun
from orchestration.rollup import refresh
from orchestration.selectors.analytics import AnalyticsFilter, analytics_page
from tests.factories import auto_flow, grant, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem, WorkItemStatus

from .engine_support import bg, launch, stage, task

pytestmark = pytest.mark.django_db

URL = "/monitor/analytics/"
D = dt.date(2026, 11, 10)
UTC = dt.UTC


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """Day D + `day` at hour:minute, UTC."""
    return dt.datetime.combine(D + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=UTC)


def proc(assignee: dict[str, str]) -> dict[str, Any]:
    return orchestration(
        stages=[
            stage("intake", bg("calc", "calc")),
            stage("review", task("check", assignee=assignee)),
        ]
    )


def shape(run: Run, *, start: dt.datetime, calc_end: dt.datetime, end: dt.datetime | None, due: Any) -> None:
    """Give a launched run (intake done, check open) its times: intake from `start` to
    `calc_end`, review from there to `end` (None: still open), the work item due at `due`."""
    Run.objects.filter(pk=run.pk).update(
        started_at=start, ended_at=end, status=RunStatus.COMPLETED if end else RunStatus.IN_PROGRESS
    )
    StageRun.objects.filter(run=run, key="intake").update(started_at=start, ended_at=calc_end)
    StepRun.objects.filter(run=run, key="calc").update(started_at=start, ended_at=calc_end)
    review: dict[str, Any] = {"started_at": calc_end, "ended_at": end}
    if end:
        review["status"] = "completed"
    StageRun.objects.filter(run=run, key="review").update(**review)
    StepRun.objects.filter(run=run, key="check").update(**review)
    item: dict[str, Any] = {"created_at": calc_end, "due_at": due}
    if end:
        item.update(status=WorkItemStatus.COMPLETED, completed_at=end)
    WorkItem.objects.filter(run=run).update(**item)


@pytest.fixture
def world(personas: SimpleNamespace, django_capture_on_commit_callbacks: Any) -> SimpleNamespace:
    """Runs of `proc`:
    A (v1) D 09:00-12:00 completed; calc 600 s; check 10,200 s, due 11:00 (breached);
    B (v1) D 10:00-D+1 10:00 completed; calc 1,200 s; check 85,200 s, due D+2 (met);
    C (v1) D+1 08:00, open; calc 1,800 s; check open since 08:30 for alice, due 09:00 (breached);
    D (v2) D+2 08:00, open; calc 2,400 s; check open since 08:40 for group support, no due time."""
    load(screen_flow("review"), auto_flow("calc"), proc({"user": "alice"}))
    with django_capture_on_commit_callbacks(execute=True):  # the background step runs
        runs = [launch(record=make_case(f"Case {i}")) for i in range(3)]
    load(proc({"group": "support"}))
    with django_capture_on_commit_callbacks(execute=True):
        runs.append(launch(record=make_case("Case 3")))
    a, b, c, d = runs
    assert d.version.number == 2 and a.version.number == 1
    shape(a, start=at(0, 9), calc_end=at(0, 9, 10), end=at(0, 12), due=at(0, 11))
    shape(b, start=at(0, 10), calc_end=at(0, 10, 20), end=at(1, 10), due=at(2, 0))
    shape(c, start=at(1, 8), calc_end=at(1, 8, 30), end=None, due=at(1, 9))
    shape(d, start=at(2, 8), calc_end=at(2, 8, 40), end=None, due=None)
    refresh()  # what beat does every minute: the page reads the rollups
    return SimpleNamespace(a=a, b=b, c=c, d=d, **vars(personas))


def three_days(**kw: Any) -> AnalyticsFilter:
    return AnalyticsFilter(started_from=D, started_to=D + dt.timedelta(days=2), **kw)


def by_step(a: Any) -> dict[str, Any]:
    return {s.step: s for s in a.steps}


def test_runs_per_day_durations_waiting_and_bottlenecks(world):
    a = analytics_page(three_days(), now=at(3, 0))
    assert [(d.day, d.started, d.completed) for d in a.days] == [
        (D, 2, 1),  # A and B start; A completes
        (D + dt.timedelta(days=1), 1, 1),  # C starts; B completes
        (D + dt.timedelta(days=2), 1, 0),  # D starts
    ]
    calc, check = by_step(a)["calc"], by_step(a)["check"]
    # calc: 600, 1200, 1800, 2400 -> median (1200+1800)/2; p90 at rank 2.7: 1800 + 0.7 * 600.
    assert (calc.kind, calc.count, calc.median, calc.p90, calc.open) == ("background", 4, 1500, 2220, 0)
    # check: 10,200 and 85,200 completed -> median their mean; p90 10,200 + 0.9 * 75,000.
    assert (check.kind, check.count, check.median, check.p90, check.open) == (
        "interactive",
        2,
        47700,
        77700,
        2,
    )
    stages = {s.stage: s for s in a.stages}
    assert (stages["intake"].count, stages["intake"].median, stages["intake"].p90) == (4, 1500, 2220)
    assert (stages["review"].count, stages["review"].median, stages["review"].p90) == (2, 47700, 77700)
    # Waiting: check's 10,200 + 85,200, C open 39 h 30 min (142,200 s) and D 15 h 20 min (55,200 s)
    # until now (D+3 00:00); working: calc's 6,000 s.
    waiting = {w.stage: (w.waiting, w.working) for w in a.waiting}
    assert waiting == {"intake": (0, 6000), "review": (292800, 0)}
    assert [(s.step, s.total_seconds) for s in a.bottlenecks] == [("check", 292800), ("calc", 6000)]


def test_breaches_and_open_work(world):
    a = analytics_page(three_days(), now=at(3, 0))
    # Due times on A, B and C's items: A completed late, C open past due, B in time.
    assert [(b.stage, b.step, b.with_due, b.breached) for b in a.breaches] == [("review", "check", 3, 2)]
    assert a.breaches[0].rate == pytest.approx(2 / 3)
    assert [(w.holder, w.kind, w.count) for w in a.wip] == [
        ("alice", "user", 1),
        ("group support", "group", 1),
    ]


def test_date_range_and_version_filter(world):
    later = analytics_page(
        AnalyticsFilter(started_from=D + dt.timedelta(days=1), started_to=D + dt.timedelta(days=2)),
        now=at(3, 0),
    )
    assert later.started_total == 2  # C and D
    assert by_step(later)["calc"].count == 2 and by_step(later)["calc"].median == 2100  # 1800, 2400
    assert later.breaches[0].with_due == 1  # C's item
    v1 = analytics_page(three_days(orchestration="proc", version=1), now=at(3, 0))
    assert v1.started_total == 3
    # 600, 1200, 1800: median 1200; p90 at rank 1.8: 1200 + 0.8 * 600.
    assert (by_step(v1)["calc"].median, by_step(v1)["calc"].p90) == (1200, 1680)
    assert [(w.holder, w.count) for w in v1.wip] == [("alice", 1)]
    nothing = analytics_page(three_days(orchestration="proc", version=9), now=at(3, 0))
    assert nothing.started_total == 0 and nothing.steps == [] and nothing.wip == []


def page_query(**extra: str) -> str:
    params = {"started_from": D.isoformat(), "started_to": (D + dt.timedelta(days=2)).isoformat(), **extra}
    return "&".join(f"{k}={v}" for k, v in params.items())


def test_page_shows_figures_charts_and_filters(client, world):
    client.force_login(world.admin)
    body = client.get(f"{URL}proc/?{page_query(version='1')}").content.decode()
    assert body.count('role="img"') == 3
    assert '<title id="chart-days-title">Runs started and completed per day</title>' in body
    assert "2026-11-10: 2 started" in body  # the bar's own title
    assert '<option value="1" selected>v1</option>' in body
    assert "3 started, 2 of them completed" in body
    assert "total time" in body  # the bottleneck ranking says what it ranks by
    everything = client.get(f"{URL}?{page_query()}").content.decode()
    assert "4 started, 2 of them completed" in everything
    assert "Analytics" in everything and 'href="/monitor/analytics/proc/' in everything


def test_default_range_is_the_last_thirty_days_and_a_long_range_is_cut(client, world):
    client.force_login(world.admin)
    assert client.get(URL).context["filter"].days.__len__() == 30
    response = client.get(f"{URL}?started_from=2020-01-01&started_to=2026-11-12")
    f = response.context["filter"]
    assert (f.started_to - f.started_from).days == 365 and "at most 366 days" in response.content.decode()
    assert client.get(f"{URL}?started_from=nonsense").status_code == 200  # reported, ignored


def rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_per_section(client, world):
    client.force_login(world.admin)
    days = client.get(f"{URL}?{page_query(format='csv', section='runs_per_day')}")
    assert days["Content-Type"].startswith("text/csv")
    assert "attachment" in days["Content-Disposition"]
    assert rows(days) == [
        ["day", "started", "completed"],
        ["2026-11-10", "2", "1"],
        ["2026-11-11", "1", "1"],
        ["2026-11-12", "1", "0"],
    ]
    steps = rows(client.get(f"{URL}proc/?{page_query(format='csv', section='step_durations', version='1')}"))
    assert steps[0] == [
        "stage",
        "step",
        "kind",
        "completed",
        "median_seconds",
        "p90_seconds",
        "total_seconds",
        "open",
    ]
    assert steps[1][:6] == ["intake", "calc", "background", "3", "1200.0", "1680.0"]
    assert steps[1][6:] == ["3600.0", "0"]
    breaches = rows(client.get(f"{URL}?{page_query(format='csv', section='breaches')}"))
    assert breaches == [
        ["stage", "step", "with_due", "breached", "rate"],
        ["review", "check", "3", "2", "0.6667"],
    ]
    wip = rows(client.get(f"{URL}?{page_query(format='csv', section='wip')}"))
    assert wip == [["holder", "kind", "open_items"], ["alice", "user", "1"], ["group support", "group", "1"]]
    assert client.get(f"{URL}?format=csv&section=nope").status_code == 404


def test_who_may_see_it(client, world):
    assert client.get(URL).status_code == 302
    assert client.get(URL)["Location"].startswith("/login/?next=/monitor/analytics/")
    client.force_login(world.alice)
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}proc/").status_code == 403
    grant(world.alice, "orchestration.view_run")
    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}proc/").status_code == 200
    assert client.get(f"{URL}nope/").status_code == 404


def test_query_count_does_not_grow_with_runs(client, world, django_capture_on_commit_callbacks):
    client.force_login(world.admin)
    url = f"{URL}proc/?{page_query()}"
    client.get(url)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for i in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run = launch(record=make_case(f"More {i}"))
        shape(run, start=at(1, 9), calc_end=at(1, 9, 5), end=at(1, 11), due=at(1, 10))
    assert refresh().rebuilt == 1  # the day they started on
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)
    # session, user, permissions, the orchestration, its versions, the My Work badge; the
    # orchestration's ids, the engine's rollup rows, the work-item rollup rows, the holders'
    # names (a query per kind: users, groups), the refresh time and the partitions pending.
    assert len(small) <= 15
