"""Object-level checks (IDOR): for every URL with an object id, a persona who may see one object
of that kind swaps in the id of one they may not, and is refused with none of its data shown;
the same for ids in query strings (the Work Guide's `?item=`) and in POST bodies (bulk reassign,
bulk run actions, a step id on a run's page).

IDOR lists every URL of the URL conf whose parameters name an object: a `Swap` (who, the object
they may act on, the one they may not, what they get), or `GLOBAL` with the reason when the
permission covers every object of the kind (Django model permissions: view_run lets an admin see
every run; the URL walk already refuses everyone else). A URL with an id missing from IDOR
fails `test_every_url_with_an_object_id_is_in_the_table`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.test import Client

from orchestration.models import Run, RunStatus, StepRun
from orchestration.services import api_token_create, run_launch
from tests.factories import UserFactory, grant
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus

from .support import (
    E403,
    E404,
    Outcome,
    Refused,
    changed,
    client_for,
    db_state,
    fill,
    is_admin,
    url_routes,
)

pytestmark = pytest.mark.django_db

S = SimpleNamespace
# Parameters that pick an object (a type name or a panel name picks a kind, not an object).
OBJECT_PARAMS = {"pk", "run_id", "api_name", "number", "name", "index"}


@dataclass(frozen=True)
class Swap:
    persona: str
    mine: Callable[[S], dict[str, Any]]  # kwargs of an object the persona may act on
    theirs: Callable[[S], dict[str, Any]]  # kwargs of one they may not
    refused: Refused
    method: str = "GET"
    data: Callable[[S], dict[str, Any]] | None = None
    secrets: tuple[str, ...] = ()  # what the forbidden object holds


@dataclass(frozen=True)
class Global:
    reason: str


def _record(pk: Callable[[S], int], panel: str | None = None) -> Callable[[S], dict[str, Any]]:
    extra = {"panel": panel} if panel else {}
    return lambda s: {"type_name": "case", "pk": pk(s), **extra}


A = lambda s: s.record_a.pk  # noqa: E731
B = lambda s: s.record_b.pk  # noqa: E731
RECORD_B = ("Vault door", "combination-9931", "Open the vault", "bob-draft-5521", "bob-comment-8124")
MODEL_PERMISSION = Global("a model permission covers every object of the kind; the walk refuses the rest")

# Drafts are shared by those who build (as in Flow Builder): change_orchestration covers them all.
BUILDER = Global("change_orchestration: every draft; the walk refuses everyone else")

IDOR: dict[str, Swap | Global] = {
    **{
        f"builder:{name}": BUILDER
        for name in ("draft", "edit", "yaml", "download", "activate", "activate_confirm", "undo", "redo")
    },
    # The assignee sees record A through her work on it, and nothing of record B.
    "records:detail": Swap("assignee", _record(A), _record(B), E403, secrets=RECORD_B),
    "records:panel": Swap(
        "assignee", _record(A, "work_guide"), _record(B, "work_guide"), E403, secrets=RECORD_B
    ),
    "records:edit": Global("records.change_record is one permission for every record"),
    "records:launch": Global("records.view_record and orchestration.launch_orchestration, for every record"),
    "api:launch": MODEL_PERMISSION,
    "api:run": MODEL_PERMISSION,
    # view_run and the action's permission, for every run; a step of another run is a 404
    # (tests/orchestration/test_api_operations.py).
    "api:run_cancel": MODEL_PERMISSION,
    "api:step_retry": MODEL_PERMISSION,
    "api:step_skip": MODEL_PERMISSION,
    "api:step_resume": MODEL_PERMISSION,
    "api:migration_preview": MODEL_PERMISSION,  # import_definitions: every orchestration
    "api:migration_apply": MODEL_PERMISSION,
    "monitor:run": MODEL_PERMISSION,
    "monitor:run_action": MODEL_PERMISSION,
    "monitor:step_action": MODEL_PERMISSION,
    "monitor:run_variable": MODEL_PERMISSION,
    "monitor:orchestration": MODEL_PERMISSION,
    "monitor:version": MODEL_PERMISSION,
    "monitor:version_yaml": MODEL_PERMISSION,
    "monitor:version_compare": MODEL_PERMISSION,
    "monitor:analytics_orchestration": MODEL_PERMISSION,  # view_run: every run's figures
    "monitor:version_activate": MODEL_PERMISSION,
    "monitor:version_migrate": MODEL_PERMISSION,  # import_definitions: every version
    "workitems:outbox_message": Global("staff only, every message (development only)"),
    # Everyone's own API tokens: another person's token id does not exist for you.
    "account_token_revoke": Swap(
        "outsider",
        lambda s: {"pk": s.bobs_token.pk},
        lambda s: {"pk": s.ops_token.pk},
        E404,
        method="POST",
        secrets=("ops-own-8812",),
    ),
    # Work items: the assignee's own, her group's, the one she holds; bob's are a 404 to her.
    "workitems:guide_item": Swap(
        "assignee",
        lambda s: {"pk": s.mine.pk},
        lambda s: {"pk": s.bobs.pk},
        E404,
        secrets=RECORD_B,
    ),
    "workitems:guide_screen": Swap(
        "assignee",
        lambda s: {"pk": s.mine.pk},
        lambda s: {"pk": s.bobs.pk},
        E404,
        method="POST",
        data=lambda s: {"action": "save", "screen": "0", "comment": "overwritten"},
        secrets=RECORD_B,
    ),
    "workitems:guide_claim": Swap(
        "assignee", lambda s: {"pk": s.team.pk}, lambda s: {"pk": s.queued.pk}, E404, method="POST"
    ),
    "workitems:guide_release": Swap(
        "assignee", lambda s: {"pk": s.held.pk}, lambda s: {"pk": s.queued.pk}, E404, method="POST"
    ),
    # Comments: on her own item she writes one; on bob's it is a 404, nothing written or shown.
    "workitems:guide_comments": Swap(
        "assignee",
        lambda s: {"pk": s.mine.pk},
        lambda s: {"pk": s.bobs.pk},
        E404,
        method="POST",
        data=lambda s: {"body": "swapped-in comment"},
        secrets=RECORD_B,
    ),
    # Saved views of My Work: bob's opens for him; alice's is a 404 to him, as a missing one.
    "workitems:my_work_view_open": Swap(
        "outsider",
        lambda s: {"pk": s.bobs_view.pk},
        lambda s: {"pk": s.alices_view.pk},
        E404,
        secrets=("alice-view-4471", "leak"),
    ),
    "workitems:my_work_view_delete": Swap(
        "outsider",
        lambda s: {"pk": s.bobs_view.pk},
        lambda s: {"pk": s.alices_view.pk},
        E404,
        method="POST",
        secrets=("alice-view-4471",),
    ),
    "workitems:schedule": Global(
        "workitems.reassign_workitem covers every open item: managers move anyone's work"
    ),
    "workitems:my_work_claim": Swap(
        "assignee", lambda s: {"pk": s.team.pk}, lambda s: {"pk": s.queued.pk}, E404, method="POST"
    ),
    "workitems:my_work_release": Swap(
        "assignee", lambda s: {"pk": s.held.pk}, lambda s: {"pk": s.queued.pk}, E404, method="POST"
    ),
}
ROUTES = {r.key: r for r in url_routes() if not is_admin(r)}


def test_every_url_with_an_object_id_is_in_the_table() -> None:
    with_ids = {key for key, r in ROUTES.items() if OBJECT_PARAMS & set(r.params)}
    missing = sorted(with_ids - set(IDOR))
    assert not missing, (
        f"These URLs take an object id but are not in tests/security/test_idor.py IDOR: {missing}. "
        "Add a Swap (who may see which object, and the one they may not) or say why the "
        "permission covers every object (Global)."
    )
    assert not set(IDOR) - with_ids, f"IDOR names URLs without an object id: {set(IDOR) - with_ids}"


def _request(s: S, persona: str, method: str, url: str, data: dict[str, Any] | None) -> Any:
    client = client_for(s, persona)
    return client.get(url) if method == "GET" else client.post(url, data or {})


@pytest.mark.parametrize("key", sorted(k for k, v in IDOR.items() if isinstance(v, Swap)))
def test_swapping_in_an_id_the_persona_may_not_see_is_refused(key: str, scenario: S) -> None:
    swap = IDOR[key]
    assert isinstance(swap, Swap)
    route = ROUTES[key]
    data = swap.data(scenario) if swap.data else None
    out = Outcome()
    with transaction.atomic():
        mine = _request(scenario, swap.persona, swap.method, fill(route, swap.mine(scenario)), data)
        out.check(
            mine.status_code in (200, 302), f"{key}: the persona's own object answers {mine.status_code}"
        )
        transaction.set_rollback(True)
    url = fill(route, swap.theirs(scenario))
    with transaction.atomic():
        before = db_state()
        theirs = _request(scenario, swap.persona, swap.method, url, data)
        diff = changed(before, db_state())
        transaction.set_rollback(True)
    body = theirs.content.decode()
    out.check(theirs.status_code == swap.refused.status, f"{key}: {url} answers {theirs.status_code}")
    out.check(not diff, f"{key}: {url} was refused but changed {sorted(diff)}")
    leaked = [secret for secret in swap.secrets if secret in body]
    out.check(not leaked, f"{key}: {url} shows {leaked}")
    assert not out.problems, "\n".join(out.problems)


def test_a_missing_id_and_a_forbidden_one_look_the_same(scenario: S) -> None:
    """A work item someone else holds answers exactly like one that never existed."""
    client = client_for(scenario, "assignee")
    forbidden = client.get(f"/work-items/{scenario.bobs.pk}/")
    missing = client.get("/work-items/999999/")
    assert (forbidden.status_code, missing.status_code) == (404, 404)
    assert forbidden.content == missing.content


def test_global_rows_refuse_every_object_to_those_without_the_permission(scenario: S) -> None:
    """The other side of GLOBAL: the manager and the assignee get every run page refused, each
    run of the scenario tried (not only the one the walk fills in)."""
    for run in Run.objects.all():
        for persona in ("assignee", "manager"):
            response = client_for(scenario, persona).get(f"/monitor/runs/{run.pk}/")
            assert response.status_code == 403, (persona, run.pk)
            assert run.record_label not in response.content.decode()


# --- ids in the query string ----------------------------------------------------------------------


def test_the_work_guide_link_does_not_open_an_item_of_another_record(scenario: S) -> None:
    # Bob's item on record B, named in a link to record A (which alice may see).
    client = client_for(scenario, "assignee")
    html = client.get(f"/records/case/{scenario.record_a.pk}/?item={scenario.bobs.pk}").content.decode()
    assert "The work item in your link is not on this record." in html
    for secret in RECORD_B:
        assert secret not in html


def test_the_work_guide_link_does_not_open_someone_elses_item_on_the_same_record(scenario: S) -> None:
    # Bob's item on record A: alice sees the record, not his item's screen or his draft.
    client = client_for(scenario, "assignee")
    html = client.get(f"/records/case/{scenario.record_a.pk}/?item={scenario.theirs.pk}").content.decode()
    assert "Leaky roof" in html  # the record itself is hers to see
    assert "Inspect the leak" in html  # and her own item is listed
    assert "Call the insurer" not in html
    assert "bob-on-a-7710" not in html
    assert f'id="wi{scenario.theirs.pk}' not in html  # no form of his item


def test_my_work_does_not_show_an_item_named_in_the_link_that_is_not_the_viewers(scenario: S) -> None:
    html = client_for(scenario, "assignee").get(f"/my-work/?item={scenario.bobs.pk}").content.decode()
    assert "Open the vault" not in html and "Vault door" not in html
    assert "Inspect the leak" in html


def test_an_htmx_request_for_someone_elses_item_is_a_404(scenario: S) -> None:
    response = client_for(scenario, "assignee").get(
        f"/work-items/{scenario.bobs.pk}/", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 404
    assert "Open the vault" not in response.content.decode()


# --- ids in POST bodies ---------------------------------------------------------------------------


def test_bulk_reassign_moves_only_the_open_items_among_the_ids_sent(scenario: S) -> None:
    """A completed item and an id that does not exist ride along with an open one: only the open
    one moves; the others are reported and left exactly as they were."""
    completed_before = WorkItem.objects.values().get(pk=scenario.completed.pk)
    response = client_for(scenario, "manager").post(
        "/work-items/reassign/",
        {"items": [scenario.mine.pk, scenario.completed.pk, 999999], "kind": "user", "target": "charlie"},
        follow=True,
    )
    html = response.content.decode()
    assert WorkItem.objects.get(pk=scenario.mine.pk).assignee_user == scenario.p.charlie
    assert WorkItem.objects.values().get(pk=scenario.completed.pk) == completed_before
    assert "1 item reassigned to charlie." in html
    assert f"(item {scenario.completed.pk}) was not reassigned: already completed by alice" in html
    assert "Item 999999 does not exist" in html


def test_bulk_reassign_by_someone_who_may_not_reassign_touches_nothing(scenario: S) -> None:
    before = db_state()
    for persona in ("assignee", "outsider"):
        response = client_for(scenario, persona).post(
            "/work-items/reassign/",
            {"items": [scenario.mine.pk, scenario.bobs.pk], "kind": "user", "target": persona},
        )
        assert response.status_code == 403
    assert not changed(before, db_state())


def test_bulk_run_actions_act_only_on_what_the_preview_counted(scenario: S) -> None:
    """The bulk form carries a filter and the count the admin saw, not ids: a count that no longer
    matches (here: one more than there is) changes nothing."""
    before = db_state()
    response = client_for(scenario, "admin").post(
        "/monitor/runs/bulk/", {"action": "cancel", "status": "in_progress", "count": "99"}
    )
    assert response.status_code == 409
    assert not changed(before, db_state())
    refused = client_for(scenario, "manager").post(
        "/monitor/runs/bulk/", {"action": "cancel", "status": "in_progress", "count": "2"}
    )
    assert refused.status_code == 403
    assert not changed(before, db_state())


def test_a_step_action_acts_on_the_steps_own_run_only(scenario: S) -> None:
    """Step actions are addressed by the step alone (/monitor/steps/<id>/<action>/): there is no
    run id to disagree with. Retrying a step that is not failed (alice's open step of another
    run) changes nothing and goes back to that step's own run; skipping the failed step changes
    its run and no other."""
    client = client_for(scenario, "admin")
    before = db_state()
    response = client.post(f"/monitor/steps/{scenario.mine.step_run_id}/retry/", {"reason": "x"})
    assert response.status_code == 302
    assert response["Location"] == f"/monitor/runs/{scenario.open.pk}/"
    assert not changed(before, db_state())

    others = dict(Run.objects.exclude(pk=scenario.failed.pk).values_list("pk", "status"))
    response = client.post(f"/monitor/steps/{scenario.failed_step.pk}/skip/", {"out_x": "1", "reason": "x"})
    assert response["Location"] == f"/monitor/runs/{scenario.failed.pk}/"
    assert Run.objects.get(pk=scenario.failed.pk).status == RunStatus.COMPLETED
    assert StepRun.objects.get(pk=scenario.failed_step.pk).status == "completed"
    assert dict(Run.objects.exclude(pk=scenario.failed.pk).values_list("pk", "status")) == others


def test_a_draft_is_its_authors_alone(scenario: S) -> None:
    """Bob's drafts (on his item of record B, and of record A) stay his: alice's requests for
    his items neither read nor write them, and leave her no draft of his items."""
    drafts = list(WorkItemDraft.objects.order_by("pk").values())
    client = client_for(scenario, "assignee")
    for item in (scenario.bobs, scenario.theirs):
        assert client.get(f"/work-items/{item.pk}/").status_code == 404
        response = client.post(
            f"/work-items/{item.pk}/screen", {"action": "save", "screen": "0", "comment": "x"}
        )
        assert response.status_code == 404
    assert list(WorkItemDraft.objects.order_by("pk").values()) == drafts
    assert WorkItem.objects.get(pk=scenario.queued.pk).claimed_by == scenario.p.bob
    assert WorkItem.objects.get(pk=scenario.bobs.pk).status == WorkItemStatus.ASSIGNED


def test_the_api_launches_only_on_a_record_the_caller_may_see(scenario: S) -> None:
    """`record_id` in the launch body is an object id too. Someone who may launch but not see
    records got a run on any record, and its name back in the answer: now a record they may not
    see answers exactly like one that does not exist, and no run starts."""
    launcher = grant(UserFactory(username="launcher"), "orchestration.launch_orchestration")
    raw = api_token_create(user=launcher, name="t")[1]
    runs = Run.objects.count()

    def launch(record_id: int) -> Any:
        return Client().post(
            "/api/orchestrations/cases/runs",
            json.dumps({"record_id": record_id}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )

    forbidden, missing = launch(scenario.record_b.pk), launch(999999)
    assert (forbidden.status_code, missing.status_code) == (404, 404)
    assert forbidden.json() == {"errors": {"record_id": [f"record {scenario.record_b.pk} does not exist"]}}
    assert "Vault door" not in forbidden.content.decode()
    assert Run.objects.count() == runs
    # The service itself refuses too, for any other caller than the API.
    with pytest.raises(PermissionDenied):
        run_launch(orchestration="cases", record=scenario.record_b, actor=launcher)
    assert Run.objects.count() == runs
    # With records.view_record the same token launches on it.
    grant(launcher, "records.view_record")
    assert launch(scenario.record_b.pk).status_code == 201
    assert Run.objects.count() == runs + 1


def test_a_staff_member_may_create_an_api_token_only_for_themselves(scenario: S) -> None:
    """The user id in the admin's token form is an object id in a POST body: a token acts with
    its user's permissions, so minting one for someone else (a superuser) was a way to become
    them. Only a superuser may create tokens for others."""
    from django.contrib.auth.models import Permission

    from orchestration.models import ApiToken

    clerk: Any = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="orchestration", codename__in=["add_apitoken", "view_apitoken"]
        )
    )
    client = Client()
    client.force_login(clerk)
    tokens = ApiToken.objects.count()
    response = client.post(
        "/admin/orchestration/apitoken/add/", {"user": scenario.superuser.pk, "name": "borrowed"}
    )
    assert response.status_code == 200
    assert "Only a superuser can create a token for someone else" in response.content.decode()
    assert ApiToken.objects.count() == tokens

    response = client.post("/admin/orchestration/apitoken/add/", {"user": clerk.pk, "name": "my own"})
    assert response.status_code == 200
    assert ApiToken.objects.filter(user=clerk, name="my own").count() == 1
    # A superuser still creates them for anyone (e.g. an integration's service account).
    admin_client = client_for(scenario, "superuser")
    response = admin_client.post(
        "/admin/orchestration/apitoken/add/", {"user": scenario.p.alice.pk, "name": "for alice"}
    )
    assert response.status_code == 200
    assert ApiToken.objects.filter(user=scenario.p.alice, name="for alice").count() == 1


@pytest.mark.parametrize("suffix", ["", "panels/work_guide/", "panels/runs/"])
def test_a_missing_record_and_a_forbidden_one_look_the_same(suffix: str, scenario: S) -> None:
    """The assignee (no records permission) could tell which record ids exist: a 404 for a
    missing one, a 403 for one she may not see. Both are now the same 403."""
    client = client_for(scenario, "assignee")
    forbidden = client.get(f"/records/case/{scenario.record_b.pk}/{suffix}")
    missing = client.get(f"/records/case/999999/{suffix}")
    assert (forbidden.status_code, missing.status_code) == (403, 403)
    assert forbidden.content == missing.content
    # Who may see records still gets a 404 for one that does not exist.
    assert client_for(scenario, "outsider").get(f"/records/case/999999/{suffix}").status_code == 404
    # And the assignee's own record opens.
    assert client.get(f"/records/case/{scenario.record_a.pk}/{suffix}").status_code == 200


def test_the_outsider_sees_the_record_but_not_alices_item_or_draft(scenario: S) -> None:
    """Bob may see record A (Staff), and names alice's item in the link: the record opens, her
    item's screen and her draft do not."""
    html = client_for(scenario, "outsider").get(
        f"/records/case/{scenario.record_a.pk}/?item={scenario.mine.pk}"
    )
    text = html.content.decode()
    assert html.status_code == 200 and "Leaky roof" in text
    assert "alice-3306" not in text
    assert f'id="wi{scenario.mine.pk}' not in text
    assert "Inspect the leak" not in text
