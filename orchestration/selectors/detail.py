"""The run detail page: the run with its stages and steps, its latest events, who holds each
step's work, and the emails it caused."""

from __future__ import annotations

from django.db.models import (
    Prefetch,
)

from ..models import (
    OutboxEmail,
    Run,
    RunEvent,
    StageRun,
    StepRun,
)
from ..registry import WORK_HOLDERS
from .base import MAX_ID, _runs

# --- run detail (monitoring) ------------------------------------------------------------------

# The run detail page shows the latest events only: a run that loops or retries for months
# must not make its page slower (the full log stays in the admin and the API).
RUN_DETAIL_EVENTS = 200


def run_detail_page(run_id: int) -> Run | None:
    """A run with its stage runs (each with its step runs and their flow versions): three
    queries, or None."""
    if not 0 < run_id <= MAX_ID:
        return None
    steps = Prefetch("step_runs", queryset=StepRun.objects.select_related("flow_version").order_by("id"))
    stages = Prefetch("stage_runs", queryset=StageRun.objects.order_by("id").prefetch_related(steps))
    return _runs().prefetch_related(stages).filter(pk=run_id).first()


def run_events_latest(run: Run, *, limit: int | None = None) -> tuple[list[RunEvent], bool]:
    """The run's latest `limit` events (default RUN_DETAIL_EVENTS), newest first, and whether
    older ones were left out. One query."""
    limit = limit or RUN_DETAIL_EVENTS
    rows = list(RunEvent.objects.filter(run=run).select_related("actor").order_by("-id")[: limit + 1])
    return rows[:limit], len(rows) > limit


def step_assignees(run: Run) -> dict[int, str]:
    """Who holds each step run's work, `{step_run_id: label}`, as the apps whose step kinds make
    that work tell it (registry.WORK_HOLDERS: workitems gives the work item's assignee)."""
    return work_holders([run.pk])


def work_holders(run_ids: list[int]) -> dict[int, str]:
    """Who holds each step run's work in these runs (registry.WORK_HOLDERS), `{step_run_id:
    label}`: one query per registered app, whatever the number of runs."""
    out: dict[int, str] = {}
    if not run_ids:
        return out
    for holders in WORK_HOLDERS:
        out.update(holders(run_ids))
    return out


# --- the email outbox -------------------------------------------------------------------------

EMAIL_FIELDS = (
    "pk",
    "kind",
    "status",
    "to",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_error",
    "sent_at",
    "step_run_id",
    "work_item_id",
    "idempotency_key",
)


def run_emails_by_step(run: Run) -> dict[int, list[OutboxEmail]]:
    """The outbox emails a run caused (its flows' and its work items' assignment emails), by
    step run id, oldest first. One query; the message bodies are not read."""
    out: dict[int, list[OutboxEmail]] = {}
    for email in OutboxEmail.objects.filter(run_id=run.pk).only(*EMAIL_FIELDS).order_by("id"):
        if email.step_run_id is not None:
            out.setdefault(email.step_run_id, []).append(email)
    return out


def work_item_emails(work_item_ids: list[int]) -> dict[int, list[OutboxEmail]]:
    """The assignment emails of these work items, by item id, oldest first. One query (none
    for no items)."""
    if not work_item_ids:
        return {}
    out: dict[int, list[OutboxEmail]] = {}
    rows = OutboxEmail.objects.filter(work_item_id__in=work_item_ids).only(*EMAIL_FIELDS).order_by("id")
    for email in rows:
        out.setdefault(int(email.work_item_id or 0), []).append(email)
    return out
