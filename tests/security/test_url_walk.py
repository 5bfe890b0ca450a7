"""The URL walk: every pattern of the root resolver, requested as anonymous, an end user outside
the group, the assignee, a manager and an admin (tests/security/support.py says what each
holds), with GET and with POST, a valid CSRF token on every POST.

ACCESS says, per URL name, how to fill its parameters and what each persona gets. A URL that is
not in it fails `test_every_url_is_in_the_table`, so a new view cannot escape the walk. The
Django admin follows one rule, generated from its own patterns: staff only.

What the app promises:
- anonymous: a 302 to /login/?next=<the page> (the API: 401; public pages: healthz, login,
  the OpenAPI document; the Outbox: 404, it does not exist outside development);
- a logged-in persona without the permission a page needs: 403;
- an object the persona may not act on (a work item of someone else): 404, as for an id that
  does not exist, so ids cannot be probed;
- a method the view does not take: 405 (or the refusal the GET gets, when the permission check
  comes first);
- refused: the database is unchanged (support.db_state) and no scenario data is in the body;
- allowed: the status and the redirect's target are the ones below; a GET changes nothing, a
  POST changes at least the models it names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings

from orchestration.views.run_detail import RUN_ACTIONS, STEP_ACTIONS
from records.models import Record
from records.panels import PANELS
from tests.factories import auto_flow

from .support import (
    ADMIN_LOGIN,
    E401,
    E403,
    E404,
    E405,
    FILE_BACKEND,
    LOGGED_IN,
    LOGIN,
    OK,
    PASSWORD,
    PERSONAS,
    Allowed,
    Expect,
    Outcome,
    Refused,
    Route,
    changed,
    check_response,
    client_for,
    db_state,
    fill,
    is_admin,
    item_href,
    record_url,
    send,
    to,
    url_routes,
)

pytestmark = pytest.mark.django_db

S = SimpleNamespace
Table = dict[str, Expect]


@dataclass(frozen=True)
class Case:
    """One URL to request: its parameters, a query string, the POST body."""

    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    query: str = ""
    data: Callable[[S], dict[str, Any]] | None = None
    url: str | None = None  # for a pattern without a name (a regex): the literal URL


@dataclass(frozen=True)
class Access:
    """Who may request one URL name. `get`/`post` are None when the view does not take the
    method: every persona is then refused (405, or the GET's refusal when it comes first)."""

    cases: Callable[[S], list[Case]]
    get: Table | None
    post: Table | None = None
    outbox: bool = False  # asked with the file mail backend on (the development Outbox)


def only(**allowed: Expect) -> Table:
    """Anonymous to the login page, the personas named get what is given, the others 403."""
    return {"anonymous": LOGIN} | {p: E403 for p in LOGGED_IN} | allowed


def logged_in(expect: Expect) -> Table:
    return {"anonymous": LOGIN} | {p: expect for p in LOGGED_IN}


def everyone(expect: Expect) -> Table:
    return {p: expect for p in PERSONAS}


def items_of(**allowed: Expect) -> Table:
    """A work item: the personas who may not act on it get a 404, as if it did not exist."""
    return {"anonymous": LOGIN} | {p: E404 for p in LOGGED_IN} | allowed


def one(label: str, **kwargs: Any) -> Callable[[S], list[Case]]:
    return lambda s: [Case(label, {k: v(s) if callable(v) else v for k, v in kwargs.items()})]


def _upload(s: S) -> dict[str, Any]:
    text = yaml.safe_dump(auto_flow("uploaded")).encode()
    return {"file": SimpleUploadedFile("uploaded.yaml", text, content_type="application/x-yaml")}


def _edit(s: S) -> dict[str, Any]:
    record = Record.objects.get(pk=s.record_a.pk)
    return {"name": "Leaky roof", "severity": "High", "version": record.updated_at.isoformat()}


# Which run each run action is asked on (a new action without one fails with a KeyError here).
RUN_FOR_ACTION: dict[str, Callable[[S], Any]] = {
    "cancel": lambda s: s.open,
    "suspend": lambda s: s.open,
    "resume": lambda s: s.suspended,
    "recheck": lambda s: s.failed,
}
# A run action goes back to the run it was asked on (the one in the URL; each action its own).
RUN_OF_THE_URL = "the run in the URL"
# A step action acts on a failed step (retry, skip) or a waiting one (resume), and goes back to
# that step's run.
STEP_FOR_ACTION: dict[str, Callable[[S], Any]] = {
    "retry": lambda s: s.failed_step,
    "skip": lambda s: s.failed_step,
    "resume": lambda s: s.waiting_step,
}
RUN_OF_THE_STEP = "the run of the step in the URL"
A_URL = lambda s: record_url(s.record_a)  # noqa: E731
RUN_PAGE = lambda run: lambda s: f"/monitor/runs/{run(s).pk}/"  # noqa: E731


def _draft_pk(s: S) -> int:
    return int(s.draft.pk)


def _draft_page(query: str) -> Callable[[S], str]:
    return lambda s: f"/builder/{s.draft.pk}/{query}"


def _newest_draft(s: S) -> str:
    from orchestration.models import Draft

    return f"/builder/{Draft.objects.latest('pk').pk}/"


def _draft_yaml(s: S) -> dict[str, Any]:
    from orchestration.builder.drafts import draft_yaml

    return {
        "yaml": draft_yaml(s.draft.documents).replace("Walk draft 3391", "Walk draft 3392"),
        "revision": 1,
    }


ACCESS: dict[str, Access] = {
    # --- the site --------------------------------------------------------------------------------
    "home": Access(one("home"), get=logged_in(OK)),
    "healthz": Access(one("healthz"), get=everyone(OK)),
    # The probes: no login, nothing written (docs/operations.md). The broker is the real one.
    "readyz": Access(one("readyz"), get=everyone(OK)),
    # Prometheus sends METRICS_TOKEN; people need orchestration.view_run (the admin persona).
    "metrics": Access(
        one("metrics"),
        get={"anonymous": E401, "outsider": E403, "assignee": E403, "manager": E403, "admin": OK},
    ),
    "favicon.ico": Access(one("favicon"), get=everyone(Allowed(301, "/static/favicon.svg"))),
    # Everyone's own tokens: the page lists the viewer's, creating one writes a token.
    "account_tokens": Access(
        one("my tokens"), get=logged_in(OK), post=logged_in(Allowed(200, None, ("orchestration.apitoken",)))
    ),
    # The outsider's own token: only he may revoke it; for anyone else it does not exist.
    "account_token_revoke": Access(
        one("revoke a token", pk=lambda s: s.bobs_token.pk),
        get=None,
        post=items_of(outsider=to("/account/tokens/", "orchestration.apitoken")),
    ),
    "login": Access(
        one("login"),
        get=everyone(OK),
        post=everyone(to("/")),  # logs in as the outsider: allowed to anyone with his password
    ),
    "logout": Access(one("logout"), get=None, post=everyone(to("/login/"))),
    # --- records ---------------------------------------------------------------------------------
    # The records home: the types for everyone; counts and names for who may see records.
    "records:home": Access(one("records home"), get=logged_in(OK)),
    "records:list": Access(one("case list", type_name="case"), get=only(outsider=OK, admin=OK)),
    "records:new": Access(
        one("new case", type_name="case"),
        get=only(outsider=OK, admin=OK),
        post=only(
            outsider=to(lambda s: record_url(Record.objects.get(name="Walk-made")), "records.record"),
            admin=to(lambda s: record_url(Record.objects.get(name="Walk-made")), "records.record"),
        ),
    ),
    "records:detail": Access(
        one("record A", type_name="case", pk=lambda s: s.record_a.pk),
        # The assignee has no records permission: her work on the record lets her see it.
        get=only(outsider=OK, assignee=OK, admin=OK),
    ),
    "records:edit": Access(
        one("record A", type_name="case", pk=lambda s: s.record_a.pk),
        get=only(outsider=OK, admin=OK),
        post=only(outsider=to(A_URL, "records.record"), admin=to(A_URL, "records.record")),
    ),
    "records:launch": Access(
        one("record A", type_name="case", pk=lambda s: s.record_a.pk),
        get=None,
        # The outsider reaches the button's view but may not launch: the record page says so.
        post=only(outsider=to(A_URL), admin=to(A_URL, "orchestration.run")),
    ),
    "records:panel": Access(
        lambda s: [Case(name, {"type_name": "case", "pk": s.record_a.pk, "panel": name}) for name in PANELS],
        get=only(outsider=OK, assignee=OK, admin=OK),
    ),
    # --- the JSON API, with a session and no token (tests/security/test_api_walk.py: tokens) ------
    "api:orchestrations": Access(one("orchestrations"), get=everyone(E401)),
    "api:launch": Access(one("launch", api_name="cases"), get=None, post=everyone(E401)),
    "api:runs": Access(one("runs"), get=everyone(E401)),
    "api:run": Access(one("run", run_id=lambda s: s.failed.pk), get=everyone(E401)),
    "api:run_cancel": Access(one("cancel", run_id=lambda s: s.failed.pk), get=None, post=everyone(E401)),
    "api:step_retry": Access(
        one("retry", run_id=lambda s: s.failed.pk, step_run_id=lambda s: s.failed_step.pk),
        get=None,
        post=everyone(E401),
    ),
    "api:step_skip": Access(
        one("skip", run_id=lambda s: s.failed.pk, step_run_id=lambda s: s.failed_step.pk),
        get=None,
        post=everyone(E401),
    ),
    "api:step_resume": Access(
        one("resume", run_id=lambda s: s.waiting_step.run_id, step_run_id=lambda s: s.waiting_step.pk),
        get=None,
        post=everyone(E401),
    ),
    "api:migration_preview": Access(
        one("preview migration", api_name="cases"), get=None, post=everyone(E401)
    ),
    "api:migration_apply": Access(one("migrate", api_name="cases"), get=None, post=everyone(E401)),
    "workitems_api:work_items": Access(one("work items"), get=everyone(E401)),
    "workitems_api:work_item": Access(one("alice's item", item_id=lambda s: s.mine.pk), get=everyone(E401)),
    **{
        f"workitems_api:{action}": Access(
            one(f"{action} alice's item", item_id=lambda s: s.mine.pk), get=None, post=everyone(E401)
        )
        for action in ("complete", "claim", "release", "reassign")
    },
    "api:openapi": Access(one("document"), get=everyone(OK)),
    "api/^": Access(
        lambda s: [Case("no such endpoint", url="/api/nowhere")], get=everyone(E404), post=everyone(E404)
    ),
    # --- monitoring ------------------------------------------------------------------------------
    "monitor:runs": Access(one("runs"), get=only(admin=OK)),
    "monitor:runs_bulk": Access(
        lambda s: [Case("cancel runs in error", query="action=cancel&status=error")],
        get=only(admin=OK),
        post=only(admin=to("/monitor/runs/?status=error", "orchestration.run", "orchestration.runevent")),
    ),
    "monitor:run": Access(one("failed run", pk=lambda s: s.failed.pk), get=only(admin=OK)),
    "monitor:run_action": Access(
        lambda s: [Case(a, {"pk": RUN_FOR_ACTION[a](s).pk, "action": a}) for a in RUN_ACTIONS],
        get=only(admin=OK),
        post=only(admin=Allowed(302, RUN_OF_THE_URL, ("orchestration.runevent",))),
    ),
    "monitor:step_action": Access(
        lambda s: [Case(a, {"pk": STEP_FOR_ACTION[a](s).pk, "action": a}) for a in STEP_ACTIONS],
        get=only(admin=OK),
        post=only(admin=Allowed(302, RUN_OF_THE_STEP, ("orchestration.steprun", "orchestration.runevent"))),
    ),
    # orchestration.change_run_variables is given on its own (not in the demo's Orchestration
    # Admins group): every persona is refused. tests/orchestration/test_run_variables.py has
    # the people who may.
    "monitor:run_variable": Access(
        one("a variable of the failed run", pk=lambda s: s.failed.pk, name="total"), get=only(), post=only()
    ),
    "monitor:orchestrations": Access(one("list"), get=only(admin=OK)),
    "monitor:upload": Access(
        one("upload"),
        get=only(admin=OK),
        post=only(admin=to("/monitor/orchestrations/", "orchestration.flow")),
    ),
    "monitor:orchestration": Access(one("cases", api_name="cases"), get=only(admin=OK)),
    "monitor:version": Access(one("cases v1", api_name="cases", number=1), get=only(admin=OK)),
    "monitor:version_yaml": Access(one("cases v1", api_name="cases", number=1), get=only(admin=OK)),
    # The scenario has one version: compared with itself (no changes, the page still answers).
    "monitor:version_compare": Access(
        lambda s: [Case("cases v1 to v1", {"api_name": "cases"}, query="from=1&to=1")], get=only(admin=OK)
    ),
    "monitor:version_activate": Access(
        one("cases v1", api_name="cases", number=1),
        get=only(admin=OK),
        post=only(admin=to("/monitor/orchestrations/cases/v1/", "orchestration.orchestrationversion")),
    ),
    # No other version in the scenario: the page answers with its form and moves nothing.
    "monitor:version_migrate": Access(
        one("to cases v1", api_name="cases", number=1), get=only(admin=OK), post=only(admin=OK)
    ),
    "monitor:analytics": Access(one("all orchestrations"), get=only(admin=OK)),
    # --- the builder: the admins (change_orchestration) only --------------------------------------
    "builder:list": Access(one("drafts"), get=only(admin=OK)),
    "builder:create": Access(
        one("new draft"),
        get=None,
        post=only(admin=to(_newest_draft, "orchestration.draft", "orchestration.draftrevision")),
    ),
    "builder:draft": Access(one("walk draft", pk=_draft_pk), get=only(admin=OK)),
    "builder:edit": Access(
        one("add a stage", pk=_draft_pk),
        get=None,
        post=only(
            admin=to(
                _draft_page("?el=stage%3Awalk_stage"), "orchestration.draft", "orchestration.draftrevision"
            )
        ),
    ),
    "builder:yaml": Access(
        one("save the YAML", pk=_draft_pk),
        get=None,
        post=only(admin=to(_draft_page("?el=yaml"), "orchestration.draft", "orchestration.draftrevision")),
    ),
    "builder:download": Access(one("the draft's YAML", pk=_draft_pk), get=only(admin=OK)),
    "builder:activate": Access(
        one("activate", pk=_draft_pk),
        get=None,
        post=only(
            admin=to(
                "/monitor/orchestrations/walk_draft/v1/",
                "orchestration.orchestration",
                "orchestration.orchestrationversion",
                "orchestration.draft",
                "orchestration.definitionevent",
            )
        ),
    ),
    "builder:activate_confirm": Access(one("what activating changes", pk=_draft_pk), get=only(admin=OK)),
    # Nothing to undo or redo on a new draft: the page says so and changes nothing.
    "builder:undo": Access(one("undo", pk=_draft_pk), get=None, post=only(admin=OK)),
    "builder:redo": Access(one("redo", pk=_draft_pk), get=None, post=only(admin=OK)),
    "builder:sandbox": Access(
        one("try the draft", draft_id=_draft_pk),
        get=only(admin=OK),
        # The walk's draft starts on demand without inputs: the test run starts (in the session
        # only) and the page shows it.
        post=only(admin=to(_draft_page("try/"))),
    ),
    "builder:sandbox_act": Access(
        one("act in the draft's test run", draft_id=_draft_pk),
        get=None,
        # No test run in the session yet: back to the page, nothing changed.
        post=only(admin=to(_draft_page("try/"))),
    ),
    "monitor:analytics_orchestration": Access(one("cases", api_name="cases"), get=only(admin=OK)),
    # --- work items ------------------------------------------------------------------------------
    "workitems:my_work": Access(one("my work"), get=logged_in(OK)),
    "workitems:my_work_badge": Access(one("my work count"), get=logged_in(OK)),
    "workitems:my_work_claim": Access(
        one("the group's item", pk=lambda s: s.team.pk),
        get=None,
        post=items_of(assignee=to("/my-work/", "workitems.workitem")),
    ),
    "workitems:my_work_release": Access(
        one("the item alice holds", pk=lambda s: s.held.pk),
        get=None,
        post=items_of(assignee=to("/my-work/", "workitems.workitem")),
    ),
    # Saved views of My Work: everyone saves their own; only its owner opens or deletes one.
    "workitems:my_work_view_save": Access(
        one("save a view"), get=None, post=logged_in(to("/my-work/?q=walk", "workitems.savedfilter"))
    ),
    "workitems:my_work_view_open": Access(
        one("bob's view", pk=lambda s: s.bobs_view.pk), get=items_of(outsider=to("/my-work/?q=vault"))
    ),
    "workitems:my_work_view_delete": Access(
        one("bob's view", pk=lambda s: s.bobs_view.pk),
        get=None,
        post=items_of(outsider=to("/my-work/", "workitems.savedfilter")),
    ),
    "workitems:manage": Access(one("work items"), get=only(manager=OK, admin=OK)),
    # Due date and priority: who may reassign (the manager, the admin); saved, back to the page.
    "workitems:schedule": Access(
        one("alice's item", pk=lambda s: s.mine.pk),
        get=only(manager=OK, admin=OK),
        post=only(
            manager=to(
                lambda s: f"/work-items/{s.mine.pk}/schedule/", "workitems.workitem", "orchestration.runevent"
            ),
            admin=to(
                lambda s: f"/work-items/{s.mine.pk}/schedule/", "workitems.workitem", "orchestration.runevent"
            ),
        ),
    ),
    # The people picker lists every active person: for those who manage work only.
    # Everyone may look people up (a delegate for their out of office); groups and queues are
    # listed to managers only (tests/workitems/test_picker.py).
    "workitems:pick": Access(
        lambda s: [Case("people named a", query="q=a&kinds=user,group,queue")], get=logged_in(OK)
    ),
    # Each persona's own absence; someone else's (?user=) is for their manager (test_delegation.py).
    "workitems:out_of_office": Access(
        one("own out of office"),
        get=logged_in(OK),
        post=logged_in(to("/account/out-of-office/", "workitems.outofoffice")),
    ),
    "workitems:reassign": Access(
        one("reassign alice's item"),
        get=None,
        post=only(
            manager=to("/work-items/", "workitems.workitem"), admin=to("/work-items/", "workitems.workitem")
        ),
    ),
    "workitems:guide_item": Access(
        one("alice's item", pk=lambda s: s.mine.pk), get=items_of(assignee=to(lambda s: item_href(s.mine)))
    ),
    "workitems:guide_screen": Access(
        one("alice's item", pk=lambda s: s.mine.pk),
        get=None,
        # "Save for later": the draft is kept and the record page comes back.
        post=items_of(assignee=to(A_URL, "workitems.workitemdraft")),
    ),
    "workitems:guide_claim": Access(
        one("the group's item", pk=lambda s: s.team.pk),
        get=None,
        post=items_of(assignee=to(lambda s: item_href(s.team), "workitems.workitem")),
    ),
    "workitems:guide_release": Access(
        one("the item alice holds", pk=lambda s: s.held.pk),
        get=None,
        post=items_of(assignee=to(A_URL, "workitems.workitem")),
    ),
    # An item's comments: its assignee and those who see every item (view_workitem) read and
    # write them; she comes back to the item in the Work Guide, they to the comments page.
    "workitems:guide_comments": Access(
        one("alice's item", pk=lambda s: s.mine.pk),
        get=items_of(assignee=OK, manager=OK, admin=OK),
        post=items_of(
            assignee=to(
                lambda s: item_href(s.mine).split("#")[0] + f"#work-item-{s.mine.pk}-comments",
                "workitems.workitemcomment",
                "orchestration.runevent",
            ),
            manager=to(
                lambda s: f"/work-items/{s.mine.pk}/comments",
                "workitems.workitemcomment",
                "orchestration.runevent",
            ),
            admin=to(
                lambda s: f"/work-items/{s.mine.pk}/comments",
                "workitems.workitemcomment",
                "orchestration.runevent",
            ),
        ),
    ),
    # The development Outbox (file mail backend on): staff only, a 404 for anyone else, signed in
    # or not (test_staff_get_into_the_admin_and_the_outbox lets staff in).
    "workitems:outbox": Access(one("outbox"), get=everyone(E404), outbox=True),
    "workitems:outbox_message": Access(
        one("a message", name=lambda s: s.outbox_file, index=0), get=everyone(E404), outbox=True
    ),
}

POST_DATA: dict[str, Callable[[S], dict[str, Any]]] = {
    "login": lambda s: {"username": "bob", "password": PASSWORD},
    "account_tokens": lambda s: {"name": "walk-made", "lifetime": "30"},
    "records:new": lambda s: {"name": "Walk-made", "severity": "High"},
    "records:edit": _edit,
    "records:launch": lambda s: {"orchestration": "cases"},
    "api:launch": lambda s: {"record_id": s.record_a.pk},
    "monitor:runs_bulk": lambda s: {"action": "cancel", "status": "error", "count": "1", "reason": "walk"},
    "monitor:run_action": lambda s: {"reason": "walk"},
    "monitor:step_action": lambda s: {"reason": "walk", "out_x": "1"},
    "monitor:run_variable": lambda s: {"var-total-value": "1", "var-total-reason": "walk"},
    "monitor:upload": _upload,
    "builder:create": lambda s: {"api_name": "walk_made", "label": "Walk made"},
    "builder:edit": lambda s: {"op": "stage_add", "new_key": "walk_stage", "revision": 1},
    "builder:yaml": _draft_yaml,
    "builder:activate": lambda s: {"revision": 1},
    "builder:undo": lambda s: {"revision": 1},
    "builder:redo": lambda s: {"revision": 1},
    "workitems:my_work_view_save": lambda s: {"name": "walk-made view", "q": "walk"},
    "workitems:schedule": lambda s: {"due_at": "2031-01-01T10:00", "priority": "4", "reason": "walk"},
    "workitems:reassign": lambda s: {
        "items": [s.mine.pk],
        "kind": "user",
        "target": "charlie",
        "reason": "walk",
    },
    "workitems:guide_screen": lambda s: {"action": "save", "screen": "0", "comment": "walk"},
    "workitems:guide_comments": lambda s: {"body": "walk"},
    "workitems:out_of_office": lambda s: {
        "action": "save",
        "starts_on": dt.date.today().isoformat(),
        "ends_on": (dt.date.today() + dt.timedelta(days=2)).isoformat(),
        "delegate": "admin",  # not one of the personas who post (ops is the admin persona)
    },
}


# --- the Django admin: one rule for all of admin/ ----------------------------------------------


def admin_values(s: S, route: Route) -> dict[str, Any]:
    """Parameters of an admin URL, from the scenario: an object of the model the pattern's
    ModelAdmin manages."""
    from django.contrib.contenttypes.models import ContentType

    model_admin = getattr(route.callback, "model_admin", None)
    values: dict[str, Any] = {
        "url": "nowhere/",
        "app_label": "records",
        "content_type_id": ContentType.objects.get_for_model(Record).pk,
    }
    if model_admin is not None:
        obj = model_admin.model._default_manager.order_by("pk").first()
        assert obj is not None, f"the scenario has no {model_admin.model.__name__} for {route.route}"
        values["object_id"] = values["id"] = obj.pk
    else:
        # The user's password page (<id>) and "view on site" (a record): no ModelAdmin attached.
        values["object_id"] = s.record_a.pk
        values["id"] = s.p.alice.pk
    return values


def admin_expect(route: Route, method: str) -> Expect:
    """Staff only: a non-staff persona, signed in or not, is sent to the admin's login page; the
    login page itself answers everyone, and its logout sends non-staff to the admin index
    (admin.site.admin_view) without logging them out."""
    if route.key == "admin:login":
        return OK  # the form (a POST with a wrong password shows it again)
    if route.key == "admin:logout":
        return Allowed(302, "/admin/")
    return ADMIN_LOGIN


# --- the walk ----------------------------------------------------------------------------------

ROUTES = url_routes()
SITE_ROUTES = [r for r in ROUTES if not is_admin(r)]
ADMIN_ROUTES = [r for r in ROUTES if is_admin(r)]


def test_every_url_is_in_the_table() -> None:
    missing = [f"{r.key} ({r.route})" for r in SITE_ROUTES if r.key not in ACCESS]
    assert not missing, (
        f"These URL patterns are not in tests/security/test_url_walk.py ACCESS: {missing}. Add a "
        "row saying how to fill their parameters and what each persona gets (and, if they take "
        "POST, a body in POST_DATA): a new view must not escape the authorization walk."
    )
    stale = set(ACCESS) - {r.key for r in SITE_ROUTES}
    assert not stale, f"ACCESS names URL patterns that no longer exist: {sorted(stale)}"
    assert ADMIN_ROUTES, "the Django admin's patterns were not found under admin/"


def _refusal_for_method(get: Expect | None) -> set[Expect]:
    """A method the view does not take: 405, or the refusal the GET gets when the login or
    permission check comes before the method check."""
    refusals: set[Expect] = {E405}
    if isinstance(get, Refused):
        refusals.add(get)
    return refusals


def ask(
    s: S,
    key: str,
    case: Case,
    method: str,
    persona: str,
    expect: Expect | set[Expect],
    out: Outcome,
    *,
    htmx: bool = False,
) -> None:
    route = next(r for r in ROUTES if r.key == key)
    url = case.url or fill(route, case.kwargs)
    if case.query:
        url = f"{url}?{case.query}"
    where = f"{method} {url} ({key}, {case.label}) as {persona}{' (htmx)' if htmx else ''}"
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": f"http://testserver{url}"} if htmx else {}
    # Each request in a savepoint of its own, rolled back once it is checked: every persona finds
    # the scenario as built, and the next request is not affected by what this one did.
    with transaction.atomic():
        before = db_state()
        data = (POST_DATA.get(key) or (lambda s: {}))(s) if method == "POST" else None
        response = send(client_for(s, persona), method, url, data, **headers)
        after = db_state()
        try:
            _judge(s, case, method, url, expect, response, before, after, where, out, htmx)
        finally:
            transaction.set_rollback(True)


def _judge(
    s: S,
    case: Case,
    method: str,
    url: str,
    expect: Expect | set[Expect],
    response: Any,
    before: dict[str, str],
    after: dict[str, str],
    where: str,
    out: Outcome,
    htmx: bool,
) -> None:
    if isinstance(expect, set):
        # One of several refusals will do (the order of the view's checks).
        chosen = next((e for e in expect if e.status == response.status_code), None)
        if chosen is None and not (htmx and LOGIN in expect):
            out.problems.append(
                f"{where}: expected one of {sorted(map(str, expect))}, got {response.status_code}"
            )
            return
        expect = chosen or LOGIN
    if isinstance(expect, Allowed) and expect.to == RUN_OF_THE_URL:
        expect = to(f"/monitor/runs/{case.kwargs['pk']}/", *expect.writes)
    if isinstance(expect, Allowed) and expect.to == RUN_OF_THE_STEP:
        from orchestration.models import StepRun

        run_id = StepRun.objects.values_list("run_id", flat=True).get(pk=case.kwargs["pk"])
        expect = to(f"/monitor/runs/{run_id}/", *expect.writes)
    if htmx:
        if isinstance(expect, Allowed):
            # htmx answers with partials where a browser gets a redirect: only "a GET changes
            # nothing" is held here (the plain walk checks the rest).
            if method == "GET":
                check_response(s, Allowed(response.status_code), response, url, before, after, where, out)
            return
        if expect == LOGIN:
            # The whole page goes to the login page (config.middleware), not a login form in a panel.
            out.check(
                response.get("HX-Redirect", "").startswith(f"/login/?next={url.split('?')[0]}"),
                f"{where}: expected HX-Redirect to the login page, got {response.status_code} "
                f"{response.get('HX-Redirect')!r}",
            )
            expect = Refused(200)
    check_response(s, expect, response, url, before, after, where, out)


def _outbox_settings(s: S, access: Access) -> dict[str, Any]:
    if not access.outbox:
        return {}
    return {"MAILERS": {"default": {"BACKEND": FILE_BACKEND, "OPTIONS": {"file_path": str(s.outbox)}}}}


@pytest.mark.parametrize("key", sorted(ACCESS))
def test_walk(key: str, scenario: S) -> None:
    access = ACCESS[key]
    out = Outcome()
    with override_settings(**_outbox_settings(scenario, access)):
        for case in access.cases(scenario):
            for method, table in (("GET", access.get), ("POST", access.post)):
                for persona in PERSONAS:
                    if table is None:
                        other = access.get if method == "POST" else access.post
                        expect: Expect | set[Expect] = _refusal_for_method((other or {}).get(persona))
                    else:
                        expect = table[persona]
                    ask(scenario, key, case, method, persona, expect, out)
    assert not out.problems, "\n".join(out.problems)


@pytest.mark.parametrize("key", sorted(ACCESS))
def test_walk_with_htmx(key: str, scenario: S) -> None:
    """The same walk as htmx sends it (HX-Request): the partial responses and the login redirect
    take other code paths, and refuse the same personas."""
    access = ACCESS[key]
    out = Outcome()
    with override_settings(**_outbox_settings(scenario, access)):
        for case in access.cases(scenario):
            for method, table in (("GET", access.get), ("POST", access.post)):
                for persona in PERSONAS:
                    if table is None:
                        other = access.get if method == "POST" else access.post
                        expect: Expect | set[Expect] = _refusal_for_method((other or {}).get(persona))
                    else:
                        expect = table[persona]
                    ask(scenario, key, case, method, persona, expect, out, htmx=True)
    assert not out.problems, "\n".join(out.problems)


def test_the_django_admin_is_for_staff_only(scenario: S) -> None:
    """Every admin pattern (generated from the admin's own URL conf), GET and POST, for the five
    personas: none is staff, so none gets in, and nothing changes."""
    out = Outcome()
    for persona in PERSONAS:
        # The database is compared once per persona (over ~120 URLs, 2 methods each), not per request:
        # a change is reported with the persona, and the walk above names single requests.
        with transaction.atomic():
            before = db_state()
            for route in ADMIN_ROUTES:
                url = fill(route, admin_values(scenario, route))
                for method in ("GET", "POST"):
                    data = {"username": "bob", "password": "wrong"} if route.key == "admin:login" else {}
                    response = send(client_for(scenario, persona), method, url, data)
                    where = f"{method} {url} ({route.key}) as {persona}"
                    check_response(
                        scenario, admin_expect(route, method), response, url, before, before, where, out
                    )
            diff = changed(before, db_state())
            out.check(not diff, f"the admin's URLs as {persona} changed {sorted(diff)}")
            transaction.set_rollback(True)
    assert not out.problems, "\n".join(out.problems)


def test_staff_get_into_the_admin_and_the_outbox(scenario: S) -> None:
    """The other side of the admin rule: a superuser opens every admin page (no login redirect,
    no error), and the Outbox."""
    client = client_for(scenario, "superuser")
    problems = []
    for route in ADMIN_ROUTES:
        if route.key in ("admin:logout", "admin:autocomplete"):
            continue  # logout is a POST; autocomplete needs a field to complete (400/403 without)
        url = fill(route, admin_values(scenario, route))
        response = client.get(url)
        # 403: a ModelAdmin that allows no adding or changing (runs, events are read-only); 404:
        # the admin's catch-all for an unknown page.
        if response.status_code not in (200, 302, 403, 404) or response.get("Location", "").startswith(
            "/admin/login/"
        ):
            problems.append(
                f"GET {url} ({route.key}) as a superuser: {response.status_code} "
                f"{response.get('Location', '')}"
            )
    assert not problems, "\n".join(problems)
    with override_settings(**_outbox_settings(scenario, ACCESS["workitems:outbox"])):
        assert "Inspect the leak: Leaky roof" in client.get("/dev/outbox/").content.decode()
        assert "attic-drip-4417" in client.get(f"/dev/outbox/{scenario.outbox_file}/0/").content.decode()
