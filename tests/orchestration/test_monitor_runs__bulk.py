"""Bulk run operations from the runs page: a preview of how many runs the action affects, then
cancel or retry for all of them; refused without the action's permission; asked again when the
number changed since the preview."""

from __future__ import annotations

import re
from unittest import mock

import pytest

from orchestration.models import Run, RunEvent, RunStatus, StepRun, StepStatus
from orchestration.services import ActionNotAllowed, run_suspend
from orchestration.services import run_cancel as real_cancel
from tests.factories import grant, make_case

from .test_monitor_runs import VIEW, define, launch

pytestmark = pytest.mark.django_db(transaction=True)

BULK = "/monitor/runs/bulk/"
CANCEL, RETRY = "orchestration.cancel_run", "orchestration.retry_step"


def preview_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-run="(\d+)"', html)]


def messages_of(resp) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in resp.context["messages"]] if resp.context else []


@pytest.fixture
def runs(personas):  # type: ignore[no-untyped-def]
    """Two open cases runs (one suspended), a finished one, two failing runs in error."""
    define()
    open_ = launch("cases", make_case("Open one"))
    suspended = launch("cases", make_case("Suspended one"))
    run_suspend(run_id=suspended.pk)
    done = launch("cases", make_case("Done one"))
    real_cancel(run_id=done.pk)
    failed = [launch("failing", make_case(f"Failing {i}")) for i in range(2)]
    assert all(r.status == RunStatus.ERROR for r in failed)
    return {"open": open_, "suspended": suspended, "done": done, "failed": failed}


@pytest.fixture
def operator(personas):  # type: ignore[no-untyped-def]
    return grant(personas.charlie, VIEW, CANCEL, RETRY)


def test_cancel_preview_counts_only_runs_that_can_be_canceled(client, runs, operator):
    client.force_login(operator)
    resp = client.get(f"{BULK}?action=cancel&orchestration=cases")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "<strong>2 runs</strong> are affected" in html
    assert preview_ids(html) == [runs["open"].pk, runs["suspended"].pk]  # not the canceled one
    assert 'name="count" value="2"' in html
    assert '<input type="hidden" name="orchestration" value="cases">' in html
    assert "Cancel 2 runs</button>" in html
    # Nothing happened yet.
    assert Run.objects.get(pk=runs["open"].pk).status == RunStatus.IN_PROGRESS


def test_the_runs_page_offers_the_bulk_actions_with_its_filter(client, runs, operator):
    client.force_login(operator)
    html = client.get("/monitor/runs/?status=error").content.decode()
    assert f'href="{BULK}?action=cancel&amp;status=error">Cancel matching runs</a>' in html
    assert f'href="{BULK}?action=retry&amp;status=error">Retry failed steps of matching runs</a>' in html


def test_bulk_cancel_cancels_them_and_returns_to_the_filtered_page(client, runs, operator):
    client.force_login(operator)
    resp = client.post(
        BULK,
        {"action": "cancel", "orchestration": "cases", "count": "2", "reason": "Duplicate batch"},
        follow=True,
    )
    assert resp.redirect_chain == [("/monitor/runs/?orchestration=cases", 302)]
    assert messages_of(resp) == ["2 runs canceled, 0 skipped (not allowed)."]
    for key in ("open", "suspended"):
        assert Run.objects.get(pk=runs[key].pk).status == RunStatus.CANCELED
    reasons = RunEvent.objects.filter(run=runs["open"], name__endswith="cancel_reason")
    assert [e.payload["reason"] for e in reasons] == ["Duplicate batch"]
    assert reasons[0].actor == operator
    # The failing runs are of another orchestration: untouched.
    assert all(Run.objects.get(pk=r.pk).status == RunStatus.ERROR for r in runs["failed"])


def test_a_changed_count_asks_again_and_changes_nothing(client, runs, operator):
    client.force_login(operator)
    launch("cases", make_case("Late arrival"))
    resp = client.post(BULK, {"action": "cancel", "orchestration": "cases", "count": "2"})
    assert resp.status_code == 409
    html = resp.content.decode()
    assert "changed from 2 to 3" in html
    assert 'name="count" value="3"' in html
    assert Run.objects.filter(status=RunStatus.CANCELED).count() == 1  # only the one from before


def test_runs_that_cannot_be_canceled_any_more_are_skipped(client, runs, operator):
    """A run that finished between the listing and its turn is skipped and counted as such."""

    def cancel(*, run_id, **kwargs):  # type: ignore[no-untyped-def]
        if run_id == runs["suspended"].pk:
            raise ActionNotAllowed("cannot cancel a run that is completed")
        return real_cancel(run_id=run_id, **kwargs)

    client.force_login(operator)
    with mock.patch("orchestration.views.runs.run_cancel", cancel):
        resp = client.post(BULK, {"action": "cancel", "orchestration": "cases", "count": "2"}, follow=True)
    assert messages_of(resp) == ["1 run canceled, 1 skipped (not allowed)."]
    assert Run.objects.get(pk=runs["suspended"].pk).status == RunStatus.SUSPENDED


def test_a_request_handles_at_most_the_cap_and_says_so(client, runs, operator):
    client.force_login(operator)
    with mock.patch("orchestration.views.runs.BULK_CAP", 1):
        resp = client.post(BULK, {"action": "cancel", "orchestration": "cases", "count": "2"}, follow=True)
    assert messages_of(resp) == [
        "1 run canceled, 0 skipped (not allowed)."
        " Only 1 runs are handled at a time: run the action again for the rest."
    ]
    assert Run.objects.filter(status=RunStatus.CANCELED).count() == 2


def test_bulk_retry_retries_the_failed_steps_of_runs_in_error(client, runs, operator):
    client.force_login(operator)
    html = client.get(f"{BULK}?action=retry").content.decode()
    assert "<strong>2 runs</strong> are affected" in html
    assert preview_ids(html) == [r.pk for r in runs["failed"]]

    resp = client.post(BULK, {"action": "retry", "count": "2", "reason": "Fixed the divisor"}, follow=True)
    assert resp.redirect_chain == [("/monitor/runs/", 302)]
    assert messages_of(resp) == ["2 runs retried, 0 skipped (not allowed)."]
    for run in runs["failed"]:
        retried = RunEvent.objects.get(run=run, name__endswith="step.retried")
        assert retried.payload["reason"] == "Fixed the divisor" and retried.actor == operator
        # The flow still divides by zero: a second attempt, failed again.
        step = StepRun.objects.get(run=run, key="calc")
        assert step.attempts == 2 and step.status == StepStatus.ERROR


def test_a_viewer_may_preview_but_not_act(client, runs, personas):
    viewer = grant(personas.bob, VIEW)
    client.force_login(viewer)
    html = client.get("/monitor/runs/").content.decode()
    assert "Cancel matching runs" not in html and "Retry failed steps" not in html
    resp = client.get(f"{BULK}?action=cancel")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "<strong>4 runs</strong> are affected" in html
    assert "you do not have the permission to cancel runs" in html
    assert '<form method="post"' not in html.split("<main")[1]
    assert client.post(BULK, {"action": "cancel", "count": "4"}).status_code == 403
    assert client.post(BULK, {"action": "retry", "count": "2"}).status_code == 403
    assert Run.objects.filter(status=RunStatus.CANCELED).count() == 1
    assert not RunEvent.objects.filter(name__endswith="step.retried").exists()


def test_users_without_view_permission_get_nothing(client, runs, personas):
    client.force_login(grant(personas.alice, CANCEL))
    assert client.get(f"{BULK}?action=cancel").status_code == 403
    assert client.post(BULK, {"action": "cancel", "count": "4"}).status_code == 403
    client.logout()
    resp = client.post(BULK, {"action": "cancel", "count": "4"})
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")
    assert Run.objects.filter(status=RunStatus.CANCELED).count() == 1


def test_an_unknown_action_goes_back_to_the_runs(client, runs, operator):
    client.force_login(operator)
    resp = client.get(f"{BULK}?action=delete", follow=True)
    assert resp.redirect_chain == [("/monitor/runs/", 302)]
    assert messages_of(resp) == ["Choose a bulk action: cancel runs or retry their failed steps."]
