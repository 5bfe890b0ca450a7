"""A hypothesis state machine over the real services on the real PostgreSQL test database.

Rules launch runs (from the API's service and by saving records), complete, claim, release and
reassign work items (sometimes as the wrong person, which must be refused), cancel, suspend,
resume and re-check runs, retry and skip failed steps, and update records. Some rules run two of
these at once in threads on the same run or item: they serialise on the run lock, so exactly
one of two conflicting changes wins and the other gets the documented error, never a crash or a
half-applied state. After every step the invariants are checked on the database itself, not on
the model.

Budget: CI runs a fixed (derandomized) set of examples, STATEFUL_EXAMPLES x STATEFUL_STEPS
(default 12 x 40, about a minute on PostgreSQL). To hunt for bugs, run it long and random:

    STATEFUL_EXAMPLES=300 STATEFUL_STEPS=40 STATEFUL_RANDOM=1 \
        pytest tests/properties/test_engine_state_machine.py
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orchestration.models import ExecState, Run, RunEvent, RunStatus, StageRun, StageStatus, StepRun
from orchestration.services import (
    ActionNotAllowed,
    run_cancel,
    run_launch,
    run_recheck,
    run_resume,
    run_suspend,
    step_retry,
    step_skip,
)
from records.models import Record, RecordType
from records.services import record_create, record_update
from workitems.models import Queue, WorkItem, WorkItemStatus
from workitems.services import (
    WorkItemClosed,
    workitem_claim,
    workitem_complete,
    workitem_reassign,
    workitem_release,
)

from . import engine_machine_support as sm

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "12"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "40"))
MACHINE_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    # CI replays the same examples every time (no flaky reds from a new random draw; threads
    # still interleave as they will). STATEFUL_RANDOM=1 explores new ones.
    derandomize=not os.environ.get("STATEFUL_RANDOM"),
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

ACTIVE = (RunStatus.IN_PROGRESS, RunStatus.ERROR)  # where a work item can be completed
FINISHED = (RunStatus.COMPLETED, RunStatus.CANCELED)
ENDED_STEP = (StageStatus.COMPLETED, StageStatus.DISCONTINUED, StageStatus.ERROR)
ADMIN_ACTIONS: dict[str, set[str]] = {
    RunStatus.IN_PROGRESS: {"cancel", "suspend", "recheck"},
    RunStatus.SUSPENDED: {"cancel", "resume"},
    RunStatus.ERROR: {"cancel", "recheck"},
}
RUN_ACTIONS = {"cancel": run_cancel, "suspend": run_suspend, "resume": run_resume, "recheck": run_recheck}

severities = st.sampled_from(["Low", "High"])
statuses = st.sampled_from(["ok", "fail", "go", "closed"])
# Valid input only (NUL is refused by validation, which is not what this machine is about).
texts = st.text(st.characters(min_codepoint=32, max_codepoint=0x17F), max_size=10)
form_data = st.fixed_dictionaries({"approved": st.booleans(), "comment": texts})


class Picks:
    """Choices among rows read from the database, drawn as plain integers.

    A `sampled_from` over rows would make the shape of the draws depend on the database, which
    the racing threads make differ from one replay to the next (which of two completions won);
    hypothesis then reports its data generation as flaky. Fixed integers taken modulo the
    number of rows keep every example's draws the same shape."""

    def __init__(self, numbers: list[int]) -> None:
        self.numbers = numbers
        self.used = 0

    def choose(self, rows: Any) -> Any:
        rows = list(rows)
        number = self.numbers[self.used % len(self.numbers)]
        self.used += 1
        return rows[number % len(rows)]

    def __repr__(self) -> str:
        return f"Picks({self.numbers!r})"


PICKS = st.lists(st.integers(0, 1 << 16), min_size=3, max_size=3).map(Picks)


def _label(assignee: tuple[str, str]) -> Any:
    kind, name = assignee
    if kind == "user":
        return {"user": sm_users[name]}
    if kind == "group":
        return {"group": Group.objects.get(name=name)}
    return {"queue": Queue.objects.get(api_name=name)}


sm_users: dict[str, Any] = {}


OUTCOMES: Counter[str] = Counter()


def outcome(rule_name: str, *results: Any) -> None:
    """Count what happened, so that the test can check the races and refusals really ran (a
    machine whose rules all bail out early would prove nothing); also a hypothesis event."""
    what = rule_name + ": " + " / ".join(type(r).__name__ for r in results)
    OUTCOMES[what] += 1
    event(what)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, str] = {}  # run id -> orchestration api name
        self.records: dict[int, dict[str, str]] = {}  # record id -> severity, status
        self.rec_launches: Counter[int] = Counter()  # record id -> sm_rec runs expected
        self.completions: Counter[int] = Counter()  # item id -> successful completions
        self.assignee: dict[int, tuple[str, str]] = {}  # item id -> who holds it, per the model
        self.claims: dict[int, str | None] = {}
        self.events_seen: dict[int, list[tuple[int, str]]] = {}
        self.attempts: dict[int, int] = {}  # step run id -> highest attempts seen
        self.rt = RecordType.objects.get(api_name="case")

    # -- helpers -------------------------------------------------------------------------------
    def _record(self, severity: str, status: str) -> Record:
        before = set(Run.objects.filter(orchestration__api_name="sm_rec").values_list("pk", flat=True))
        record = record_create(
            record_type=self.rt,
            name=f"case {len(self.records)}",
            values={"severity": severity, "status": status},
        )
        self.records[record.pk] = {"severity": severity, "status": status}
        if severity == "High":
            self.rec_launches[record.pk] += 1
        self._collect_rec_runs(before)
        return record

    def _collect_rec_runs(self, before: set[int]) -> None:
        for pk in (
            Run.objects.filter(orchestration__api_name="sm_rec")
            .exclude(pk__in=before)
            .values_list("pk", flat=True)
        ):
            self.runs[pk] = "sm_rec"

    def _items(self, data: Picks, *, open_only: bool) -> WorkItem | None:
        qs = (
            WorkItem.objects.filter(run_id__in=list(self.runs))
            .select_related("step_run", "run")
            .order_by("id")
        )
        if open_only:
            qs = qs.filter(status=WorkItemStatus.ASSIGNED)
        items = list(qs)
        if not items:
            return None
        item = data.choose(items)
        self._know(item)
        return item

    def _know(self, item: WorkItem) -> None:
        self.assignee.setdefault(item.pk, sm.INITIAL_ASSIGNEE[item.step_run.key])
        self.claims.setdefault(item.pk, None)

    def _run(self, data: Picks) -> Run:
        run_id = data.choose(sorted(self.runs))
        return Run.objects.get(pk=run_id)

    def _expect_complete(self, item: WorkItem, username: str) -> type[Exception] | None:
        """What workitem_complete must answer, from the model and the state just read."""
        if not sm.may_act(self.assignee[item.pk], username):
            return PermissionDenied
        if item.status != WorkItemStatus.ASSIGNED:
            return WorkItemClosed
        claimed = self.claims[item.pk]
        if claimed not in (None, username):
            return PermissionDenied
        if item.run.status not in ACTIVE:
            return WorkItemClosed
        return None

    def _complete(self, item_id: int, username: str, values: dict[str, Any]) -> WorkItem:
        return workitem_complete(item=WorkItem.objects.get(pk=item_id), user=sm_users[username], data=values)

    def _reassign(self, item_id: int, target: tuple[str, str], actor: str = "charlie") -> WorkItem:
        return workitem_reassign(
            item=WorkItem.objects.get(pk=item_id), actor=sm_users[actor], reason="machine", **_label(target)
        )

    # -- launching -----------------------------------------------------------------------------
    @rule(severity=severities, status=statuses, note=texts, reuse=st.booleans(), data=PICKS)
    def launch(self, severity: str, status: str, note: str, reuse: bool, data: Picks) -> None:
        if reuse and self.records:
            record = Record.objects.get(pk=data.choose(sorted(self.records)))
        else:
            record = self._record(severity, status)
        run = run_launch(
            orchestration="sm_par", record=record, inputs={"note": note}, actor=sm_users["admin"]
        )
        self.runs[run.pk] = "sm_par"
        run.refresh_from_db()
        assert run.variables["note"] == (note or None)  # an empty text input is stored as no value
        assert run.status in (RunStatus.IN_PROGRESS, RunStatus.COMPLETED), run.error

    @rule(severity=severities, status=statuses)
    def launch_refused_without_permission(self, severity: str, status: str) -> None:
        record = self._record(severity, status)
        before = Run.objects.filter(orchestration__api_name="sm_par").count()
        with pytest.raises(PermissionDenied):
            run_launch(orchestration="sm_par", record=record, actor=sm_users["bob"])
        assert Run.objects.filter(orchestration__api_name="sm_par").count() == before

    @rule(severity=severities, status=statuses)
    def create_record(self, severity: str, status: str) -> None:
        self._record(severity, status)

    @precondition(lambda self: self.records)
    @rule(severity=severities, status=statuses, data=PICKS)
    def update_record(self, severity: str, status: str, data: Picks) -> None:
        record_id = data.choose(sorted(self.records))
        old = self.records[record_id]
        before = set(Run.objects.filter(orchestration__api_name="sm_rec").values_list("pk", flat=True))
        record_update(
            record=Record.objects.get(pk=record_id),
            values={"severity": severity, "status": status},
            actor=None,
        )
        # changed_to_meet: a save launches sm_rec only when severity becomes High.
        if severity == "High" and old["severity"] != "High":
            self.rec_launches[record_id] += 1
        self.records[record_id] = {"severity": severity, "status": status}
        self._collect_rec_runs(before)

    # -- work items ----------------------------------------------------------------------------
    @precondition(lambda self: self.runs)
    @rule(username=st.sampled_from(sm.WORKERS), values=form_data, as_holder=st.booleans(), data=PICKS)
    def complete(self, username: str, values: dict[str, Any], as_holder: bool, data: Picks) -> None:
        # Half the time the person who holds an open item finishes it (runs move on, to later
        # stages, decisions and rework loops); otherwise anyone tries any item, closed or not.
        item = self._items(data, open_only=as_holder)
        if item is None:
            return
        if as_holder:
            holders = [u for u in sm.WORKERS if self._expect_complete(item, u) is None]
            username = data.choose(holders) if holders else username
        expected = self._expect_complete(item, username)
        try:
            outcome("complete", self._complete(item.pk, username, values))
        except (PermissionDenied, WorkItemClosed) as exc:
            outcome("complete", exc)
            assert isinstance(exc, expected or ()), (expected, exc)
            return
        assert expected is None, f"completion by {username} should have been refused ({expected})"
        self.completions[item.pk] += 1

    @precondition(lambda self: self.runs)
    @rule(username=st.sampled_from(sm.WORKERS), release=st.booleans(), data=PICKS)
    def claim_or_release(self, username: str, release: bool, data: Picks) -> None:
        item = self._items(data, open_only=False)
        if item is None:
            return
        from django.core.exceptions import ValidationError

        if release:
            try:
                workitem_release(item=item, user=sm_users[username])
            except WorkItemClosed:
                # A closed item keeps who held it: there is nothing to release.
                assert WorkItem.objects.get(pk=item.pk).status != WorkItemStatus.ASSIGNED
                return
            except PermissionDenied:
                assert self.claims[item.pk] != username
                return
            assert self.claims[item.pk] == username
            self.claims[item.pk] = None
            return
        allowed = sm.may_act(self.assignee[item.pk], username)
        try:
            workitem_claim(item=item, user=sm_users[username])
        except PermissionDenied:
            assert not allowed
            return
        except WorkItemClosed:
            assert allowed and item.status != WorkItemStatus.ASSIGNED
            return
        except ValidationError:
            assert self.assignee[item.pk][0] == "user" or self.claims[item.pk] not in (None, username)
            return
        assert allowed and item.status == WorkItemStatus.ASSIGNED
        assert self.assignee[item.pk][0] != "user" and self.claims[item.pk] in (None, username)
        self.claims[item.pk] = username

    @precondition(lambda self: self.runs)
    @rule(new=st.sampled_from(sm.ASSIGNEES), as_manager=st.booleans(), data=PICKS)
    def reassign(self, new: tuple[str, str], as_manager: bool, data: Picks) -> None:
        item = self._items(data, open_only=True)
        if item is None:
            return
        if not as_manager:
            with pytest.raises(PermissionDenied):
                self._reassign(item.pk, new, actor="alice")
            return
        self._reassign(item.pk, new)  # open, and nobody else is acting on it: must succeed
        self.assignee[item.pk] = new
        self.claims[item.pk] = None

    # -- admin actions -------------------------------------------------------------------------
    @precondition(lambda self: self.runs)
    @rule(action=st.sampled_from(sorted(RUN_ACTIONS)), as_admin=st.booleans(), data=PICKS)
    def run_action(self, action: str, as_admin: bool, data: Picks) -> None:
        run = self._run(data)
        if not as_admin:
            with pytest.raises(PermissionDenied):
                RUN_ACTIONS[action](run_id=run.pk, actor=sm_users["alice"])
            return
        allowed = action in ADMIN_ACTIONS.get(run.status, set())
        try:
            RUN_ACTIONS[action](run_id=run.pk, actor=sm_users["admin"], reason="machine")
        except ActionNotAllowed:
            assert not allowed, f"{action} refused on a run that is {run.status}"
            return
        assert allowed, f"{action} accepted on a run that is {run.status}"
        run.refresh_from_db()
        if action == "cancel":
            assert run.status == RunStatus.CANCELED
        elif action == "suspend":
            assert run.status == RunStatus.SUSPENDED
        else:
            assert run.status != RunStatus.SUSPENDED

    @precondition(lambda self: self.runs)
    @rule(skip=st.booleans(), with_score=st.booleans(), any_step=st.booleans(), data=PICKS)
    def retry_or_skip(self, skip: bool, with_score: bool, any_step: bool, data: Picks) -> None:
        qs = (
            StepRun.objects.filter(run_id__in=list(self.runs))
            .select_related("stage_run", "run")
            .order_by("id")
        )
        steps = list(qs if any_step else qs.filter(status=StageStatus.ERROR))
        if not steps:
            return
        sr = data.choose(steps)
        retryable = sr.status == StageStatus.ERROR and sr.stage_run.status == StageStatus.IN_PROGRESS
        before_attempts = sr.attempts
        try:
            if skip:
                outputs = {"score": 3} if with_score and sm.STEP_FLOWS[sr.key] == sm.FLAKY else {}
                step_skip(step_run_id=sr.pk, outputs=outputs, actor=sm_users["admin"], reason="machine")
            else:
                step_retry(step_run_id=sr.pk, actor=sm_users["admin"], reason="machine")
        except ActionNotAllowed:
            assert not retryable or (not skip and sr.run.status not in ACTIVE), (sr, sr.run.status)
            return
        assert retryable and (skip or sr.run.status in ACTIVE)
        sr.refresh_from_db()
        if skip:
            assert sr.status == StageStatus.COMPLETED
        else:
            assert sr.attempts >= before_attempts

    # -- two at once ---------------------------------------------------------------------------
    @precondition(lambda self: self.runs)
    @rule(values=form_data, data=PICKS)
    def race_two_completions(self, values: dict[str, Any], data: Picks) -> None:
        item = self._items(data, open_only=True)
        if item is None:
            return
        holders = sorted(u for u in sm.WORKERS if sm.may_act(self.assignee[item.pk], u))
        first = data.choose(holders)
        second = data.choose(holders)  # the same person in two tabs, or two people
        expected = {u: self._expect_complete(item, u) for u in (first, second)}
        results = sm.race(
            lambda: self._complete(item.pk, first, values), lambda: self._complete(item.pk, second, values)
        )
        outcome("two completions", *results)
        winners = [r for r in results if isinstance(r, WorkItem)]
        for r in results:
            assert isinstance(r, WorkItem | WorkItemClosed | PermissionDenied), r
        assert len(winners) <= 1, results
        if any(e is None for e in expected.values()):
            assert len(winners) == 1, results
            winner = sm_username(winners[0].completed_by_id)
            self.completions[item.pk] += 1
            for r in results:
                if isinstance(r, WorkItemClosed):
                    assert f"completed by {winner}" in str(r)
        else:
            assert not winners, (expected, results)

    @precondition(lambda self: self.runs)
    @rule(values=form_data, data=PICKS)
    def race_complete_and_reassign(self, values: dict[str, Any], data: Picks) -> None:
        item = self._items(data, open_only=True)
        if item is None:
            return
        holders = sorted(u for u in sm.WORKERS if self._expect_complete(item, u) in (None, WorkItemClosed))
        holders = [u for u in holders if sm.may_act(self.assignee[item.pk], u)]
        if not holders:
            return
        user = data.choose(holders)
        elsewhere = [a for a in sm.ASSIGNEES if not sm.may_act(a, user)]
        target = data.choose(elsewhere)
        could_complete = self._expect_complete(item, user) is None
        done, moved = sm.race(
            lambda: self._complete(item.pk, user, values), lambda: self._reassign(item.pk, target)
        )
        outcome("complete + reassign", done, moved)
        assert isinstance(done, WorkItem | WorkItemClosed | PermissionDenied), done
        assert isinstance(moved, WorkItem | WorkItemClosed), moved
        fresh = WorkItem.objects.get(pk=item.pk)
        if isinstance(done, WorkItem):
            # The completion came first: the reassignment found the item closed.
            assert could_complete and isinstance(moved, WorkItemClosed), moved
            assert fresh.status == WorkItemStatus.COMPLETED and fresh.completed_by_id == sm_users[user].pk
            self.completions[item.pk] += 1
        else:
            # The reassignment came first (or the run is suspended): the item moved, still open.
            assert isinstance(moved, WorkItem), (done, moved)
            assert fresh.status == WorkItemStatus.ASSIGNED
            if could_complete:
                assert isinstance(done, PermissionDenied), done
            self.assignee[item.pk] = target
            self.claims[item.pk] = None

    @precondition(lambda self: self.runs)
    @rule(data=PICKS)
    def race_claim_and_reassign(self, data: Picks) -> None:
        item = self._items(data, open_only=True)
        if item is None or self.assignee[item.pk][0] == "user" or self.claims[item.pk] is not None:
            return
        holders = sorted(u for u in sm.WORKERS if sm.may_act(self.assignee[item.pk], u))
        user = data.choose(holders)
        target = data.choose([a for a in sm.ASSIGNEES if not sm.may_act(a, user)])
        claimed, moved = sm.race(
            lambda: workitem_claim(item=WorkItem.objects.get(pk=item.pk), user=sm_users[user]),
            lambda: self._reassign(item.pk, target),
        )
        outcome("claim + reassign", claimed, moved)
        assert isinstance(moved, WorkItem), moved  # the item is open: the reassignment always applies
        # Either the claim came first (and the reassignment cleared it) or it found the item
        # moved away from the claimer and was refused: never a claim by someone who may not act.
        assert isinstance(claimed, WorkItem | PermissionDenied), claimed
        fresh = WorkItem.objects.get(pk=item.pk)
        assert fresh.claimed_by_id is None and _assignee_of(fresh) == target, (claimed, fresh.claimed_by_id)
        self.assignee[item.pk] = target
        self.claims[item.pk] = None

    @precondition(lambda self: self.runs)
    @rule(action=st.sampled_from(["cancel", "suspend"]), values=form_data, data=PICKS)
    def race_admin_action_and_complete(self, action: str, values: dict[str, Any], data: Picks) -> None:
        # The completion may start a background step whose task runs (on commit, in the
        # completing thread) after the other thread's cancel or suspend: its result must then
        # be ignored (canceled) or kept without moving the run (suspended).
        item = self._items(data, open_only=True)
        if item is None:
            return
        holders = [u for u in sm.WORKERS if self._expect_complete(item, u) in (None, WorkItemClosed)]
        holders = [u for u in holders if sm.may_act(self.assignee[item.pk], u)]
        if not holders:
            return
        user = data.choose(sorted(holders))
        could_complete = self._expect_complete(item, user) is None
        acted, done = sm.race(
            lambda: RUN_ACTIONS[action](run_id=item.run_id, actor=sm_users["admin"]),
            lambda: self._complete(item.pk, user, values),
        )
        outcome(f"{action} + complete", acted, done)
        assert isinstance(acted, Run | ActionNotAllowed), acted
        assert isinstance(done, WorkItem | WorkItemClosed), done
        run = Run.objects.get(pk=item.run_id)
        fresh = WorkItem.objects.get(pk=item.pk)
        if isinstance(done, WorkItem):
            assert could_complete and fresh.status == WorkItemStatus.COMPLETED
            self.completions[item.pk] += 1
            # The action came second: it applied to what was left, or the completion had
            # ended the run (or a background step it started had failed it) by then.
            if isinstance(acted, ActionNotAllowed):
                refused_on = {
                    "cancel": (RunStatus.COMPLETED,),
                    "suspend": (RunStatus.COMPLETED, RunStatus.ERROR),
                }
                assert run.status in refused_on[action], (action, run.status)
            else:
                assert run.status == (RunStatus.CANCELED if action == "cancel" else RunStatus.SUSPENDED)
        elif action == "cancel":
            assert isinstance(acted, Run), acted
            assert run.status == RunStatus.CANCELED and fresh.status == WorkItemStatus.CANCELED
        else:
            # Suspended first (by this action or before it): the item stays open, not completed.
            assert run.status == RunStatus.SUSPENDED and fresh.status == WorkItemStatus.ASSIGNED
            assert isinstance(acted, Run) == (item.run.status == RunStatus.IN_PROGRESS), (
                acted,
                item.run.status,
            )

    @precondition(lambda self: self.runs)
    @rule(
        first=st.sampled_from(["cancel", "suspend"]),
        second=st.sampled_from(["cancel", "suspend"]),
        data=PICKS,
    )
    def race_two_admin_actions(self, first: str, second: str, data: Picks) -> None:
        run = self._run(data)

        def serial(a: str, b: str) -> tuple[str, list[bool]]:
            status, oks = run.status, []
            for action in (a, b):
                ok = action in ADMIN_ACTIONS.get(status, set())
                oks.append(ok)
                if ok:
                    status = RunStatus.CANCELED if action == "cancel" else RunStatus.SUSPENDED
            return status, oks

        results = sm.race(
            lambda: RUN_ACTIONS[first](run_id=run.pk, actor=sm_users["admin"]),
            lambda: RUN_ACTIONS[second](run_id=run.pk, actor=sm_users["admin"]),
        )
        outcome(f"{first} + {second}", *results)
        for r in results:
            assert isinstance(r, Run | ActionNotAllowed), r
        oks = [isinstance(r, Run) for r in results]
        one = serial(first, second)
        other = serial(second, first)
        status = Run.objects.get(pk=run.pk).status
        assert (status, oks) in (one, (other[0], other[1][::-1])), (
            run.status,
            first,
            second,
            results,
            status,
        )

    @precondition(lambda self: self.runs)
    @rule(data=PICKS)
    def race_retry_and_skip(self, data: Picks) -> None:
        steps = list(
            StepRun.objects.filter(
                run_id__in=list(self.runs),
                status=StageStatus.ERROR,
                stage_run__status=StageStatus.IN_PROGRESS,
            )
            .select_related("run")
            .order_by("id")
        )
        if not steps:
            return
        sr = data.choose(steps)
        events_before = Counter(
            RunEvent.objects.filter(run_id=sr.run_id, step=sr.key).values_list("name", flat=True)
        )
        assert sr.run.record_id is not None  # both orchestrations run on a record
        fails_again = Record.objects.get(pk=sr.run.record_id).data.get("status") == "fail"
        retried, skipped = sm.race(
            lambda: step_retry(step_run_id=sr.pk, actor=sm_users["admin"]),
            lambda: step_skip(step_run_id=sr.pk, actor=sm_users["admin"]),
        )
        outcome("retry + skip", retried, skipped)
        for r in (retried, skipped):
            assert isinstance(r, StepRun | ActionNotAllowed), r
        wins = [isinstance(r, StepRun) for r in (retried, skipped)]
        if sr.run.status not in ACTIVE:
            assert wins == [False, True], (sr.run.status, retried, skipped)  # a suspended run: skip only
        elif fails_again:
            # The retried attempt may fail again before the skip takes the lock: then both count.
            assert any(wins), (retried, skipped)
        else:
            assert sum(wins) == 1, (retried, skipped)
        events_after = Counter(
            RunEvent.objects.filter(run_id=sr.run_id, step=sr.key).values_list("name", flat=True)
        )
        # Every accepted action left its event, and a refused one none.
        assert (
            events_after["orchestration.step.retried"] - events_before["orchestration.step.retried"]
            == wins[0]
        )
        assert (
            events_after["orchestration.step.skip_requested"]
            - events_before["orchestration.step.skip_requested"]
            == wins[1]
        )

    # -- invariants, read from the database ----------------------------------------------------
    @invariant()
    def database_is_consistent(self) -> None:
        ids = list(self.runs)
        if not ids:
            return
        runs = {r.pk: r for r in Run.objects.filter(pk__in=ids)}
        stages_by_run: dict[int, list[StageRun]] = {}
        for s in StageRun.objects.filter(run_id__in=ids).order_by("id"):
            stages_by_run.setdefault(s.run_id, []).append(s)
        steps = list(StepRun.objects.filter(run_id__in=ids).order_by("id"))
        items = list(WorkItem.objects.filter(run_id__in=ids).order_by("id"))
        items_by_step: dict[int, list[WorkItem]] = {}
        for i in items:
            items_by_step.setdefault(i.step_run_id, []).append(i)
        stage_by_id = {s.pk: s for ss in stages_by_run.values() for s in ss}

        for run in runs.values():
            name = self.runs[run.pk]
            stages = stages_by_run.get(run.pk, [])
            in_progress = [s for s in stages if s.status == StageStatus.IN_PROGRESS]
            assert len(in_progress) <= 1, (run.pk, stages)
            if run.status in FINISHED:
                assert not in_progress and run.current_stage == "" and run.ended_at is not None, (
                    run.pk,
                    stages,
                )
                assert all(s.ended_at is not None for s in stages), stages
            elif run.status == RunStatus.ERROR:
                # In error, the stage it stopped in stays in progress (re-check goes on from it);
                # only a run that failed before its first stage has none.
                assert (len(in_progress) == 1 and in_progress[0].key == run.current_stage) or not stages, (
                    run.pk,
                    stages,
                )
            else:
                assert run.status in (RunStatus.IN_PROGRESS, RunStatus.SUSPENDED), run.status
                assert len(in_progress) == 1 and in_progress[0].key == run.current_stage, (
                    run.pk,
                    run.status,
                    stages,
                )
                if run.status == RunStatus.IN_PROGRESS:
                    # A failure is routed at once (fault path or run error); only a suspended
                    # run keeps a failed step in its stage, to be routed when it is resumed.
                    failed = [
                        s
                        for s in steps
                        if s.stage_run_id == in_progress[0].pk and s.status == StageStatus.ERROR
                    ]
                    assert not failed, (run.pk, failed)
            # The sweep re-checks exactly the runs that wait on a condition: here, sm_rec's "wait"
            # stage (its exit condition). A suspended run keeps its flag for when it resumes.
            waits = run.status in (RunStatus.IN_PROGRESS, RunStatus.SUSPENDED) and run.current_stage == "wait"
            assert run.recheck == waits, (run.pk, run.status, run.current_stage, run.recheck)
            # Stages follow the definition's routing: the first stage first, then each one where
            # the previous one's routing or fault path leads; only the last may be open.
            if stages:
                assert stages[0].key == sm.STAGES[name][0], stages
            for prev, nxt in itertools.pairwise(stages):
                assert prev.ended_at is not None and prev.status in (
                    StageStatus.COMPLETED,
                    StageStatus.ERROR,
                ), stages
                assert nxt.key in sm.ROUTES[(name, prev.key)][prev.status], (prev, nxt)
            # Variables only from declared names; step outputs only from declared flow outputs.
            assert set(run.variables) <= sm.VARIABLES[name], run.variables
            for key, outputs in run.step_outputs.items():
                assert key in sm.STEP_FLOWS and set(outputs) <= sm.FLOW_OUTPUTS[sm.STEP_FLOWS[key]], (
                    run.step_outputs
                )

        for sr in steps:
            run, stage = runs[sr.run_id], stage_by_id[sr.stage_run_id]
            assert sr.attempts >= self.attempts.get(sr.pk, 0), "attempts went down"
            self.attempts[sr.pk] = sr.attempts
            assert set(sr.outputs) <= sm.FLOW_OUTPUTS[sm.STEP_FLOWS[sr.key]], sr.outputs
            if stage.status != StageStatus.IN_PROGRESS:
                assert sr.status in ENDED_STEP and (
                    sr.ended_at is not None or sr.status == StageStatus.DISCONTINUED
                ), (
                    sr,
                    stage,
                )
            if sr.status in (StageStatus.COMPLETED, StageStatus.ERROR):
                assert sr.ended_at is not None, sr
            mine = items_by_step.get(sr.pk, [])
            open_items = [i for i in mine if i.status == WorkItemStatus.ASSIGNED]
            done_items = [i for i in mine if i.status == WorkItemStatus.COMPLETED]
            if sr.kind == "interactive":
                # An assigned work item <=> its step in progress; a completed item => step completed.
                assert len(open_items) == (1 if sr.status == StageStatus.IN_PROGRESS else 0), (sr, mine)
                assert not done_items or sr.status == StageStatus.COMPLETED, (sr, mine)
                assert len(done_items) <= 1, mine
                if sr.status in (StageStatus.DISCONTINUED, StageStatus.CANCELED):
                    assert all(i.status == WorkItemStatus.CANCELED for i in mine), (sr, mine)
            else:
                assert not mine
                # Celery is eager: once an operation has returned, no attempt is left waiting.
                assert (
                    sr.exec_state in (ExecState.IDLE, ExecState.DONE) or sr.status != StageStatus.IN_PROGRESS
                ), sr
                assert sr.status != StageStatus.IN_PROGRESS, sr
            if run.status in FINISHED:
                assert sr.status not in (StageStatus.NOT_STARTED, StageStatus.IN_PROGRESS), (run.status, sr)

        for item in items:
            self.assignee.setdefault(item.pk, sm.INITIAL_ASSIGNEE[sm_step_key(steps, item)])
            self.claims.setdefault(item.pk, None)
            assert (item.status == WorkItemStatus.COMPLETED) == (self.completions[item.pk] == 1), (
                item,
                self.completions,
            )
            assert self.completions[item.pk] <= 1
            assert _assignee_of(item) == self.assignee[item.pk], (
                item.pk,
                _assignee_of(item),
                self.assignee[item.pk],
            )
            claimed = sm_username(item.claimed_by_id)
            assert claimed == self.claims[item.pk], (item.pk, claimed, self.claims[item.pk])
            if runs[item.run_id].status in FINISHED:
                assert item.status != WorkItemStatus.ASSIGNED, item

        # Record-triggered launches: one per save that made the record meet the condition.
        rec_runs = Counter(r.record_id for r in runs.values() if self.runs[r.pk] == "sm_rec")
        assert rec_runs == +self.rec_launches, (rec_runs, self.rec_launches)

        # Events are append-only and ordered.
        by_run: dict[int, list[RunEvent]] = {}
        for e in (
            RunEvent.objects.filter(run_id__in=ids).order_by("id").only("id", "run_id", "name", "created_at")
        ):
            by_run.setdefault(e.run_id, []).append(e)
        for run_id, evs in by_run.items():
            seen = [(e.pk, e.name) for e in evs]
            before = self.events_seen.get(run_id, [])
            assert seen[: len(before)] == before, f"events of run {run_id} changed"
            self.events_seen[run_id] = seen
            assert evs[0].name == "orchestration.run.started"
            assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(evs)), run_id
            names = Counter(e.name for e in evs)
            status = runs[run_id].status
            assert names["orchestration.run.completed"] == (status == RunStatus.COMPLETED)
            assert names["orchestration.run.canceled"] == (status == RunStatus.CANCELED)


def sm_step_key(steps: list[StepRun], item: WorkItem) -> str:
    return next(s.key for s in steps if s.pk == item.step_run_id)


_names_by_id: dict[int, str] = {}
_groups_by_id: dict[int, str] = {}
_queues_by_id: dict[int, str] = {}


def sm_username(user_id: int | None) -> str | None:
    return None if user_id is None else _names_by_id[user_id]


def _assignee_of(item: WorkItem) -> tuple[str, str]:
    if item.assignee_user_id is not None:
        return ("user", _names_by_id[item.assignee_user_id])
    if item.assignee_group_id is not None:
        return ("group", _groups_by_id[item.assignee_group_id])
    assert item.assignee_queue_id is not None
    return ("queue", _queues_by_id[item.assignee_queue_id])


def test_engine_state_machine(transactional_db: None) -> None:
    """Committed data (transactional_db): the racing threads have connections of their own."""
    sm_users.clear()
    sm_users.update(sm.setup())
    _names_by_id.clear()
    _names_by_id.update({u.pk: name for name, u in sm_users.items()})
    _groups_by_id.clear()
    _groups_by_id.update(dict(Group.objects.values_list("pk", "name")))
    _queues_by_id.clear()
    _queues_by_id.update(dict(Queue.objects.values_list("pk", "api_name")))
    OUTCOMES.clear()
    run_state_machine_as_test(EngineMachine, settings=MACHINE_SETTINGS)
    print("\n".join(f"{n:5} {what}" for what, n in sorted(OUTCOMES.items())))  # shown with -s
    ran = {what.split(":")[0] for what in OUTCOMES}
    races = {"two completions", "complete + reassign", "claim + reassign", "retry + skip"}
    assert races <= ran, ran
    assert {"cancel + complete", "suspend + complete"} <= ran, ran
    assert any(what.startswith(("cancel + cancel", "cancel + suspend", "suspend + ")) for what in OUTCOMES)
    # Completions were both accepted and refused.
    assert {"complete: WorkItem", "complete: PermissionDenied", "complete: WorkItemClosed"} <= set(OUTCOMES)
    # The machine ran: runs were launched and moved (a machine whose rules all bailed out
    # would prove nothing).
    assert Run.objects.count() >= EXAMPLES
    assert RunEvent.objects.filter(name="orchestration.step.completed").exists()
