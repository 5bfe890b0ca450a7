"""Django admin for orchestration and workitems: every page opens, list pages do not run a
query per row, runs are read-only, tokens are shown once, versions activate via the service."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orchestration.models import ApiToken, OrchestrationVersion, Run
from orchestration.services import run_launch
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)

APPS = ("orchestration", "workitems")


def define() -> None:
    load(
        auto_flow("score", outputs={"score": "1"}),
        screen_flow("review"),
        orchestration(
            "proc",
            stages=[
                {"key": "one", "steps": [{"key": "s", "kind": "background", "flow": "score"}]},
                {
                    "key": "two",
                    "steps": [
                        {"key": "r", "kind": "interactive", "flow": "review", "assignee": {"queue": "triage"}}
                    ],
                },
            ],
        ),
    )


@pytest.fixture
def staff(personas) -> Client:
    client = Client()
    client.force_login(personas.admin)
    return client


def models_of_apps() -> list[type]:
    return [m for m in admin.site._registry if m._meta.app_label in APPS]


def test_every_model_is_registered():
    from django.apps import apps

    expected = {m for app in APPS for m in apps.get_app_config(app).get_models()}
    assert expected <= set(admin.site._registry)


def test_every_list_and_detail_page_opens(staff, personas):
    define()
    run_launch(orchestration="proc", record=make_case())
    from orchestration.services import api_token_create

    api_token_create(user=personas.bob, name="bob's script")
    from workitems.services import workitem_draft_save

    # A Work Guide draft: bob (in the triage queue) typed into the review item.
    item = WorkItem.objects.get()
    workitem_draft_save(item=item, user=personas.bob, screen=0, values={"comment": "half done"})
    from workitems.models import SavedFilter, WorkItemComment

    WorkItemComment.objects.create(item=item, author=personas.bob, body="On it.")
    SavedFilter.objects.create(user=personas.bob, name="Urgent", query="sort=priority")
    from django.utils import timezone

    from workitems.models import FiredRule, GroupProfile, OutOfOffice, PersonProfile

    FiredRule.objects.create(
        item=item, assignment=1, rule="remind", occurrence=0, scheduled_for=timezone.now()
    )
    PersonProfile.objects.create(user=personas.alice, manager=personas.charlie)
    GroupProfile.objects.create(group=personas.support).managers.add(personas.charlie)
    OutOfOffice.objects.create(
        user=personas.alice,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate(),
        delegate=personas.bob,
    )
    # A builder's draft (with its first revision) and an entry of the definitions' audit log.
    from orchestration.builder.drafts import draft_new
    from orchestration.models import DefinitionEvent

    draft_new(api_name="admin_draft", actor=personas.admin)
    if not DefinitionEvent.objects.exists():  # (activations write them, when the diff's audit is in)
        DefinitionEvent.objects.create(name="definitions.version.activated", version_number=1)
    # The Analytics rollups: rows for the day, and a day marked for the next refresh.
    from orchestration.rollup import mark, refresh

    refresh()
    mark([(timezone.localdate(), Run.objects.values_list("orchestration_id", flat=True).first())])
    for model in models_of_apps():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert staff.get(changelist).status_code == 200, changelist
        obj = model._default_manager.first()
        assert obj is not None, model
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert staff.get(change).status_code == 200, change


def test_run_pages_are_read_only(staff):
    define()
    run = run_launch(orchestration="proc", record=make_case())
    page = staff.get(reverse("admin:orchestration_run_change", args=[run.pk])).content.decode()
    assert 'name="status"' not in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page  # no Save buttons
    assert staff.get(reverse("admin:orchestration_run_add")).status_code == 403
    response = staff.post(reverse("admin:orchestration_run_change", args=[run.pk]), {"status": "completed"})
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == "in_progress"


@pytest.mark.parametrize(
    "url_name",
    [
        "orchestration_run",
        "orchestration_steprun",
        "orchestration_stagerun",
        "orchestration_runevent",
        "orchestration_orchestrationversion",
        "workitems_workitem",
    ],
)
def test_list_pages_cost_the_same_for_one_row_or_many(staff, url_name):
    define()
    url = reverse(f"admin:{url_name}_changelist")
    run_launch(orchestration="proc", record=make_case())
    staff.get(url)  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as one:
        assert staff.get(url).status_code == 200
    for i in range(4):
        run_launch(orchestration="proc", record=make_case(f"Case {i}"))
    assert WorkItem.objects.count() == 5
    with CaptureQueriesContext(connection) as many:
        assert staff.get(url).status_code == 200
    assert len(many) == len(one), [q["sql"] for q in many.captured_queries]


def test_token_created_in_the_admin_is_shown_once_and_works(staff, personas):
    define()
    response = staff.post(
        reverse("admin:orchestration_apitoken_add"), {"user": personas.admin.pk, "name": "from the admin"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r'<code id="api-token"[^>]*>([^<]+)</code>', response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert token.name == "from the admin"
    assert token.digest == ApiToken.digest_of(raw)
    api = Client().get("/api/orchestrations", headers={"Authorization": f"Bearer {raw}"})
    assert api.status_code == 200
    # The change page shows neither the raw token nor the digest, and cannot edit them.
    page = staff.get(reverse("admin:orchestration_apitoken_change", args=[token.pk])).content.decode()
    assert raw not in page
    assert token.digest not in page
    staff.post(
        reverse("admin:orchestration_apitoken_change", args=[token.pk]),
        {"name": "renamed", "digest": "0" * 64},
    )
    token.refresh_from_db()
    assert token.name == "renamed"
    assert token.digest == ApiToken.digest_of(raw)


def test_make_active_action_switches_the_active_version(staff):
    define()
    changed = orchestration(
        "proc", stages=[{"key": "x", "steps": [{"key": "s", "kind": "background", "flow": "score"}]}]
    )
    from orchestration.services import definitions_import

    definitions_import(items=[("v2.yaml", changed)], activate=False)
    v2 = OrchestrationVersion.objects.get(number=2)
    staff.post(
        reverse("admin:orchestration_orchestrationversion_changelist"),
        {"action": "make_active", "_selected_action": [v2.pk]},
    )
    assert dict(OrchestrationVersion.objects.values_list("number", "is_active")) == {1: False, 2: True}
    assert Run.objects.count() == 0
