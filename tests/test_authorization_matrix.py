"""Authorization matrix: every monitoring page and action, My Work, the record pages, the API and
the Django admin, for anonymous visitors, an end user, a manager and an orchestration admin.

The personas hold only the permissions the demo's groups give (the admin is NOT a superuser, so
what counts is the permissions, not `is_superuser`):

- end user (alice): the demo's Staff permissions, records.view/add/change_record;
- manager (charlie): the "managers" group (workitems.reassign_workitem) and view_workitem;
- admin (ops): an "Orchestration Admins" group with the orchestration permissions and
  workitems.view_workitem and workitems.reassign_workitem, as in the demo (managers and admins
  move work).

Each row of MATRIX is one page or action; the test asks it as every persona, the refused ones
first, and checks that a refused POST changed nothing before the allowed persona acts. The same
table is in docs/monitoring.md ("Who may do what")."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from orchestration.models import Flow, OrchestrationVersion, Run, RunEvent, RunStatus, StepRun
from orchestration.services import api_token_create, run_launch, run_suspend
from records.models import Record
from tests.factories import (
    RECORD_PERMS,
    UserFactory,
    auto_flow,
    grant,
    load,
    make_case,
    orchestration,
    screen_flow,
)
from workitems.models import WorkItem, WorkItemStatus

# Each test rolls back (a flush per test would make the matrix slow); the world is built with the
# on-commit callbacks executed, so the eager Celery tasks of the launches run as they would after
# a real commit.
pytestmark = pytest.mark.django_db

ADMIN_PERMS = (
    "orchestration.view_run",
    "orchestration.view_orchestration",
    "orchestration.view_flow",
    "orchestration.cancel_run",
    "orchestration.suspend_run",
    "orchestration.retry_step",
    "orchestration.skip_step",
    "orchestration.import_definitions",
    "orchestration.launch_orchestration",
    "workitems.view_workitem",
    "workitems.reassign_workitem",
)
# The order the personas are tried in: the refused ones act first, so the allowed one finds the
# state untouched (and its own change is then checked).
PERSONAS = ("anonymous", "end_user", "manager", "admin")
LOGIN = "login"  # a 302 to /login/?next=<the page>
ADMIN_LOGIN = "admin login"  # a 302 to /admin/login/?next=/admin/


def _case_stage() -> dict[str, Any]:
    step = {"key": "check", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}}
    return {"key": "review", "label": "Review", "steps": [step]}


def build_world(personas: SimpleNamespace, on_commit: Callable[..., Any]) -> SimpleNamespace:
    grant(personas.alice, *RECORD_PERMS)
    grant(personas.charlie, "workitems.view_workitem")
    admins, _ = Group.objects.get_or_create(name="Orchestration Admins")
    for perm in ADMIN_PERMS:
        app_label, codename = perm.split(".")
        admins.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    ops: Any = UserFactory(username="ops")
    ops.groups.add(admins)

    load(
        screen_flow("review"),
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration("cases", stages=[_case_stage()]),
        orchestration(
            "failing",
            stages=[
                {
                    "key": "work",
                    "steps": [{"key": "calc", "kind": "background", "flow": "boom", "max_attempts": 1}],
                }
            ],
        ),
    )
    # A second version of "cases" (the active one): version 1 is there to be activated.
    load(orchestration("cases", stages=[{**_case_stage(), "label": "Review (v2)"}]))

    with on_commit(execute=True):  # the failing step runs (eager Celery, after the "commit")
        failed = run_launch(orchestration="failing", record=make_case("Broken boiler"))
    open_run = run_launch(orchestration="cases", record=make_case("Open case"))
    suspended = run_launch(orchestration="cases", record=make_case("Paused case"))
    run_suspend(run_id=suspended.pk)
    for run in (failed, open_run, suspended):
        run.refresh_from_db()
    assert (failed.status, open_run.status, suspended.status) == (
        RunStatus.ERROR,
        RunStatus.IN_PROGRESS,
        RunStatus.SUSPENDED,
    )
    return SimpleNamespace(
        users={"anonymous": None, "end_user": personas.alice, "manager": personas.charlie, "admin": ops},
        failed=failed,
        open=open_run,
        suspended=suspended,
        failed_step=StepRun.objects.get(run=failed, key="calc"),
        item=WorkItem.objects.get(run=open_run, status=WorkItemStatus.ASSIGNED),
        case=Record.objects.get(name="Open case"),
        personas=personas,
    )


@pytest.fixture
def world(personas, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    return build_world(personas, django_capture_on_commit_callbacks)


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


@dataclass(frozen=True)
class Row:
    """One page or action. `url` and `data` are built from the world; `state` reads what a POST
    would change, `after` is its value once the allowed persona has acted."""

    label: str
    method: str
    url: Callable[[SimpleNamespace], str]
    expect: dict[str, int | str]  # persona -> status code, LOGIN, ADMIN_LOGIN or "302 <path>"
    data: Callable[[SimpleNamespace], dict[str, Any]] | None = None
    state: Callable[[SimpleNamespace], Any] | None = None
    after: Callable[[SimpleNamespace], Any] | None = None
    # The JSON API: asked with the persona's bearer token (anonymous: none) and a JSON body.
    token: bool = False


def everyone(code: int | str) -> dict[str, int | str]:
    return {p: code for p in PERSONAS}


def only(allowed: dict[str, int | str], refused: int = 403) -> dict[str, int | str]:
    """Anonymous goes to the login page; the personas in `allowed` get their code, others 403."""
    return {"anonymous": LOGIN} | {p: refused for p in PERSONAS[1:]} | allowed


def _run_detail(w: SimpleNamespace, run: Run) -> str:
    return f"302 /monitor/runs/{run.pk}/"


def _upload(w: SimpleNamespace) -> dict[str, Any]:
    text = yaml.safe_dump(auto_flow("uploaded")).encode()
    return {"file": SimpleUploadedFile("uploaded.yaml", text, content_type="application/x-yaml")}


API_ADMIN_ONLY: dict[str, int | str] = {"anonymous": 401, "end_user": 403, "manager": 403, "admin": 200}

MATRIX: list[Row] = [
    # --- monitoring: runs ------------------------------------------------------------------------
    Row("runs list", "GET", lambda w: "/monitor/runs/?status=error", only({"admin": 200})),
    Row(
        "bulk cancel preview",
        "GET",
        lambda w: "/monitor/runs/bulk/?action=cancel&status=error",
        only({"admin": 200}),
    ),
    Row(
        "bulk cancel confirm",
        "POST",
        lambda w: "/monitor/runs/bulk/",
        only({"admin": "302 /monitor/runs/?status=error"}),
        data=lambda w: {"action": "cancel", "status": "error", "count": "1", "reason": "matrix"},
        state=lambda w: status_of(w.failed),
        after=lambda w: RunStatus.CANCELED,
    ),
    Row("run detail", "GET", lambda w: f"/monitor/runs/{w.failed.pk}/", only({"admin": 200})),
    Row(
        "cancel: confirm page",
        "GET",
        lambda w: f"/monitor/runs/{w.open.pk}/action/cancel/",
        only({"admin": 200}),
    ),
    Row(
        "cancel",
        "POST",
        lambda w: f"/monitor/runs/{w.open.pk}/action/cancel/",
        only({"admin": "302 run"}),
        data=lambda w: {"reason": "matrix"},
        state=lambda w: status_of(w.open),
        after=lambda w: RunStatus.CANCELED,
    ),
    Row(
        "suspend: confirm page",
        "GET",
        lambda w: f"/monitor/runs/{w.open.pk}/action/suspend/",
        only({"admin": 200}),
    ),
    Row(
        "suspend",
        "POST",
        lambda w: f"/monitor/runs/{w.open.pk}/action/suspend/",
        only({"admin": "302 run"}),
        data=lambda w: {},
        state=lambda w: status_of(w.open),
        after=lambda w: RunStatus.SUSPENDED,
    ),
    Row(
        "resume: confirm page",
        "GET",
        lambda w: f"/monitor/runs/{w.suspended.pk}/action/resume/",
        only({"admin": 200}),
    ),
    Row(
        "resume",
        "POST",
        lambda w: f"/monitor/runs/{w.suspended.pk}/action/resume/",
        only({"admin": "302 run"}),
        data=lambda w: {},
        state=lambda w: status_of(w.suspended),
        after=lambda w: RunStatus.IN_PROGRESS,
    ),
    Row(
        # Not valid for a run in progress: the admin is sent back to the run with a message.
        "resume a run that is not suspended",
        "POST",
        lambda w: f"/monitor/runs/{w.open.pk}/action/resume/",
        only({"admin": "302 run"}),
        data=lambda w: {},
        state=lambda w: status_of(w.open),
        after=lambda w: RunStatus.IN_PROGRESS,
    ),
    Row(
        "re-check: confirm page",
        "GET",
        lambda w: f"/monitor/runs/{w.failed.pk}/action/recheck/",
        only({"admin": 200}),
    ),
    Row(
        "re-check",
        "POST",
        lambda w: f"/monitor/runs/{w.failed.pk}/action/recheck/",
        only({"admin": "302 run"}),
        data=lambda w: {},
        state=lambda w: RunEvent.objects.filter(run=w.failed, name="orchestration.run.rechecked").count(),
        after=lambda w: 1,
    ),
    Row(
        "retry: confirm page",
        "GET",
        lambda w: f"/monitor/steps/{w.failed_step.pk}/retry/",
        only({"admin": 200}),
    ),
    Row(
        "retry a failed step",
        "POST",
        lambda w: f"/monitor/steps/{w.failed_step.pk}/retry/",
        only({"admin": "302 run"}),
        data=lambda w: {"reason": "matrix"},
        state=lambda w: StepRun.objects.values_list("attempts", flat=True).get(pk=w.failed_step.pk),
        after=lambda w: 2,
    ),
    Row(
        "skip: confirm page",
        "GET",
        lambda w: f"/monitor/steps/{w.failed_step.pk}/skip/",
        only({"admin": 200}),
    ),
    Row(
        "skip a failed step",
        "POST",
        lambda w: f"/monitor/steps/{w.failed_step.pk}/skip/",
        only({"admin": "302 run"}),
        data=lambda w: {"out_x": "1", "reason": "matrix"},
        state=lambda w: status_of(w.failed),
        after=lambda w: RunStatus.COMPLETED,
    ),
    # A variable changed by hand needs orchestration.change_run_variables, given on its own: not
    # in the demo's Orchestration Admins group (superusers have it; tests/orchestration/
    # test_run_variables.py changes values with it). Every persona here is refused.
    Row(
        "change a variable: form page",
        "GET",
        lambda w: f"/monitor/runs/{w.failed.pk}/variables/total/",
        only({}),
    ),
    Row(
        "change a variable",
        "POST",
        lambda w: f"/monitor/runs/{w.failed.pk}/variables/total/",
        only({}),
        data=lambda w: {"var-total-value": "1", "var-total-reason": "matrix"},
        state=lambda w: (
            Run.objects.values_list("variables", flat=True).get(pk=w.failed.pk),
            RunEvent.objects.filter(run=w.failed, name="orchestration.run.variable_changed").count(),
        ),
    ),
    # --- monitoring: orchestrations ----------------------------------------------------------------
    Row("orchestrations list", "GET", lambda w: "/monitor/orchestrations/", only({"admin": 200})),
    Row("orchestration page", "GET", lambda w: "/monitor/orchestrations/cases/", only({"admin": 200})),
    Row("version page", "GET", lambda w: "/monitor/orchestrations/cases/v1/", only({"admin": 200})),
    Row(
        "version YAML download",
        "GET",
        lambda w: "/monitor/orchestrations/cases/v1/yaml/",
        only({"admin": 200}),
    ),
    Row(
        "compare versions",
        "GET",
        lambda w: "/monitor/orchestrations/cases/compare/?from=1&to=1",
        only({"admin": 200}),
    ),
    Row("upload form", "GET", lambda w: "/monitor/orchestrations/upload/", only({"admin": 200})),
    Row("analytics", "GET", lambda w: "/monitor/analytics/", only({"admin": 200})),
    Row("analytics of one orchestration", "GET", lambda w: "/monitor/analytics/cases/", only({"admin": 200})),
    Row("analytics CSV", "GET", lambda w: "/monitor/analytics/?format=csv&section=wip", only({"admin": 200})),
    Row(
        "upload definitions",
        "POST",
        lambda w: "/monitor/orchestrations/upload/",
        only({"admin": "302 /monitor/orchestrations/"}),
        data=_upload,
        state=lambda w: Flow.objects.filter(api_name="uploaded").exists(),
        after=lambda w: True,
    ),
    Row(
        "activate: confirm page",
        "GET",
        lambda w: "/monitor/orchestrations/cases/v1/activate/",
        only({"admin": 200}),
    ),
    Row(
        "activate a version",
        "POST",
        lambda w: "/monitor/orchestrations/cases/v1/activate/",
        only({"admin": "302 /monitor/orchestrations/cases/v1/"}),
        data=lambda w: {},
        state=lambda w: OrchestrationVersion.objects.get(orchestration__api_name="cases", number=1).is_active,
        after=lambda w: True,
    ),
    Row(
        "migrate runs to a version",
        "GET",
        lambda w: "/monitor/orchestrations/cases/v1/migrate/",
        only({"admin": 200}),
    ),
    # --- work items -------------------------------------------------------------------------------
    Row("work items", "GET", lambda w: "/work-items/", only({"manager": 200, "admin": 200})),
    Row(
        "reassign",
        "POST",
        lambda w: "/work-items/reassign/",
        only({"manager": "302 /work-items/", "admin": "302 /work-items/"}),
        data=lambda w: {"items": [w.item.pk], "kind": "user", "target": "bob", "reason": "matrix"},
        state=lambda w: WorkItem.objects.get(pk=w.item.pk).assignee_user_id,
        after=lambda w: w.personas.bob.pk,
    ),
    Row("my work", "GET", lambda w: "/my-work/", {"anonymous": LOGIN} | {p: 200 for p in PERSONAS[1:]}),
    Row(
        "due date and priority: form page",
        "GET",
        lambda w: f"/work-items/{w.item.pk}/schedule/",
        only({"manager": 200, "admin": 200}),
    ),
    Row(
        "change due date and priority",
        "POST",
        lambda w: f"/work-items/{w.item.pk}/schedule/",
        only({"manager": "302 schedule", "admin": "302 schedule"}),
        data=lambda w: {"due_at": "2031-01-01T10:00", "priority": "4", "reason": "matrix"},
        state=lambda w: WorkItem.objects.values_list("priority", flat=True).get(pk=w.item.pk),
        after=lambda w: 4,
    ),
    Row("records home", "GET", lambda w: "/records/", {"anonymous": LOGIN} | {p: 200 for p in PERSONAS[1:]}),
    # --- records ----------------------------------------------------------------------------------
    Row("record list", "GET", lambda w: "/records/case/", only({"end_user": 200})),
    Row("record page", "GET", lambda w: f"/records/case/{w.case.pk}/", only({"end_user": 200})),
    Row("new record form", "GET", lambda w: "/records/case/new/", only({"end_user": 200})),
    Row(
        "create a record",
        "POST",
        lambda w: "/records/case/new/",
        only({"end_user": "302 new record"}),
        data=lambda w: {"name": "Made here", "severity": "High"},
        state=lambda w: Record.objects.filter(name="Made here").exists(),
        after=lambda w: True,
    ),
    Row("edit form", "GET", lambda w: f"/records/case/{w.case.pk}/edit/", only({"end_user": 200})),
    Row(
        "edit a record",
        "POST",
        lambda w: f"/records/case/{w.case.pk}/edit/",
        only({"end_user": "302 record"}),
        # `version`: the record as the form was loaded (the page refuses a stale form).
        data=lambda w: {
            "name": "Open case",
            "severity": "High",
            "version": Record.objects.get(pk=w.case.pk).updated_at.isoformat(),
        },
        state=lambda w: Record.objects.get(pk=w.case.pk).data["severity"],
        after=lambda w: "High",
    ),
    Row(
        # The end user reaches the button's view, but launching needs launch_orchestration: the
        # record page comes back with the refusal, and no run starts.
        "launch from a record",
        "POST",
        lambda w: f"/records/case/{w.case.pk}/launch/",
        only({"end_user": "302 record"}),
        data=lambda w: {"orchestration": "cases"},
        state=lambda w: Run.objects.count(),
        after=lambda w: 3,
    ),
    # --- API and Django admin ---------------------------------------------------------------------
    Row("API runs (session, no token)", "GET", lambda w: "/api/runs", everyone(401)),
    Row(
        "API: cancel a run",
        "POST",
        lambda w: f"/api/runs/{w.open.pk}/cancel",
        API_ADMIN_ONLY,
        data=lambda w: {"reason": "matrix"},
        state=lambda w: status_of(w.open),
        after=lambda w: RunStatus.CANCELED,
        token=True,
    ),
    Row(
        "API: retry a failed step",
        "POST",
        lambda w: f"/api/runs/{w.failed.pk}/steps/{w.failed_step.pk}/retry",
        API_ADMIN_ONLY,
        data=lambda w: {"reason": "matrix"},
        state=lambda w: StepRun.objects.values_list("attempts", flat=True).get(pk=w.failed_step.pk),
        after=lambda w: 2,
        token=True,
    ),
    Row(
        "API: skip a failed step",
        "POST",
        lambda w: f"/api/runs/{w.failed.pk}/steps/{w.failed_step.pk}/skip",
        API_ADMIN_ONLY,
        data=lambda w: {"outputs": {"x": 1}, "reason": "matrix"},
        state=lambda w: status_of(w.failed),
        after=lambda w: RunStatus.COMPLETED,
        token=True,
    ),
    Row(
        # The open and the suspended run of "cases" v2 back to v1 (import_definitions).
        "API: migrate running runs",
        "POST",
        lambda w: "/api/orchestrations/cases/migrations",
        API_ADMIN_ONLY,
        data=lambda w: {"from_version": 2, "to_version": 1},
        state=lambda w: Run.objects.values_list("version__number", flat=True).get(pk=w.open.pk),
        after=lambda w: 1,
        token=True,
    ),
    Row(
        "API: my work items",
        "GET",
        lambda w: "/api/work-items",
        {"anonymous": 401, "end_user": 200, "manager": 200, "admin": 200},
        token=True,
    ),
    Row(
        # The end user's item: for anyone else it does not exist.
        "API: complete a work item",
        "POST",
        lambda w: f"/api/work-items/{w.item.pk}/complete",
        {"anonymous": 401, "end_user": 200, "manager": 404, "admin": 404},
        data=lambda w: {"data": {"approved": True}},
        state=lambda w: WorkItem.objects.get(pk=w.item.pk).status,
        after=lambda w: WorkItemStatus.COMPLETED,
        token=True,
    ),
    Row(
        "API: reassign a work item",
        "POST",
        lambda w: f"/api/work-items/{w.item.pk}/reassign",
        {"anonymous": 401, "end_user": 403, "manager": 200, "admin": 200},
        data=lambda w: {"user": "bob", "reason": "matrix"},
        state=lambda w: WorkItem.objects.get(pk=w.item.pk).assignee_user_id,
        after=lambda w: w.personas.bob.pk,
        token=True,
    ),
    Row("Django admin", "GET", lambda w: "/admin/", everyone(ADMIN_LOGIN)),
]


def expected_location(w: SimpleNamespace, row: Row, code: str, url: str) -> str:
    target = code.removeprefix("302 ")
    if target == "run":
        run_pk = (
            StepRun.objects.get(pk=w.failed_step.pk).run_id if "/steps/" in url else int(url.split("/")[3])
        )
        return f"/monitor/runs/{run_pk}/"
    if target == "record":
        return f"/records/case/{w.case.pk}/"
    if target == "schedule":
        return f"/work-items/{w.item.pk}/schedule/"
    if target == "new record":
        return f"/records/case/{Record.objects.get(name='Made here').pk}/"
    return target


def _said(response: Any) -> str:
    """The messages and field errors of a page that was expected to redirect (for the failure)."""
    html = response.content.decode()
    return " | ".join(re.findall(r"(?:invalid-feedback|alert|errorlist)[^>]*>(.*?)</", html, re.S))


def _api_request(user: Any, method: str, url: str, data: dict[str, Any]) -> Any:
    """The JSON API as a program calls it: the persona's own bearer token, no session."""
    headers = {"Authorization": f"Bearer {api_token_create(user=user, name='matrix')[1]}"} if user else {}
    if method == "GET":
        return Client().get(url, headers=headers)
    return Client().post(url, json.dumps(data), content_type="application/json", headers=headers)


def ask(w: SimpleNamespace, row: Row, persona: str) -> None:
    user = w.users[persona]
    url = row.url(w)
    before = row.state(w) if row.state else None
    data = row.data(w) if row.data else {}
    if row.token:
        response = _api_request(user, row.method, url, data)
    else:
        client = Client()
        if user is not None:
            client.force_login(user)
        response = client.get(url) if row.method == "GET" else client.post(url, data)
    code = row.expect[persona]
    where = f"{row.label}: {row.method} {url} as {persona}"
    if code == LOGIN:
        assert response.status_code == 302, where
        assert response["Location"].startswith(f"/login/?next={url.split('?')[0]}"), where
    elif code == ADMIN_LOGIN:
        assert response.status_code == 302, where
        assert response["Location"] == "/admin/login/?next=/admin/", where
    elif isinstance(code, str):
        assert response.status_code == 302, (where, _said(response))
        assert response["Location"] == expected_location(w, row, code, url), where
    else:
        assert response.status_code == code, where
    if row.state is None:
        return
    refused = code in (LOGIN, ADMIN_LOGIN, 401, 403)
    if refused:
        assert row.state(w) == before, f"{where} was refused but changed something"
    else:
        assert row.after is not None
        assert row.state(w) == row.after(w), f"{where} did not do what it says"


@pytest.mark.parametrize("row", MATRIX, ids=[r.label for r in MATRIX])
def test_who_may_do_what(row: Row, world: SimpleNamespace) -> None:
    for persona in PERSONAS:
        ask(world, row, persona)


def test_the_django_admin_is_for_staff_only(client, world):  # type: ignore[no-untyped-def]
    # The matrix's personas are not staff; a superuser (staff) gets in.
    client.force_login(world.personas.admin)
    assert client.get("/admin/").status_code == 200


def test_the_matrix_covers_every_monitoring_route() -> None:
    """A monitoring page added later without a row here makes this fail."""
    from orchestration import monitor_urls
    from workitems import urls as workitem_urls

    names = {p.name for p in monitor_urls.urlpatterns} | {"manage", "reassign", "my_work"}
    covered = {
        "runs": "runs list",
        "runs_bulk": "bulk cancel preview",
        "run": "run detail",
        "run_action": "cancel",
        "step_action": "retry a failed step",
        "run_variable": "change a variable",
        "orchestrations": "orchestrations list",
        "upload": "upload definitions",
        "orchestration": "orchestration page",
        "version": "version page",
        "version_yaml": "version YAML download",
        "version_compare": "compare versions",
        "version_activate": "activate a version",
        "version_migrate": "migrate runs to a version",
        "analytics": "analytics",
        "analytics_orchestration": "analytics of one orchestration",
        "manage": "work items",
        "reassign": "reassign",
        "my_work": "my work",
    }
    labels = {r.label for r in MATRIX}
    assert names == set(covered)
    assert set(covered.values()) <= labels
    assert {p.name for p in workitem_urls.urlpatterns} >= {"manage", "reassign", "my_work"}


# --- controls shown only to those who may use them ---------------------------------------------


def test_the_end_users_record_page_has_no_monitoring_link(client, world):  # type: ignore[no-untyped-def]
    client.force_login(world.users["end_user"])
    html = client.get(f"/records/case/{world.case.pk}/").content.decode()
    assert "Open case" in html
    assert "/monitor/" not in html
    assert ">Monitoring<" not in html
    assert "/work-items/reassign/" not in html


def test_the_manager_and_the_admin_get_reassign_controls(client, world):  # type: ignore[no-untyped-def]
    client.force_login(world.users["manager"])
    html = client.get("/work-items/").content.decode()
    assert 'action="/work-items/reassign/"' in html
    assert "Reassign the selected items" in html
    assert f'name="items" value="{world.item.pk}"' in html

    client.force_login(world.users["admin"])
    html = client.get("/work-items/").content.decode()
    assert 'action="/work-items/reassign/"' in html
    assert f'name="items" value="{world.item.pk}"' in html


def test_who_may_see_work_items_but_not_reassign_gets_no_control(client, world):  # type: ignore[no-untyped-def]
    # view_workitem alone: the list, without checkboxes or the reassign form.
    viewer = UserFactory(username="viewer")
    grant(viewer, "workitems.view_workitem")
    client.force_login(viewer)
    html = client.get("/work-items/").content.decode()
    assert f"/records/case/{world.case.pk}/" in html  # the item is listed
    assert "/work-items/reassign/" not in html
    assert 'name="items"' not in html


def test_the_admins_run_page_offers_retry_on_the_failed_step(client, world):  # type: ignore[no-untyped-def]
    client.force_login(world.users["admin"])
    html = client.get(f"/monitor/runs/{world.failed.pk}/").content.decode()
    assert f'href="/monitor/steps/{world.failed_step.pk}/retry/"' in html
    assert f'href="/monitor/steps/{world.failed_step.pk}/skip/"' in html
    assert f'href="/monitor/runs/{world.failed.pk}/action/cancel/"' in html
    assert "division by zero" in html


def test_a_viewer_without_action_permissions_sees_no_action_controls(client, world):  # type: ignore[no-untyped-def]
    # view_run alone: the run page opens, with no control that would be refused.
    viewer = grant(UserFactory(username="viewer"), "orchestration.view_run")
    client.force_login(viewer)
    html = client.get(f"/monitor/runs/{world.failed.pk}/").content.decode()
    assert "division by zero" in html
    assert "/monitor/steps/" not in html
    assert "/action/" not in html
    runs = client.get("/monitor/runs/").content.decode()
    assert "/monitor/runs/bulk/" not in runs
