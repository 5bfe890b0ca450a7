"""What the security walks share: the scenario (one per test module, built once and rolled back
at the end), the personas, the URL patterns of the root resolver, a fingerprint of the database
to prove that a refused request changed nothing, and the expectations a response is held to.

Personas (none is staff or superuser, so the permissions are what counts):

- anonymous;
- outsider (bob): an end user outside the group the work is assigned to, with the demo's Staff
  permissions (records.view/add/change_record), so he sees records but none of alice's work;
- assignee (alice): the work items of the scenario are hers (her own, her group's, one she
  claimed); she holds no permission at all, so everything she reaches comes from her work
  (the record page through the Work Guide's view grant, the email-link case);
- manager (charlie): the managers group (workitems.reassign_workitem) and view_workitem;
- admin (ops): the demo's Orchestration Admins permissions and Staff (as every demo user is).

The superuser `admin` (staff) is not one of the five: the Django admin and the development
Outbox are for staff only, and a separate test lets staff in."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.mail import EmailMessage
from django.db import connection
from django.test import Client, TestCase, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils import timezone

from orchestration.models import ApiToken, RunStatus, StepRun
from orchestration.services import api_token_create, api_token_revoke, run_launch, run_suspend
from records.models import Record
from records.services import record_update
from tests.factories import (
    RECORD_PERMS,
    UserFactory,
    auto_flow,
    grant,
    load,
    make_case,
    make_personas,
    orchestration,
    screen_flow,
)
from workitems.models import WorkItem, WorkItemStatus
from workitems.services import (
    saved_view_create,
    workitem_claim,
    workitem_comment,
    workitem_complete,
    workitem_draft_save,
)

PERSONAS = ("anonymous", "outsider", "assignee", "manager", "admin")
LOGGED_IN = PERSONAS[1:]
PASSWORD = "pw"  # tests.factories.UserFactory's
# A CSRF secret the walk's clients carry in their cookie and send back in the header: Django
# accepts the unmasked 32-character secret as the request token.
CSRF_SECRET = "walk" * 8
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
    "orchestration.change_orchestration",
)
MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


# --- the scenario -------------------------------------------------------------------------------


def _interactive(key: str, label: str, assignee: dict[str, str]) -> dict[str, Any]:
    return {"key": key, "label": label, "kind": "interactive", "flow": "review", "assignee": assignee}


def _stage(*steps: dict[str, Any], label: str = "Review") -> dict[str, Any]:
    return {"key": "review", "label": label, "steps": list(steps)}


CASES_STEPS = (
    _interactive("mine", "Inspect the leak", {"user": "alice"}),
    _interactive("team", "Order the tiles", {"group": "engineering"}),
    _interactive("held", "Book the roofer", {"group": "engineering"}),
    _interactive("theirs", "Call the insurer", {"user": "bob"}),
    _interactive("queued", "Triage the claim", {"queue": "triage"}),
)

# Text that only the scenario's objects hold: a refused response must contain none of it.
SECRETS = (
    "Leaky roof",  # record A's name
    "attic-drip-4417",  # record A's description
    "Vault door",  # record B's name
    "combination-9931",  # record B's description
    "Broken boiler",
    "Paused pump",
    "Inspect the leak",  # work item labels
    "Order the tiles",
    "Book the roofer",
    "Call the insurer",
    "Triage the claim",
    "Open the vault",
    "Wind the clock",
    "bob-draft-5521",  # bob's draft on his item
    "alice-3306",  # alice's draft on hers
    "bob-comment-8124",  # comments on bob's item and on alice's
    "alice-comment-5150",
    "bob-view-6620",  # the personas' saved views of My Work
    "alice-view-4471",
    "division by zero",  # the failed step's error
)


def build_scenario(outbox: Path) -> SimpleNamespace:
    """Everything the walks fill URLs from: records, runs with work items for the assignee, a
    failed step, two versions, flows, a draft, tokens, a message in the development outbox,
    and a logged-in session per persona."""
    from config.celery import app

    app.conf.task_always_eager = True  # the failing step runs in-process, after the "commit"
    try:
        with override_settings(PASSWORD_HASHERS=MD5, ORCHESTRATION_RETRY_BASE_SECONDS=0):
            return _build(outbox)
    finally:
        app.conf.task_always_eager = False


def _build(outbox: Path) -> SimpleNamespace:
    p = make_personas()
    grant(p.bob, *RECORD_PERMS)
    grant(p.charlie, "workitems.view_workitem")
    admins, _ = Group.objects.get_or_create(name="Orchestration Admins")
    for perm in ADMIN_PERMS:
        app_label, codename = perm.split(".")
        admins.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    ops: Any = grant(UserFactory(username="ops"), *RECORD_PERMS)
    ops.groups.add(admins)
    gone: Any = UserFactory(username="gone")  # a former employee: inactive, with a token

    load(
        screen_flow("review"),
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration("cases", stages=[_stage(*CASES_STEPS)]),
        orchestration("others", stages=[_stage(_interactive("bobs", "Open the vault", {"user": "bob"}))]),
        orchestration("quick", stages=[_stage(_interactive("once", "Wind the clock", {"user": "alice"}))]),
        # A run waiting on a wait step: the step action "Resume now" has one to act on.
        orchestration(
            "pausing",
            stages=[{"key": "hold", "steps": [{"key": "pause", "kind": "wait", "wait": {"for": "3d"}}]}],
        ),
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
    load(orchestration("cases", stages=[_stage(*CASES_STEPS, label="Review (v2)")]))

    with TestCase.captureOnCommitCallbacks(execute=True):  # eager Celery and emails, as on commit
        record_a = make_case("Leaky roof", description="attic-drip-4417")
        record_b = make_case("Vault door", description="combination-9931")
        record_b = record_update(record=record_b, values={"severity": "Medium"})  # a history row
        open_run = run_launch(orchestration="cases", record=record_a)
        quick_run = run_launch(orchestration="quick", record=record_a)
        secret_run = run_launch(orchestration="others", record=record_b)
        failed = run_launch(orchestration="failing", record=make_case("Broken boiler"))
        waiting = run_launch(orchestration="pausing", record=make_case("Cooling tower"))
        suspended = run_launch(orchestration="others", record=make_case("Paused pump"))
        run_suspend(run_id=suspended.pk)

        def item(run: Any, key: str) -> WorkItem:
            return WorkItem.objects.get(run=run, step_run__key=key)

        held = workitem_claim(item=item(open_run, "held"), user=p.alice)
        completed = workitem_complete(item=item(quick_run, "once"), user=p.alice, data={"approved": True})
        bobs = item(secret_run, "bobs")
        workitem_draft_save(item=bobs, user=p.bob, screen=0, values={"comment": "bob-draft-5521"})
        # On record A too, which alice sees: his draft there is his alone.
        workitem_draft_save(
            item=item(open_run, "theirs"), user=p.bob, screen=0, values={"comment": "bob-on-a-7710"}
        )
        workitem_draft_save(
            item=item(open_run, "mine"), user=p.alice, screen=0, values={"comment": "alice-3306"}
        )
        # Comments (the admin lists them; the IDOR table swaps bob's item in for alice's).
        workitem_comment(item=bobs, author=p.bob, body="bob-comment-8124")
        workitem_comment(item=item(open_run, "mine"), author=p.alice, body="alice-comment-5150")
        queued = workitem_claim(item=item(open_run, "queued"), user=p.bob)  # the triage queue's, held by bob
        # SLA and delegation rows (the admin lists them): a firing, managers, an absence.
        from workitems.models import FiredRule, GroupProfile, OutOfOffice, PersonProfile

        FiredRule.objects.create(
            item=bobs, assignment=1, rule="remind", occurrence=0, scheduled_for=timezone.now()
        )
        PersonProfile.objects.create(user=p.bob, manager=p.charlie)
        GroupProfile.objects.create(group=p.support).managers.add(p.charlie)
        OutOfOffice.objects.create(
            user=p.alice,
            starts_on=timezone.localdate() + dt.timedelta(days=30),  # later: nothing is routed yet
            ends_on=timezone.localdate() + dt.timedelta(days=31),
            delegate=p.bob,
        )
        # The Analytics rollups: rows for the day, and a day marked for the next refresh.
        from orchestration.rollup import mark, refresh

        refresh()
        mark([(timezone.localdate(), open_run.orchestration_id)])
    for run in (open_run, failed, suspended):
        run.refresh_from_db()
    assert (open_run.status, failed.status, suspended.status) == (
        RunStatus.IN_PROGRESS,
        RunStatus.ERROR,
        RunStatus.SUSPENDED,
    )
    assert completed.status == WorkItemStatus.COMPLETED

    users = {"outsider": p.bob, "assignee": p.alice, "manager": p.charlie, "admin": ops}
    tokens = {persona: api_token_create(user=u, name="walk")[1] for persona, u in users.items()}
    gone_token = api_token_create(user=gone, name="walk")[1]
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    revoked_token, revoked_raw = api_token_create(user=ops, name="revoked")
    api_token_revoke(token=revoked_token)
    expired_token, expired_raw = api_token_create(user=ops, name="expired", days=1)
    ApiToken.objects.filter(pk=expired_token.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    deleted_token, deleted_raw = api_token_create(user=ops, name="deleted")
    deleted_token.delete()
    # Login throttling's records (django-axes), so that its admin pages have an object to show.
    from axes.models import AccessAttempt, AccessFailureLog

    attempt = {"user_agent": "walk", "ip_address": "10.0.0.9", "username": "mallory", "http_accept": "*/*"}
    AccessAttempt.objects.create(
        **attempt, path_info="/login/", get_data="", post_data="", failures_since_start=3
    )
    AccessFailureLog.objects.create(**attempt, path_info="/login/", locked_out=False)
    # One of the outsider's own, for the tokens page's revoke button.
    bobs_token = api_token_create(user=p.bob, name="revocable")[0]
    # A saved view of My Work each: only its owner may open or delete it.
    bobs_view = saved_view_create(user=p.bob, name="bob-view-6620", params={"q": "vault"})
    alices_view = saved_view_create(user=p.alice, name="alice-view-4471", params={"q": "leak"})
    ops_token = api_token_create(user=ops, name="ops-own-8812")[0]
    # A draft in the builder (the admins may build; nobody else may see it).
    from orchestration.builder.drafts import draft_new

    walk_draft = draft_new(api_name="walk_draft", label="Walk draft 3391", actor=p.admin)
    from orchestration.models import DefinitionEvent

    # The scenario's imports with activation have written activation events already (one each);
    # only a scenario without them needs one for the admin walk.
    if not DefinitionEvent.objects.exists():
        DefinitionEvent.objects.create(name="definitions.version.activated", version_number=1)

    outbox.mkdir(parents=True, exist_ok=True)
    message = EmailMessage("Inspect the leak: Leaky roof", "attic-drip-4417", "flow@example.com", ["a@x.org"])
    (outbox / "walk.log").write_bytes(message.message().as_bytes() + b"\n" + b"-" * 79 + b"\n")

    sessions = {persona: _session_cookies(u) for persona, u in {**users, "superuser": p.admin}.items()}
    return SimpleNamespace(
        p=p,
        users={"anonymous": None, **users},
        superuser=p.admin,
        sessions=sessions,
        tokens=tokens,
        gone_token=gone_token,
        revoked_token=revoked_raw,
        expired_token=expired_raw,
        deleted_token=deleted_raw,
        bobs_token=bobs_token,
        bobs_view=bobs_view,
        alices_view=alices_view,
        ops_token=ops_token,
        draft=walk_draft,
        record_a=record_a,
        record_b=record_b,
        open=open_run,
        secret_run=secret_run,
        failed=failed,
        suspended=suspended,
        failed_step=StepRun.objects.get(run=failed, key="calc"),
        waiting_step=StepRun.objects.get(run=waiting, key="pause"),
        mine=item(open_run, "mine"),
        team=item(open_run, "team"),
        held=held,
        theirs=item(open_run, "theirs"),
        queued=queued,
        completed=completed,
        bobs=bobs,
        outbox=outbox,
        outbox_file="walk.log",
    )


def _session_cookies(user: Any) -> SimpleCookie:
    client = Client()
    client.force_login(user)
    return client.cookies


# --- requests -----------------------------------------------------------------------------------


def client_for(s: SimpleNamespace, persona: str, *, csrf: bool = True) -> Client:
    """A client that enforces CSRF like a browser meets it: with a valid token (`csrf`) or with
    none at all. Logged in as the persona through a session made once for the module."""
    client = Client(enforce_csrf_checks=True)
    if persona != "anonymous":
        for name, morsel in s.sessions[persona].items():
            client.cookies[name] = morsel.value
    if csrf:
        client.cookies["csrftoken"] = CSRF_SECRET
        client.defaults["HTTP_X_CSRFTOKEN"] = CSRF_SECRET
    return client


def send(client: Client, method: str, url: str, data: dict[str, Any] | None = None, **extra: Any) -> Any:
    if method == "GET":
        return client.get(url, **extra)
    return client.post(url, data or {}, **extra)


# --- the URL conf, walked -----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name", or the route's text for a pattern without a name
    route: str  # the whole route, e.g. "records/<slug:type_name>/<int:pk>/"
    name: str | None  # what reverse() takes
    params: tuple[str, ...]
    callback: Any
    regex: bool = False


def _params(pattern: Any) -> tuple[str, ...]:
    if isinstance(pattern, RoutePattern):
        return tuple(pattern.converters)
    if isinstance(pattern, RegexPattern):
        return tuple(pattern.regex.groupindex)
    return ()


def _walk(
    patterns: list[Any], prefix: str, ns: str | None, params: tuple[str, ...], regex: bool
) -> Iterator[Route]:
    for p in patterns:
        is_regex = regex or isinstance(p.pattern, RegexPattern)
        text = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            inner = f"{ns}:{p.namespace}" if ns and p.namespace else (p.namespace or ns)
            yield from _walk(p.url_patterns, text, inner, params + _params(p.pattern), is_regex)
        elif isinstance(p, URLPattern):
            name = f"{ns}:{p.name}" if ns and p.name else p.name
            yield Route(
                key=name or text,
                route=text,
                name=name,
                params=params + _params(p.pattern),
                callback=p.callback,
                regex=is_regex,
            )


def url_routes() -> list[Route]:
    """Every pattern of the root resolver, recursively (the Django admin's included)."""
    return list(_walk(get_resolver().url_patterns, "", None, (), False))


def fill(route: Route, values: dict[str, Any]) -> str:
    """The URL of `route` with its parameters taken from `values`."""
    from django.urls import reverse

    if route.name is not None:
        return reverse(route.name, kwargs={k: values[k] for k in route.params})
    # A pattern without a name: its groups ("(?P<url>.*)") or converters ("<path:object_id>")
    # are replaced by the values, anchors dropped.
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), route.route)
    text = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), text)
    return "/" + text.replace("^", "").replace("$", "")


def is_admin(route: Route) -> bool:
    return route.route.startswith("admin/")


# --- the database, fingerprinted ----------------------------------------------------------------

FINGERPRINT_APPS = {"auth", "admin", "orchestration", "records", "workitems"}
# Written by every request of a logged-in user or a token, and harmless: when a person last
# logged in, when a token was last used.
IGNORED_FIELDS = {"auth.user": {"last_login"}, "orchestration.apitoken": {"last_used_at"}}


def _fingerprinted() -> list[tuple[Any, set[str]]]:
    models = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.app_label not in FINGERPRINT_APPS or meta.proxy or model is Permission:
            continue
        models.append((model, IGNORED_FIELDS.get(meta.label_lower, set())))
    return models


def db_state() -> dict[str, str]:
    """model label -> digest of all its rows (every app that holds data, the many-to-many tables
    of users and groups included; sessions and permissions are left out).

    On PostgreSQL one statement digests every table (the walk asks this twice per request);
    elsewhere each model is read through the ORM."""
    models = _fingerprinted()
    if connection.vendor == "postgresql":
        parts = []
        for model, ignored in models:
            meta = model._meta
            row = "to_jsonb(t)" + "".join(f" - '{meta.get_field(f).column}'" for f in sorted(ignored))
            parts.append(
                f"SELECT '{meta.label_lower}', md5(coalesce(string_agg(({row})::text, '|' "
                f'ORDER BY t."{meta.pk.column}"), \'\')) FROM "{meta.db_table}" t'
            )
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts))
            return dict(cursor.fetchall())
    state = {}
    for model, ignored in models:
        fields = [f.attname for f in model._meta.concrete_fields if f.name not in ignored]
        rows = list(model._default_manager.order_by("pk").values_list(*fields))
        state[model._meta.label_lower] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return state


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


# --- what a response must be --------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """A refusal: `LOGIN` (302 to the login page, back to this URL afterwards), `ADMIN_LOGIN`,
    or a status code (401 the API without a valid token, 403 no permission, 404 an object the
    persona may not know exists, 405 a method the view does not take)."""

    status: int
    login: str = ""  # the login page's path, for a redirect to it

    def __str__(self) -> str:
        return f"→ {self.login}" if self.login else str(self.status)


LOGIN = Refused(302, "/login/")
ADMIN_LOGIN = Refused(302, "/admin/login/")
E401, E403, E404, E405 = Refused(401), Refused(403), Refused(404), Refused(405)


@dataclass(frozen=True)
class Allowed:
    """An answer that lets the persona in: `status` (a 302 goes `to` that path, a callable of
    the scenario evaluated after the request), and the models the request must have changed
    (none: it must change nothing, as every GET)."""

    status: int = 200
    to: Any = None
    writes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"302 → {self.to}" if self.status == 302 else str(self.status)


OK = Allowed()
CREATED = Allowed(201)


def to(where: Any, *writes: str) -> Allowed:
    return Allowed(302, where, writes)


Expect = Refused | Allowed


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, text: str) -> None:
        if not ok:
            self.problems.append(text)


def check_response(
    s: SimpleNamespace,
    expect: Expect,
    response: Any,
    url: str,
    before: dict[str, str],
    after: dict[str, str],
    where: str,
    out: Outcome,
) -> None:
    """Hold one response to its expectation; what is wrong is added to `out`."""
    got = response.status_code
    location = response.get("Location", "")
    diff = changed(before, after)
    if isinstance(expect, Refused):
        out.check(got == expect.status, f"{where}: expected {expect}, got {got} {location}")
        if expect.login:
            path = url.split("?")[0]
            out.check(
                location.startswith(f"{expect.login}?next={quote(path)}"),
                f"{where}: expected a redirect to {expect.login}?next={path}, got {location!r}",
            )
        out.check(not diff, f"{where}: refused ({got}) but changed {sorted(diff)}")
        body = response.content.decode(errors="replace")
        leaked = [secret for secret in SECRETS if secret in body]
        out.check(not leaked, f"{where}: refused ({got}) but its body shows {leaked}")
        return
    out.check(got == expect.status, f"{where}: expected {expect}, got {got} {location} {said(response)}")
    if expect.status == 302 and got == 302:
        target = expect.to(s) if callable(expect.to) else expect.to
        out.check(location == target, f"{where}: expected a redirect to {target!r}, got {location!r}")
    missing = set(expect.writes) - diff
    if expect.writes:
        out.check(
            not missing, f"{where}: allowed, but {sorted(missing)} did not change (changed: {sorted(diff)})"
        )
    else:
        out.check(not diff, f"{where}: should change nothing, changed {sorted(diff)}")


def said(response: Any) -> str:
    """The messages and errors of a page (for a failure's text)."""
    try:
        html = response.content.decode()
    except UnicodeDecodeError:
        return ""
    return " | ".join(re.findall(r"(?:invalid-feedback|alert|errorlist)[^>]*>(.*?)</", html, re.S))[:300]


def record_url(record: Record) -> str:
    return record.get_absolute_url()


def item_href(item: WorkItem) -> str:
    from workitems.panels import item_href as href
    from workitems.panels import record_of

    return href(item, record_of(item))
