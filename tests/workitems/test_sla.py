"""SLAs of work items on a moved clock: due in 2 business days across Christmas and a weekend, a
reminder before due, managers told at due, an escalation to a queue a business day later with the
priority raised, a nag repeated while overdue; each fired exactly once (counted: FiredRule rows,
emails, events), however often the tick runs, and canceled by completion or a reassignment."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group

from orchestration.models import OutboxEmail, RunEvent
from tests.clock import Clock
from tests.factories import UserFactory, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import launch, stage
from workitems import sla
from workitems.models import FiredRule, GroupProfile, PersonProfile, Priority, WorkItem, WorkItemStatus
from workitems.services import workitem_complete, workitem_reassign

pytestmark = pytest.mark.django_db(transaction=True)

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(dt.UTC)  # type: ignore[arg-type,misc]


OFFICE = {
    "kind": "business_calendar",
    "api_name": "office",
    "time_zone": "Europe/Berlin",
    "working_days": ["mon", "tue", "wed", "thu", "fri"],
    "hours": {"start": "09:00", "end": "17:00"},
    "holidays": ["2026-12-25"],
}

RULES = [
    {
        "key": "remind",
        "at": "-4 business hours",
        "email": {"to": "assignee", "subject": "Due soon: {{ item.label }} ({{ item.due_at }})"},
    },
    {
        "key": "tell_manager",
        "at": "due",
        "email": {"to": "managers", "subject": "Overdue: {{ item.label }} with {{ item.assignee }}"},
    },
    {
        "key": "escalate",
        "at": "+1 business day",
        "reassign": {"queue": "triage"},
        "priority": "raise",
        "note": "A business day overdue",
    },
    {
        "key": "nag",
        "at": "+2 business hours",
        "repeat_every": "4h",
        "times": 3,
        "email": {"to": "assignee", "subject": "Still open: {{ item.label }} (#{{ rule.occurrence }})"},
    },
]


def define(rules: list[dict[str, Any]] | None = None, **sla_extra: Any) -> None:
    load(
        OFFICE,
        screen_flow("check", fields=[{"name": "ok", "type": "boolean"}]),
        {
            **orchestration(
                "cases_sla",
                stages=[
                    stage(
                        "review",
                        {
                            "key": "check",
                            "label": "Check the case",
                            "kind": "interactive",
                            "flow": "check",
                            "assignee": {"user": "alice"},
                            "sla": {
                                "due": "2 business days",
                                "priority": "high",
                                "rules": RULES if rules is None else rules,
                                **sla_extra,
                            },
                        },
                    )
                ],
            ),
            "calendar": "office",
        },
    )


@pytest.fixture
def world(personas: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for u in (personas.alice, personas.bob, personas.charlie):
        u.email = f"{u.username}@example.com"
        u.save()
    dora: Any = UserFactory(username="dora", email="dora@example.com")
    PersonProfile.objects.create(user=personas.alice, manager=dora)
    GroupProfile.objects.create(group=Group.objects.get(name="support")).managers.add(personas.charlie)
    define()
    # Wednesday 23 December 2026, 15:00 in Berlin.
    clock = Clock(monkeypatch, berlin(2026, 12, 23, 15, 0))
    run = launch("cases_sla", record=make_case("Flooded kitchen"))
    item = WorkItem.objects.get(run=run)
    return clock, item, dora


def rule_emails() -> list[tuple[str, str]]:
    return [(r.to[0], r.subject) for r in OutboxEmail.objects.filter(kind="rule").order_by("id")]


def fired() -> list[tuple[str, int, int]]:
    return list(FiredRule.objects.order_by("id").values_list("rule", "occurrence", "assignment"))


def test_due_time_and_priority_come_from_the_sla_on_the_business_calendar(world: Any) -> None:
    _clock, item, _dora = world
    # Wed 15:00 + 2 business days: Thursday, then Friday 25 is Christmas, then the weekend.
    assert item.due_at == berlin(2026, 12, 28, 15, 0)
    assert item.priority == Priority.HIGH
    assert item.assigned_at == berlin(2026, 12, 23, 15, 0)
    # The first rule: 4 business hours before Monday 15:00.
    assert item.next_rule_at == berlin(2026, 12, 28, 11, 0)


def test_rules_fire_on_time_across_the_weekend_and_each_exactly_once(world: Any, mailoutbox: Any) -> None:
    clock, item, _dora = world
    mailoutbox.clear()
    # Nothing is due on Christmas Eve, on Christmas day or on the weekend.
    for t in (berlin(2026, 12, 24, 16), berlin(2026, 12, 25, 12), berlin(2026, 12, 27, 20)):
        assert sla.sla_tick(now=clock.at(t)).fired == 0
    assert fired() == []

    # Monday 11:00: the reminder, once however often the tick runs.
    for _ in range(3):
        sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 0)))
    assert fired() == [("remind", 0, 1)]
    assert rule_emails() == [("alice@example.com", "Due soon: Check the case (2026-12-28 15:00 CET)")]
    assert [m.to for m in mailoutbox] == [["alice@example.com"]]

    # Monday 15:00, due: alice's manager is told. 17:00 (+2 business hours: 15:00 + 2 h): the nag.
    sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 15, 0)))
    sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 17, 0)))
    assert fired()[1:] == [("tell_manager", 0, 1), ("nag", 0, 1)]
    assert rule_emails()[1:] == [
        ("dora@example.com", "Overdue: Check the case with alice"),
        ("alice@example.com", "Still open: Check the case (#1)"),
    ]
    # The nag repeats every 4 hours (wall-clock): 21:00.
    sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 21, 0)))
    assert fired()[-1] == ("nag", 1, 1)

    # Tuesday 15:00: one business day overdue: to the Triage queue, priority raised.
    report = sla.sla_tick(now=clock.at(berlin(2026, 12, 29, 15, 0)))
    item.refresh_from_db()
    assert item.assignee_queue is not None and item.assignee_queue.api_name == "triage"
    assert item.assignee_user is None and item.assignments == 2
    assert item.priority == Priority.URGENT  # high, raised
    assert ("escalate", 0, 1) in fired()
    # The nag's third time (Tue 01:00) fell before the reassignment: it was alice's, and is dropped.
    assert ("nag", 2, 1) in fired() and report.fired == 2  # 01:00 nag (late tick) and the escalation
    escalated = RunEvent.objects.filter(run=item.run, name="workitems.item.escalated").order_by("id")
    assert [e.payload["rule"] for e in escalated] == [
        "remind",
        "tell_manager",
        "nag",
        "nag",
        "nag",
        "escalate",
    ]
    last = escalated.last()
    assert last is not None
    assert last.payload["reassign"] == {"old": "alice", "new": "queue Triage"}
    assert last.payload["priority"] == {"old": "High", "new": "Urgent"}
    assert last.payload["note"] == "A business day overdue" and last.actor is None
    reassigned = RunEvent.objects.get(run=item.run, name="workitems.item.reassigned")
    assert reassigned.payload["reason"] == "SLA rule escalate"

    # Nothing is left: later ticks fire nothing.
    for t in (berlin(2026, 12, 30, 12), berlin(2027, 1, 4, 12)):
        assert sla.sla_tick(now=clock.at(t)).fired == 0
    item.refresh_from_db()
    assert item.next_rule_at is None
    assert len(fired()) == 6 and FiredRule.objects.filter(outcome__has_key="canceled").count() == 0


def test_a_completed_item_fires_nothing_and_its_undelivered_reminder_is_canceled(
    world: Any, personas: Any
) -> None:
    clock, item, _dora = world
    sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 0)))
    assert fired() == [("remind", 0, 1)]
    clock.at(berlin(2026, 12, 28, 12, 0))
    workitem_complete(item=item, user=personas.alice, data={"ok": "true"})
    assert sla.sla_tick(now=clock.at(berlin(2027, 1, 10, 12, 0))).fired == 0
    assert fired() == [("remind", 0, 1)]
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED
    # The renderer cancels a rule email whose item closed before it went out.
    row = OutboxEmail.objects.get(kind="rule")
    assert sla.rule_email_render(row) == "the item was completed before the email went out"


def test_a_reassignment_by_hand_cancels_the_escalation_and_the_new_assignee_gets_the_reminders(
    world: Any, personas: Any
) -> None:
    clock, item, _dora = world
    clock.at(berlin(2026, 12, 28, 10, 0))  # before the reminder
    workitem_reassign(item=item, actor=personas.charlie, user=personas.bob, reason="alice is away")
    item.refresh_from_db()
    assert (item.assignments, item.assigned_at) == (2, berlin(2026, 12, 28, 10, 0))
    canceled = FiredRule.objects.filter(outcome__has_key="canceled")
    assert list(canceled.values_list("rule", "assignment")) == [("escalate", 2)]
    for t in (
        berlin(2026, 12, 28, 11),
        berlin(2026, 12, 28, 15),
        berlin(2026, 12, 29, 15),
        berlin(2027, 1, 4, 9),
    ):
        sla.sla_tick(now=clock.at(t))
    # bob is reminded and nagged; support's manager hears of it at due; nobody moves the item.
    assert [r for r, _o, a in fired() if a == 2] == [
        "escalate",
        "remind",
        "tell_manager",
        "nag",
        "nag",
        "nag",
    ]
    item.refresh_from_db()
    assert item.assignee_user == personas.bob and item.assignments == 2
    assert ("bob@example.com", "Due soon: Check the case (2026-12-28 15:00 CET)") in rule_emails()
    assert not [e for e in rule_emails() if e[0] == "alice@example.com"]


def test_a_manager_moving_the_due_time_re_times_the_rules(world: Any, personas: Any) -> None:
    from workitems.services import workitem_set_schedule

    clock, item, _dora = world
    clock.at(berlin(2026, 12, 24, 10, 0))
    workitem_set_schedule(
        item=item,
        actor=personas.charlie,
        due_at=berlin(2027, 1, 8, 15, 0),
        priority=Priority.HIGH,
        reason="x",
    )
    item.refresh_from_db()
    assert item.next_rule_at == berlin(2027, 1, 8, 11, 0)
    assert sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 0))).fired == 0


def test_a_tick_that_dies_mid_rule_leaves_nothing_done_and_the_next_one_does_it_once(
    world: Any, monkeypatch: pytest.MonkeyPatch, mailoutbox: Any
) -> None:
    clock, _item, _dora = world
    mailoutbox.clear()
    real = sla._email
    calls = {"n": 0}

    def dies_after_writing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        sent = real(*args, **kwargs)  # the outbox row is written in the tick's transaction...
        if calls["n"] == 1:
            raise RuntimeError("worker killed")  # ...which then dies
        return sent

    monkeypatch.setattr(sla, "_email", dies_after_writing)
    # The item's transaction is rolled back (logged, counted), the tick goes on with the others.
    assert sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 0))).failed == 1
    assert fired() == [] and rule_emails() == [] and mailoutbox == []
    sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 0)))
    sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 1)))
    assert fired() == [("remind", 0, 1)]
    assert len(rule_emails()) == 1 and len(mailoutbox) == 1


def test_priority_and_due_from_expressions(personas: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    define(rules=[], priority=None)
    Clock(monkeypatch, berlin(2026, 12, 23, 15, 0))
    # (A second version: due at a date taken from the record, priority from an expression.)
    load(
        {
            **orchestration(
                "cases_sla",
                stages=[
                    stage(
                        "review",
                        {
                            "key": "check",
                            "kind": "interactive",
                            "flow": "check",
                            "assignee": {"user": "alice"},
                            "sla": {
                                "due_at": "'2027-01-05'",
                                "priority_expression": "'urgent' if record.name.startswith('VIP') else 'low'",
                            },
                        },
                    )
                ],
            ),
            "calendar": "office",
        }
    )
    vip = WorkItem.objects.get(run=launch("cases_sla", record=make_case("VIP flood")))
    plain = WorkItem.objects.get(run=launch("cases_sla", record=make_case("Dripping tap")))
    assert vip.priority == Priority.URGENT and plain.priority == Priority.LOW
    # A date is due at the end of that working day, in the calendar's zone.
    assert vip.due_at == berlin(2027, 1, 5, 17, 0) and vip.next_rule_at is None


def test_run_sla_state(world: Any) -> None:
    clock, item, _dora = world
    run_id = item.run_id
    assert sla.run_sla_states([run_id], now=berlin(2026, 12, 24, 10)) == {run_id: sla.ON_TRACK}
    # In the last quarter of the time between creation and due: at risk.
    assert sla.run_sla_states([run_id], now=berlin(2026, 12, 28, 1)) == {run_id: sla.AT_RISK}
    assert sla.run_sla_states([run_id], now=berlin(2026, 12, 28, 16)) == {run_id: sla.BREACHED}
    del clock


def test_the_run_page_shows_the_runs_sla_state_and_each_steps_due_time_and_priority(
    world: Any, client: Any
) -> None:
    clock, item, _dora = world
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    clock.at(berlin(2026, 12, 28, 16, 0))  # an hour past due
    page = client.get(f"/monitor/runs/{item.run_id}/").content.decode()
    assert '<span class="badge sla-badge sla-breached text-bg-danger" id="run-sla">Breached</span>' in page
    assert "2026-12-28 14:00" in page and '<span class="badge text-bg-danger">Late</span>' in page
    assert '<dd class="step-priority">High</dd>' in page
    clock.at(berlin(2026, 12, 24, 10, 0))
    assert 'id="run-sla">On track</span>' in client.get(f"/monitor/runs/{item.run_id}/").content.decode()


def test_my_work_sorts_by_due_time_overdue_first_and_undated_last(world: Any, client: Any) -> None:
    clock, first, _dora = world
    clock.at(berlin(2026, 12, 23, 16, 0))
    later = WorkItem.objects.get(run=launch("cases_sla", record=make_case("Later")))
    undated = WorkItem.objects.get(run=launch("cases_sla", record=make_case("Undated")))
    WorkItem.objects.filter(pk=undated.pk).update(due_at=None)
    client.force_login(first.assignee_user)
    page = client.get("/my-work/", {"sort": "due"}).content.decode()
    order = [page.index(f'data-item="{i.pk}"') for i in (first, later, undated)]
    assert order == sorted(order)
    assert 'aria-sort="ascending"' in page and "Due soonest first" in page


def test_a_rule_whose_queue_is_gone_says_so_and_the_other_rules_still_fire(world: Any) -> None:
    from workitems.models import Queue

    clock, item, _dora = world
    WorkItem.objects.filter(assignee_queue__api_name="triage").delete()
    Queue.objects.filter(api_name="triage").delete()
    for t in (berlin(2026, 12, 28, 11), berlin(2026, 12, 29, 15)):
        sla.sla_tick(now=clock.at(t))
    escalate = FiredRule.objects.get(rule="escalate")
    assert escalate.outcome["reassign"] == {
        "skipped": "the user, group or queue to reassign to no longer exists"
    }
    item.refresh_from_db()
    assert item.assignee_user is not None and item.priority == Priority.URGENT  # the priority still rose
    assert FiredRule.objects.filter(rule="remind").count() == 1


def test_an_item_whose_rules_raise_does_not_hold_back_the_others(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, item, _dora = world
    other = WorkItem.objects.get(run=launch("cases_sla", record=make_case("Other")))
    real = sla._fire_item

    def broken_for_one(pk: int, *args: Any) -> bool:
        if pk == item.pk:
            raise RuntimeError("a definition that no longer fits")
        return real(pk, *args)

    monkeypatch.setattr(sla, "_fire_item", broken_for_one)
    report = sla.sla_tick(now=clock.at(berlin(2026, 12, 28, 11, 0)))
    assert report.failed == 1 and report.fired == 1
    assert list(FiredRule.objects.values_list("item_id", flat=True)) == [other.pk]
