"""A run's SLA state honours its step's `sla: at_risk:` (how long before due an open item is at
risk, counted on the step's business calendar as a rule's `at: -…` is); without one, the last
quarter of the item's time. On the moved clock: created Wednesday 23 December 2026 15:00 in
Berlin, due in 2 business days on a 9-to-5 weekday calendar with Christmas off, i.e. Monday 28
December 15:00."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clock import Clock
from tests.factories import UserFactory, make_case
from tests.orchestration.engine_support import launch
from tests.workitems.test_sla import berlin, define
from workitems import sla
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db


def start(monkeypatch: pytest.MonkeyPatch, **sla_extra: Any) -> tuple[Clock, WorkItem]:
    define(rules=[], **sla_extra)
    clock = Clock(monkeypatch, berlin(2026, 12, 23, 15, 0))
    item = WorkItem.objects.get(run=launch("cases_sla", record=make_case("Flooded kitchen")))
    assert item.due_at == berlin(2026, 12, 28, 15, 0)
    return clock, item


def states(clock: Clock, item: WorkItem, *moments: tuple[int, ...]) -> list[str]:
    """The run page's SLA state (run_work) at each moment, checked against run_sla_states and
    the step's own state."""
    out = []
    for moment in moments:
        clock.at(berlin(*moment))
        work = sla.run_work(item.run_id)
        assert work.steps[item.step_run_id].sla == work.sla
        assert sla.run_sla_states([item.run_id], now=clock.now) == {item.run_id: work.sla}
        out.append(work.sla)
    return out


def test_without_at_risk_the_last_quarter_of_the_time_is_at_risk(
    personas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, item = start(monkeypatch)
    # Five wall-clock days from creation to due: at risk from 30 hours before, Sunday 09:00.
    assert states(clock, item, (2026, 12, 27, 8, 59), (2026, 12, 27, 9, 0), (2026, 12, 28, 10, 0)) == [
        sla.ON_TRACK,
        sla.AT_RISK,
        sla.AT_RISK,
    ]


def test_at_risk_in_business_hours_counts_back_from_due_on_the_calendar(
    personas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, item = start(monkeypatch, at_risk="4 business hours")
    # 4 business hours before Monday 15:00 is Monday 11:00: the weekend and Sunday, at risk by
    # the default, are on track; so is Monday 10:59.
    assert states(
        clock,
        item,
        (2026, 12, 27, 12, 0),
        (2026, 12, 28, 10, 59),
        (2026, 12, 28, 11, 0),
        (2026, 12, 28, 15, 0),
        (2026, 12, 28, 15, 1),
    ) == [sla.ON_TRACK, sla.ON_TRACK, sla.AT_RISK, sla.AT_RISK, sla.BREACHED]


def test_a_long_at_risk_makes_the_item_at_risk_from_the_start(
    personas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, item = start(monkeypatch, at_risk="3 business days")
    # Three business days before Monday 15:00 (Thursday, Wednesday, Tuesday: Christmas and the
    # weekend do not count) is Tuesday 22 15:00, before the item was created.
    assert states(clock, item, (2026, 12, 23, 15, 0), (2026, 12, 24, 10, 0)) == [sla.AT_RISK, sla.AT_RISK]


def test_a_wall_clock_at_risk_is_that_long_before_due(personas: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, item = start(monkeypatch, at_risk="2h")
    assert states(clock, item, (2026, 12, 28, 12, 59), (2026, 12, 28, 13, 0)) == [sla.ON_TRACK, sla.AT_RISK]


def test_the_run_page_shows_at_risk_by_the_steps_at_risk(
    personas: Any, monkeypatch: pytest.MonkeyPatch, client: Any
) -> None:
    clock, item = start(monkeypatch, at_risk="4 business hours")
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    clock.at(berlin(2026, 12, 28, 10, 0))  # at risk by the default (the last quarter), not by the step's
    page = client.get(f"/monitor/runs/{item.run_id}/").content.decode()
    assert 'id="run-sla">On track</span>' in page
    assert '<span class="badge text-bg-warning">At risk</span>' not in page
    clock.at(berlin(2026, 12, 28, 11, 30))
    page = client.get(f"/monitor/runs/{item.run_id}/").content.decode()
    assert 'id="run-sla">At risk</span>' in page
    assert '<span class="badge text-bg-warning">At risk</span>' in page


def test_run_work_reads_the_items_in_one_query_and_the_calendar_once(
    personas: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    clock, item = start(monkeypatch, at_risk="4 business hours")
    launch("cases_sla", record=make_case("A second case"))  # another run: not read
    clock.at(berlin(2026, 12, 28, 10, 0))
    with django_assert_num_queries(2):  # the items (with their step and version), the calendar
        assert sla.run_work(item.run_id).sla == sla.ON_TRACK
    clock.at(berlin(2026, 12, 28, 16, 0))
    with django_assert_num_queries(1):  # past due: breached, no calendar needed
        assert sla.run_work(item.run_id).sla == sla.BREACHED
