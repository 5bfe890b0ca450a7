"""Service levels of work items: when an item is due and how urgent it is (from its step's `sla`),
and the reminders and escalations its rules fire around the due time, each exactly once.

Timing. A rule's first time is the due time moved by its `at` (`-4h`, `due`, `+1 business day`),
on the step's business calendar (the step's, else the orchestration's, else 24/7); `repeat_every`
gives the next ones, `times` in all. An item keeps `next_rule_at`, the earliest time still to
come; the beat's tick (`sla_tick`, every minute) takes the open items whose time has come, on a
partial index, so its cost follows the rules due, not the items open.

Exactly once. Each firing is a `FiredRule` row, unique on (item, assignment, rule, occurrence),
written in the same transaction as what the rule does (its emails are outbox rows; a reassignment
and a priority change are rows too), under the run's lock. Two beats, a tick delivered twice or a
worker killed mid-tick: the second writer finds the row (or its transaction is rolled back with
the effects), so nothing is done twice or lost.

Cancellation. A completed or canceled item is no longer open: nothing fires (and a rule email not
yet delivered is canceled). A reassignment starts a new assignment (`assignments` + 1,
`assigned_at`): the firings whose time came before it belonged to the previous one and are dropped;
reminders and notifications still to come fire for the new assignee. A reassignment by a person
also cancels, for good, the rules that would reassign the item themselves: someone already decided
where it goes (a `FiredRule` row says so, in the item's history). A changed due time re-times what
has not fired.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from orchestration import engine, expressions
from orchestration.calendars import Calendar, Duration, parse_duration
from orchestration.documents import calendar_named
from orchestration.models import Run
from orchestration.outbox import outbox_email, outbox_write_many
from orchestration.validation import RULE_TEMPLATE_NAMES

from .models import FiredRule, GroupProfile, PersonProfile, Priority, Queue, WorkItem, WorkItemStatus

log = logging.getLogger(__name__)

PRIORITY_NAMES = {
    "low": Priority.LOW,
    "normal": Priority.NORMAL,
    "high": Priority.HIGH,
    "urgent": Priority.URGENT,
}
TICK_BATCH = 500
# What a rule's email templates and `to` expression see (validation checks the same names).
RULE_NAMES = RULE_TEMPLATE_NAMES


# --- the step's SLA and its calendar ----------------------------------------------------------------


def step_of(item: WorkItem) -> tuple[Any, Any]:
    """(orchestration document, step definition) of the item's step."""
    doc = engine.orchestration_doc(item.run.version)
    stage = doc.stage(item.step_run.stage_run.key)
    return doc, next(s for s in stage.steps if s.key == item.step_run.key)


def calendar_of(doc: Any, step: Any, cache: dict[str, Calendar] | None = None) -> Calendar:
    """The step's calendar, else the orchestration's (`doc` may be a callable giving the
    document: it is read only when the step names none), else 24/7."""
    sla = step.sla
    name = sla.calendar if sla is not None else None
    if not name:
        name = (doc() if callable(doc) else doc).calendar
    return calendar_named(name, cache)


def _as_due(value: Any, calendar: Calendar) -> dt.datetime | None:
    """An expression's value as a due time: a datetime as it is, a date at the end of that working
    day (or midnight in the calendar's zone), an ISO string parsed as either."""
    from django.utils.dateparse import parse_date, parse_datetime

    if value in (None, ""):
        return None
    if isinstance(value, str):
        text = value.strip()
        # A date alone is a date (parse_datetime would read it as midnight).
        parsed: Any = parse_date(text) if len(text) == 10 else (parse_datetime(text) or parse_date(text))
        if parsed is None:
            raise engine.EngineError(f"sla.due_at gave {value!r}, which is not a date or a time")
        value = parsed
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=calendar.tz)
    if isinstance(value, dt.date):
        end = calendar.end or dt.time(23, 59)
        return dt.datetime.combine(value, end, tzinfo=calendar.tz).astimezone(dt.UTC)
    raise engine.EngineError(f"sla.due_at gave {type(value).__name__}, not a date or a time")


@dataclass(frozen=True)
class Terms:
    due_at: dt.datetime | None = None
    priority: int = Priority.NORMAL
    next_rule_at: dt.datetime | None = None


def initial_terms(*, doc: Any, step: Any, context: dict[str, Any], now: dt.datetime) -> Terms:
    """The due time, priority and first rule time of a new item of `step` (`doc`: the
    orchestration document, or a callable giving it). Raises engine.EngineError for an expression
    that gives something else: the step fails, as a bad assignee does. No query unless the step
    has an SLA on a named calendar."""
    if step.due_in_hours:
        return Terms(due_at=now + dt.timedelta(hours=step.due_in_hours))
    sla = step.sla
    if sla is None:
        return Terms()
    calendar = calendar_of(doc, step)
    due = None
    if sla.due:
        due = calendar.add(now, parse_duration(sla.due))
    elif sla.due_at:
        due = _as_due(expressions.evaluate(sla.due_at, context), calendar)
    priority = Priority.NORMAL
    if sla.priority:
        priority = PRIORITY_NAMES[sla.priority]
    elif sla.priority_expression:
        said = str(expressions.evaluate(sla.priority_expression, context) or "").strip().lower()
        if said not in PRIORITY_NAMES:
            raise engine.EngineError(
                f"sla.priority_expression gave {said!r}: expected one of {', '.join(PRIORITY_NAMES)}"
            )
        priority = PRIORITY_NAMES[said]
    first = firings(sla, calendar, due) if due is not None and sla.rules else []
    return Terms(due_at=due, priority=priority, next_rule_at=first[0].at if first else None)


# --- when rules fire ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    rule: Any  # definitions.Rule
    occurrence: int  # 0 for the first time
    at: dt.datetime


def firings(sla: Any, calendar: Calendar, due: dt.datetime) -> list[Firing]:
    """Every time each rule fires, for an item due at `due`, in time order."""
    out = []
    for rule in sla.rules:
        at = calendar.add(due, parse_duration(rule.at, signed=True))
        every = parse_duration(rule.repeat_every) if rule.repeat_every else None
        for n in range(rule.times):
            if n:
                assert every is not None
                at = calendar.add(at, every)
            out.append(Firing(rule, n, at))
    return sorted(out, key=lambda f: (f.at, f.rule.key, f.occurrence))


def _cutoff(item: WorkItem) -> dt.datetime | None:
    """Firings at or before this belonged to an earlier assignment (None: the first one)."""
    return item.assigned_at if item.assignments > 1 else None


def pending(item: WorkItem, sla: Any, calendar: Calendar, fired: set[tuple[str, int]]) -> list[Firing]:
    """The item's firings not yet done for its current assignment."""
    if item.due_at is None or sla is None or not sla.rules:
        return []
    cutoff = _cutoff(item)
    return [
        f
        for f in firings(sla, calendar, item.due_at)
        if (f.rule.key, f.occurrence) not in fired and (cutoff is None or f.at > cutoff)
    ]


def _fired(item: WorkItem) -> set[tuple[str, int]]:
    return set(
        FiredRule.objects.filter(item=item, assignment=item.assignments).values_list("rule", "occurrence")
    )


def reschedule(item: WorkItem, *, save: bool = True) -> dt.datetime | None:
    """Set `next_rule_at` from the item's due time, assignment and what has fired (after the item
    is created, reassigned or re-timed; in the caller's transaction)."""
    nxt = None
    if item.status == WorkItemStatus.ASSIGNED and item.due_at is not None:
        doc, step = step_of(item)
        if step.sla is not None and step.sla.rules:
            left = pending(item, step.sla, calendar_of(doc, step), _fired(item) if item.pk else set())
            nxt = left[0].at if left else None
    item.next_rule_at = nxt
    if save and item.pk:
        WorkItem.objects.filter(pk=item.pk).update(next_rule_at=nxt)
    return nxt


def cancel_reassigning_rules(item: WorkItem, *, actor_id: int | None) -> int:
    """After a person reassigned the item: the firings still to come of rules that reassign are
    canceled (recorded as such, so they never fire). Returns how many."""
    if item.due_at is None:
        return 0
    doc, step = step_of(item)
    if step.sla is None:
        return 0
    left = [f for f in pending(item, step.sla, calendar_of(doc, step), _fired(item)) if f.rule.reassign]
    FiredRule.objects.bulk_create(
        [
            FiredRule(
                item=item,
                assignment=item.assignments,
                rule=f.rule.key,
                occurrence=f.occurrence,
                scheduled_for=f.at,
                outcome={"canceled": "the item was reassigned by hand", "by": actor_id},
            )
            for f in left
        ],
        ignore_conflicts=True,
    )
    return len(left)


# --- the tick -----------------------------------------------------------------------------------------


@dataclass
class TickReport:
    items: int = 0  # items looked at
    fired: int = 0  # firings done (a FiredRule row each)
    skipped: int = 0  # firings found done already (another beat, a retry)
    failed: int = 0  # items whose firing raised (logged; retried at the next tick)
    fired_rules: list[str] = field(default_factory=list)


def sla_tick(*, now: dt.datetime | None = None, batch: int = TICK_BATCH) -> TickReport:
    """Fire every rule whose time has come (`now`: the clock, for tests and replays)."""
    now = now or timezone.now()
    report = TickReport()
    while True:
        due = list(
            WorkItem.objects.filter(status=WorkItemStatus.ASSIGNED, next_rule_at__lte=now)
            .order_by("next_rule_at", "id")
            .values_list("pk", "run_id")[:batch]
        )
        if not due:
            return report
        progressed = False
        for pk, run_id in due:
            report.items += 1
            try:
                progressed |= _fire_item(pk, run_id, now, report)
            except Exception:
                # One item's failure (a definition that no longer fits, a database error) must
                # not hold back the others: logged, and retried at the next tick (its
                # transaction rolled back, so nothing of it was done).
                log.exception("work item %s: its SLA rules could not fire; retried at the next tick", pk)
                report.failed += 1
        if not progressed or len(due) < batch:
            return report


def _fire_item(pk: int, run_id: int, now: dt.datetime, report: TickReport) -> bool:
    """Fire what is due on one item, in one transaction under its run's lock. Returns whether
    the item's next time moved on (so that the tick does not take it again)."""
    calendars: dict[str, Calendar] = {}
    with transaction.atomic():
        engine.lock_run(run_id)
        item = (
            WorkItem.objects.select_related(
                "run__version", "step_run__stage_run", "assignee_group", "assignee_queue"
            )
            .filter(pk=pk)
            .first()
        )
        if item is None or item.status != WorkItemStatus.ASSIGNED:
            return True
        if item.next_rule_at is None or item.next_rule_at > now:
            return True  # another tick did it
        doc, step = step_of(item)
        sla = step.sla
        calendar = calendar_of(doc, step, calendars)
        for firing in pending(item, sla, calendar, _fired(item)):
            if firing.at > now:
                break
            assignment = item.assignments
            try:
                with transaction.atomic():  # a savepoint: a duplicate key leaves the rest alone
                    row = FiredRule.objects.create(
                        item=item,
                        assignment=assignment,
                        rule=firing.rule.key,
                        occurrence=firing.occurrence,
                        scheduled_for=firing.at,
                    )
            except IntegrityError:
                report.skipped += 1
                continue
            row.outcome = _act(item, doc, step, firing, now, calendar)
            FiredRule.objects.filter(pk=row.pk).update(outcome=row.outcome)
            report.fired += 1
            report.fired_rules.append(f"{item.pk}:{firing.rule.key}:{firing.occurrence}")
            if item.assignments != assignment:
                break  # reassigned by the rule: what was still due belonged to the old assignment
        before = item.next_rule_at
        reschedule(item)
        return item.next_rule_at != before


# --- what a rule does -----------------------------------------------------------------------------------


def _act(
    item: WorkItem, doc: Any, step: Any, firing: Firing, now: dt.datetime, calendar: Calendar
) -> dict[str, Any]:
    rule = firing.rule
    done: dict[str, Any] = {}
    if rule.priority:
        old = item.priority
        new = min(old + 1, Priority.URGENT) if rule.priority == "raise" else PRIORITY_NAMES[rule.priority]
        if new != old:
            item.priority = new
            WorkItem.objects.filter(pk=item.pk).update(priority=new)
        done["priority"] = {"old": Priority(old).label, "new": Priority(new).label}
    if rule.reassign is not None:
        target = _reassign_target(item, rule.reassign)
        if target is None:
            done["reassign"] = {
                "skipped": "the assignee has no manager"
                if rule.reassign.manager
                else "the user, group or queue to reassign to no longer exists"
            }
        else:
            from .services.completion import reassign_locked

            before = item.assignee_label
            reassign_locked(item, actor_id=None, reason=f"SLA rule {rule.key}", now=now, **target)
            done["reassign"] = {"old": before, "new": item.assignee_label}
    if rule.email is not None:
        done["emailed"] = _email(item, doc, step, firing, calendar)
    from .services.completion import workitem_log

    workitem_log(
        item,
        "escalated",
        None,
        rule=rule.key,
        occurrence=firing.occurrence + 1,
        scheduled_for=firing.at.isoformat(),
        note=rule.note,
        **done,
    )
    return done


def _reassign_target(item: WorkItem, reassign: Any) -> dict[str, Any] | None:
    User = get_user_model()
    if reassign.manager:
        manager = _managers(item)
        return {"user": manager[0]} if manager else None
    # Checked when the definition was imported; gone since (deleted, deactivated): None, and the
    # firing says so instead of failing every minute.
    if reassign.user:
        user = User._default_manager.filter(**{User.USERNAME_FIELD: reassign.user}, is_active=True).first()
        return {"user": user} if user else None
    if reassign.group:
        group = Group.objects.filter(name=reassign.group).first()
        return {"group": group} if group else None
    queue = Queue.objects.filter(api_name=reassign.queue).first()
    return {"queue": queue} if queue else None


def _managers(item: WorkItem) -> list[Any]:
    """The assignee's manager; a group's managers; the managers of a queue's groups (active)."""
    User = get_user_model()
    ids: Any
    if item.assignee_user_id:
        ids = PersonProfile.objects.filter(user_id=item.assignee_user_id).values("manager_id")
    elif item.assignee_group_id:
        ids = GroupProfile.objects.filter(group_id=item.assignee_group_id).values("managers")
    else:
        ids = GroupProfile.objects.filter(group__work_queues=item.assignee_queue_id).values("managers")
    return list(User._default_manager.filter(pk__in=ids, is_active=True).order_by("pk"))


def _email_recipients(item: WorkItem, to: str, context: dict[str, Any]) -> list[Any]:
    from .emails import recipients

    User = get_user_model()
    active = User._default_manager.filter(is_active=True).exclude(email="")
    if to == "assignee":
        return recipients(item)
    if to == "managers":
        return [u for u in _managers(item) if u.email]
    if to.startswith("user:"):
        return list(active.filter(**{User.USERNAME_FIELD: to[5:].strip()}))
    if to.startswith("group:"):
        return list(active.filter(groups__name=to[6:].strip()).distinct().order_by("pk"))
    value = expressions.evaluate(to, context, names=RULE_NAMES)
    if value in (None, ""):
        return []
    if "@" in str(value):
        return [Address(email=str(value).strip())]
    return list(active.filter(Q(**{User.USERNAME_FIELD: str(value)})))


@dataclass(frozen=True)
class Address:
    """A recipient an expression named by address alone (no account)."""

    email: str
    pk: int | None = None


def _email(item: WorkItem, doc: Any, step: Any, firing: Firing, calendar: Calendar) -> list[str]:
    """The rule's email, rendered now and written to the outbox (one row per recipient, keyed by
    the firing: a retried tick writes none twice)."""
    from .emails import item_url

    run: Run = item.run
    context = {
        "record": engine.record_context(run),
        "vars": run.variables,
        "step": {"key": step.key, "label": step.label or step.key},
        "item": {
            "label": item.label,
            "url": item_url(item),
            # In the calendar's zone, which says when work is due where it is done.
            "due_at": item.due_at.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M %Z")
            if item.due_at
            else "",
            "assignee": item.assignee_label,
            "priority": Priority(item.priority).label,
        },
        "rule": {"key": firing.rule.key, "occurrence": firing.occurrence + 1, "note": firing.rule.note},
        "run": {"id": run.pk, "orchestration": doc.label or doc.api_name},
    }
    email = firing.rule.email
    try:
        subject = " ".join(expressions.render(email.subject, context, names=RULE_NAMES).split())[:200]
        body = expressions.render(email.body, context, names=RULE_NAMES) if email.body else ""
    except expressions.ExpressionError as exc:
        log.warning("work item %s: rule %s's email template failed: %s", item.pk, firing.rule.key, exc)
        subject, body = f"{item.label}: {firing.rule.key}", ""
    body = (body.strip() + "\n\n" if body.strip() else "") + f"Open it: {context['item']['url']}\n"
    rows, sent = [], []
    seen: set[str] = set()
    for user in _email_recipients(item, email.to.strip(), context):
        address = user.email.strip().lower()
        if address in seen:
            continue
        seen.add(address)
        key = f"workitem:{item.pk}:rule:{firing.rule.key}:{item.assignments}:{firing.occurrence}:{address}"
        rows.append(
            outbox_email(
                kind="rule",
                key=key[:250],
                to=[user.email],
                subject=subject,
                body=body,
                run_id=item.run_id,
                step_run_id=item.step_run_id,
                work_item_id=item.pk,
                recipient_id=user.pk or None,
            )
        )
        sent.append(user.email)
    outbox_write_many(emails=rows)
    return sent


def rule_email_render(row: Any) -> str:
    """The outbox renderer of rule emails: written whole by the tick; canceled if the item was
    closed before it went out (a reminder for finished work helps no one)."""
    item = WorkItem.objects.filter(pk=row.work_item_id or 0).only("status").first()
    if item is None:
        return "the work item no longer exists"
    if item.status != WorkItemStatus.ASSIGNED:
        return f"the item was {item.get_status_display().lower()} before the email went out"
    return ""


# --- a run's SLA state ------------------------------------------------------------------------------------

ON_TRACK, AT_RISK, BREACHED = "on_track", "at_risk", "breached"
SLA_LABELS = {ON_TRACK: "On track", AT_RISK: "At risk", BREACHED: "Breached"}


def sla_state(item: WorkItem, now: dt.datetime, risk_from: dt.datetime | None = None) -> str | None:
    """One item: breached (open past due, or completed late), at risk (open, from `risk_from`:
    its step's `sla.at_risk` before due, see at_risk_from; without one, the last quarter of its
    time), on track; None without a due."""
    if item.due_at is None:
        return None
    if item.status == WorkItemStatus.COMPLETED:
        return BREACHED if item.completed_at and item.completed_at > item.due_at else ON_TRACK
    if item.status != WorkItemStatus.ASSIGNED:
        return None
    if now > item.due_at:
        return BREACHED
    if risk_from is None:
        risk_from = item.due_at - (item.due_at - item.created_at) / 4
    return AT_RISK if now >= risk_from else ON_TRACK


def at_risk_from(
    item: WorkItem, doc: Any, stage_key: str, step_key: str, calendars: dict[str, Calendar]
) -> dt.datetime | None:
    """When the item becomes at risk by its step's `sla.at_risk` (`doc`: its run's orchestration
    document): that long before due, counted on the step's calendar as a rule's `at: -…` is (4
    business hours before a Monday 11:00 due is Friday 15:00 on a 9-to-5 calendar). None when the
    step gives no at_risk (the default applies) or is not in `doc`."""
    if item.due_at is None:
        return None
    try:
        stage = doc.stage(stage_key)
    except KeyError:
        return None
    step = next((s for s in stage.steps if s.key == step_key), None)
    sla = getattr(step, "sla", None)
    if sla is None or not sla.at_risk:
        return None
    window = parse_duration(sla.at_risk)
    before = Duration(-window.amount, window.unit, window.business)
    return calendar_of(doc, step, calendars).add(item.due_at, before)


def _item_states(items: Any, now: dt.datetime) -> dict[int, str]:
    """item id -> SLA state ("" without one) of `items` (loaded with _SLA_FIELDS). The step's
    definition and calendar are read only for an open item inside its due time (each calendar
    once per call; parsed documents are cached per process)."""
    calendars: dict[str, Calendar] = {}
    out = {}
    for item in items:
        risk_from = None
        if item.status == WorkItemStatus.ASSIGNED and item.due_at is not None and now <= item.due_at:
            doc = engine.orchestration_doc(item.run.version)
            risk_from = at_risk_from(item, doc, item.step_run.stage_run.key, item.step_run.key, calendars)
        out[item.pk] = sla_state(item, now, risk_from) or ""
    return out


# What _item_states reads of an item, in the one query of its caller.
_SLA_RELATED = ("run__version", "step_run__stage_run")
_SLA_FIELDS = (
    "pk",
    "run_id",
    "step_run_id",
    "status",
    "due_at",
    "created_at",
    "completed_at",
    "run__version__id",
    "run__version__checksum",
    "step_run__key",
    "step_run__stage_run__key",
)


def run_sla_states(run_ids: list[int], now: dt.datetime | None = None) -> dict[int, str]:
    """The worst state of each run's items with a due time (one query): breached over at risk over
    on track; runs without any are left out."""
    now = now or timezone.now()
    rank = {ON_TRACK: 0, AT_RISK: 1, BREACHED: 2}
    out: dict[int, str] = {}
    items = list(
        WorkItem.objects.filter(run_id__in=run_ids, due_at__isnull=False)
        .select_related(*_SLA_RELATED)
        .only(*_SLA_FIELDS)
    )
    states = _item_states(items, now)
    for item in items:
        state = states[item.pk]
        if state and rank[state] >= rank.get(out.get(item.run_id, ""), -1):
            out[item.run_id] = state
    return out


def run_work(run_id: int) -> Any:
    """registry.run_work for the run page: each step run's latest work item (its Work Guide
    address, due time, priority, SLA state) and the run's worst SLA state. One query."""
    from django.urls import reverse

    from orchestration.registry import RunWork, StepWork

    now = timezone.now()
    latest: dict[int, WorkItem] = {}
    rows = WorkItem.objects.filter(run_id=run_id).select_related(*_SLA_RELATED).only(*_SLA_FIELDS, "priority")
    for item in rows:
        if item.step_run_id not in latest or item.pk > latest[item.step_run_id].pk:
            latest[item.step_run_id] = item
    states = _item_states(latest.values(), now)
    rank = {ON_TRACK: 0, AT_RISK: 1, BREACHED: 2}
    worst = ""
    steps = {}
    for sr, item in latest.items():
        state = states[item.pk]
        if state and rank[state] > rank.get(worst, -1):
            worst = state
        steps[sr] = StepWork(
            url=reverse("workitems:guide_item", args=[item.pk]),
            due_at=item.due_at,
            priority="" if item.priority == Priority.NORMAL else Priority(item.priority).label,
            sla=state,
        )
    return RunWork(steps=steps, sla=worst)
