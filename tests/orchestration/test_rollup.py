"""The Analytics rollups (orchestration/rollup.py): what a refresh finds changed and rebuilds
(counted), an event committed late, a deleted or migrated run, two refreshes at once, the month
sums, the histogram's percentiles, and figures equal to a computation from the runs themselves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orchestration import rollup
from orchestration.models import AnalyticsRollup, RollupDirty, Run, RunStatus, StepRun
from orchestration.rollup import Merged, bucket, histogram_percentile, refresh, span_q
from orchestration.selectors.analytics import AnalyticsFilter, analytics_page
from orchestration.selectors.figures import percentile_cont
from orchestration.services.common import run_event_add
from tests.conftest import require_postgresql
from tests.factories import auto_flow, load, make_case, screen_flow
from workitems.models import WorkItem, WorkRollup
from workitems.services import workitem_complete

from .engine_support import launch
from .test_analytics import at, proc, shape

UTC = dt.UTC
D = dt.date(2026, 11, 10)


def launched(capture: Any, name: str) -> Run:
    with capture(execute=True):  # its background step runs
        return launch(record=make_case(name))


def runs_on(capture: Any, days: list[int], *, open_from: int | None = None) -> list[Run]:
    """A run of `proc` started on D + each day at 09:00; calc 10 min; check done 2 h later
    (open for the runs from index `open_from` on)."""
    load(screen_flow("review"), auto_flow("calc"), proc({"user": "alice"}))
    out = []
    for i, day in enumerate(days):
        run = launched(capture, f"Case {i}")
        is_open = open_from is not None and i >= open_from
        shape(
            run,
            start=at(day, 9),
            calc_end=at(day, 9, 10),
            end=None if is_open else at(day, 11),
            due=at(day, 10),
        )
        out.append(run)
    return out


def page(days: int = 3, **kw: Any) -> Any:
    return analytics_page(
        AnalyticsFilter(started_from=D, started_to=D + dt.timedelta(days=days - 1), **kw), now=at(5, 0)
    )


@pytest.fixture
def background(django_capture_on_commit_callbacks: Any) -> Any:
    return django_capture_on_commit_callbacks


# --- the histogram ---------------------------------------------------------------------------


def test_histogram_percentiles_are_within_two_percent_of_the_exact_ones() -> None:
    rnd = random.Random(7)
    values = [rnd.lognormvariate(8, 2) for _ in range(5000)] + [0.0, 0.0004]
    histogram: dict[int, int] = {}
    for v in values:
        histogram[bucket(v)] = histogram.get(bucket(v), 0) + 1
    for q in (0.1, 0.5, 0.9, 0.99):
        exact = percentile_cont(values, q)
        assert exact is not None
        assert histogram_percentile(histogram, q) == pytest.approx(exact, rel=0.02)
    assert histogram_percentile({}, 0.5) is None


def test_merged_durations_are_exact_while_every_row_kept_them() -> None:
    m = Merged()
    m.add(2, {str(bucket(10)): 1, str(bucket(30)): 1}, [10, 30])
    m.add(1, {str(bucket(20)): 1}, [20])
    assert (m.count, m.percentile(0.5), m.percentile(0.9)) == (3, 20, 28)
    m.add(1, {str(bucket(40)): 1}, None)  # a row with too many to keep: the histogram decides
    assert m.exact is None and m.percentile(0.5) == pytest.approx(25, rel=0.02)
    assert m.percentile(0.9) == pytest.approx(37, rel=0.02)


def test_span_reads_month_rows_for_whole_months_and_day_rows_around_them() -> None:
    q = str(span_q(dt.date(2026, 9, 20), dt.date(2026, 12, 3)))
    months = "('day__in', [datetime.date(2026, 10, 1), datetime.date(2026, 11, 1)]), ('whole_month', True)"
    assert months in q  # October and November whole
    assert "('day__gte', datetime.date(2026, 9, 20)), ('day__lt', datetime.date(2026, 10, 1))" in q
    assert "('day__gte', datetime.date(2026, 12, 1)), ('day__lte', datetime.date(2026, 12, 3))" in q
    assert "'whole_month', True" not in str(span_q(dt.date(2026, 11, 2), dt.date(2026, 11, 30)))
    assert "'whole_month', True" in str(span_q(dt.date(2026, 11, 1), dt.date(2026, 11, 30)))


# --- what a refresh rebuilds -----------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_rebuilds_only_the_days_that_changed(personas: SimpleNamespace, background: Any) -> None:
    *_, c = runs_on(background, [0, 1, 2], open_from=2)
    first = refresh()
    assert first.full and (first.marked, first.rebuilt, first.months) == (3, 3, 1)
    assert page().completed_total == 2
    again = refresh()
    assert (again.full, again.marked, again.rebuilt, again.months) == (False, 0, 0, 0)
    # alice finishes C's item: one event, one day (and its month) rebuilt.
    item = WorkItem.objects.get(run=c)
    workitem_complete(item=item, user=personas.alice, data={"approved": True})
    changed = refresh()
    assert (changed.marked, changed.rebuilt, changed.months) == (1, 1, 1)
    after = page()
    assert by_step(after)["check"].open == 0 and by_step(after)["check"].count == 3
    assert [w.count for w in after.wip] == []
    assert RollupDirty.objects.count() == 0


def by_step(a: Any) -> dict[str, Any]:
    return {s.step: s for s in a.steps}


@pytest.mark.django_db
def test_an_event_committed_after_a_later_scan_began_is_still_read(
    personas: SimpleNamespace, background: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (run,) = runs_on(background, [0])
    t0 = at(3, 0)
    refresh(now=t0)
    assert refresh(now=t0 + dt.timedelta(seconds=400)).marked == 0
    # A scan at t1 sees the highest id at 5 more than exist: ids another transaction holds,
    # still uncommitted. It commits after the scan: its event has an id below that top.
    top = rollup._top_event_id()
    monkeypatch.setattr(rollup, "_top_event_id", lambda: top + 5)
    t1 = t0 + dt.timedelta(seconds=460)
    assert refresh(now=t1).marked == 0
    monkeypatch.undo()
    Run.objects.filter(pk=run.pk).update(status=RunStatus.CANCELED)
    run_event_add(run=run, name="orchestration.run.canceled", actor_id=None)
    late = refresh(now=t1 + dt.timedelta(seconds=60))  # within the margin of t1's scan
    assert late.marked == 1 and late.rebuilt == 1
    assert page().completed_total == 0


@pytest.mark.django_db
def test_a_deleted_run_leaves_the_figures(personas: SimpleNamespace, background: Any) -> None:
    _, b = runs_on(background, [0, 0])
    refresh()
    assert page().started_total == 2
    b.refresh_from_db()  # (its start time, set after it was launched)
    b.delete()
    assert refresh().rebuilt == 1
    assert page().started_total == 1 and by_step(page())["check"].count == 1


@pytest.mark.django_db
def test_a_migrated_run_counts_under_its_new_version(personas: SimpleNamespace, background: Any) -> None:
    from orchestration.models import OrchestrationVersion
    from orchestration.services.migration import migration_apply

    (run,) = runs_on(background, [0], open_from=0)
    load(proc({"user": "bob"}))  # v2, same keys
    refresh()
    assert page(orchestration="proc", version=1).started_total == 1
    v1, v2 = OrchestrationVersion.objects.filter(orchestration__api_name="proc").order_by("number")
    personas.admin.is_superuser = True
    outcome = migration_apply(source=v1, target=v2, actor=personas.admin)
    assert outcome.migrated == [run.pk]
    assert refresh().rebuilt == 1
    assert page(orchestration="proc", version=1).started_total == 0
    v2_page = page(orchestration="proc", version=2)
    assert v2_page.started_total == 1 and by_step(v2_page)["check"].open == 1


@pytest.mark.django_db
def test_a_limit_leaves_the_rest_for_the_next_refresh_and_the_page_says_so(
    client: Any, personas: SimpleNamespace, background: Any
) -> None:
    runs_on(background, [0, 1, 2])
    first = refresh(limit=1)
    assert (first.rebuilt, first.remaining) == (1, 3)  # two days and the month
    assert page().pending == 2 and page().as_of is None
    client.force_login(personas.admin)
    body = client.get(f"/monitor/analytics/?started_from={D}&started_to={D + dt.timedelta(days=2)}").content
    assert b"2 days of runs still being recomputed" in body
    rest = refresh()
    assert (rest.rebuilt, rest.months, rest.remaining) == (2, 1, 0)
    assert page().pending == 0 and page().as_of is not None and page().started_total == 3


@pytest.mark.django_db
def test_the_command_and_the_beat_task(personas: SimpleNamespace, background: Any, capsys: Any) -> None:
    from orchestration.tasks import analytics_refresh

    runs_on(background, [0, 40])  # two months
    assert analytics_refresh() == {"marked": 2, "rebuilt": 2, "months": 2, "remaining": 0}
    call_command("analytics_refresh", "--rebuild")
    assert "2 day(s) of runs marked, 2 rebuilt and 2 month(s) summed" in capsys.readouterr().out
    schedule = settings.CELERY_BEAT_SCHEDULE["orchestration-analytics-refresh"]
    assert schedule["task"] == "orchestration.tasks.analytics_refresh"


# --- figures equal the runs' own ----------------------------------------------------------------


def _random_world(capture: Any, rnd: random.Random) -> list[Run]:
    """40 runs over 45 days from D - 10 (three months), random times, a third still open."""
    load(screen_flow("review"), auto_flow("calc"), proc({"user": "alice"}))
    out = []
    for i in range(40):
        start = at(rnd.randrange(-10, 35), rnd.randrange(0, 23), rnd.randrange(0, 59))
        calc = start + dt.timedelta(seconds=rnd.randrange(1, 5000))
        end = None if i % 3 == 0 else calc + dt.timedelta(seconds=rnd.randrange(60, 400_000))
        run = launched(capture, f"Case {i}")
        shape(run, start=start, calc_end=calc, end=end, due=calc + dt.timedelta(hours=rnd.randrange(1, 90)))
        out.append(run)
    return out


def _expected(runs: list[Run], now: dt.datetime, lo: dt.date, hi: dt.date) -> dict[str, Any]:
    starts: dict[int, Any] = dict(
        Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("pk", "started_at")
    )
    picked = [pk for pk, started in starts.items() if lo <= timezone.localtime(started).date() <= hi]
    steps: dict[str, list[Any]] = {}
    for s in StepRun.objects.filter(run_id__in=picked):
        steps.setdefault(s.key, []).append(s)
    out: dict[str, Any] = {"started": len(picked)}
    for key, rows in steps.items():
        done = [(s.ended_at - s.started_at).total_seconds() for s in rows if s.status == "completed"]
        out[key] = (
            len(done),
            percentile_cont(done, 0.5),
            percentile_cont(done, 0.9),
            sum(((s.ended_at or now) - s.started_at).total_seconds() for s in rows if s.started_at),
            sum(1 for s in rows if s.started_at and not s.ended_at),
        )
    items: list[Any] = list(
        WorkItem.objects.filter(run_id__in=picked, due_at__isnull=False).exclude(status="canceled")
    )
    out["breached"] = len(
        [
            i
            for i in items
            if (i.status == "completed" and i.completed_at > i.due_at)
            or (i.status == "assigned" and i.due_at < now)
        ]
    )
    out["with_due"] = len(items)
    return out


def _actual(a: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"started": a.started_total}
    for s in a.steps:
        out[s.step] = (s.count, s.median, s.p90, s.total_seconds, s.open)
    out["breached"] = sum(b.breached for b in a.breaches)
    out["with_due"] = sum(b.with_due for b in a.breaches)
    return out


def _close(actual: dict[str, Any], expected: dict[str, Any], rel: float) -> None:
    assert actual.keys() == expected.keys()
    for k, v in expected.items():
        if isinstance(v, tuple):
            assert actual[k][0] == v[0] and actual[k][4] == v[4], k
            for i in (1, 2):  # median, p90 (none without a completed run)
                assert (actual[k][i] is None) == (v[i] is None), k
                assert v[i] is None or actual[k][i] == pytest.approx(v[i], rel=rel), k
            assert actual[k][3] == pytest.approx(v[3], rel=1e-9), k
        else:
            assert actual[k] == v, k


@pytest.mark.django_db
@pytest.mark.parametrize("exact", [True, False], ids=["kept-durations", "histograms"])
def test_figures_equal_those_computed_from_the_runs(
    personas: SimpleNamespace, background: Any, monkeypatch: pytest.MonkeyPatch, exact: bool
) -> None:
    if not exact:  # every row past its cap: the percentiles come from the histograms
        monkeypatch.setattr(rollup, "EXACT_PER_ROW", 0)
        monkeypatch.setattr(rollup, "TABLE", dataclasses.replace(rollup.TABLE, exact_cap=0))
    runs = _random_world(background, random.Random(11))
    refresh()
    now = at(40, 0)
    # A range holding November whole (month rows) and days of October and December around it.
    for lo, hi in [(D - dt.timedelta(days=10), D + dt.timedelta(days=34)), (D, D + dt.timedelta(days=5))]:
        a = analytics_page(AnalyticsFilter(started_from=lo, started_to=hi), now=now)
        _close(_actual(a), _expected(runs, now, lo, hi), rel=1e-9 if exact else 0.02)
    assert AnalyticsRollup.objects.filter(whole_month=True).exists()
    assert WorkRollup.objects.filter(whole_month=True).exists()


# --- two refreshes at once ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_rebuild_each_day_once(personas: SimpleNamespace, background: Any) -> None:
    require_postgresql("two refreshes at once take rows with SKIP LOCKED")
    runs_on(background, [0, 1, 2, 3, 4, 5])
    assert refresh(limit=0).marked == 6  # every day marked, none rebuilt yet
    reports: list[Any] = []
    gate = threading.Barrier(2)

    def one() -> None:
        try:
            gate.wait()
            reports.append(refresh())
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.rebuilt for r in reports) == 6
    assert RollupDirty.objects.count() == 0
    assert page(days=6).started_total == 6 and by_step(page(days=6))["check"].count == 6
