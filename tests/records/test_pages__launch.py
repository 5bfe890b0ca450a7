from __future__ import annotations

import pytest

from orchestration.models import Run
from tests.factories import auto_flow, grant, load, make_case, orchestration, screen_flow

pytestmark = pytest.mark.django_db

LAUNCH = "orchestration.launch_orchestration"


@pytest.fixture
def definitions(personas):  # type: ignore[no-untyped-def]
    """`triage` can be launched on a case; `needs_input` asks for an input the button cannot give;
    `other_type` runs on tickets; `on_save` is record-triggered."""
    from tests.factories import ticket_type

    ticket_type()
    load(
        auto_flow("score", outputs={"score": "1"}),
        screen_flow("review"),
        {
            **orchestration(
                "triage",
                stages=[
                    {"key": "score", "steps": [{"key": "s", "kind": "background", "flow": "score"}]},
                    {
                        "key": "review",
                        "label": "Human review",
                        "steps": [
                            {
                                "key": "r",
                                "kind": "interactive",
                                "flow": "review",
                                "assignee": {"user": "alice"},
                            }
                        ],
                    },
                ],
            ),
            "label": "Case triage",
        },
        orchestration(
            "needs_input",
            start={
                "type": "autolaunched",
                "record_type": "case",
                "inputs": [{"name": "reason", "type": "text", "required": True}],
            },
            stages=[{"key": "a", "steps": [{"key": "s", "kind": "background", "flow": "score"}]}],
        ),
        orchestration(
            "with_default",
            start={
                "type": "autolaunched",
                "record_type": "case",
                "inputs": [{"name": "reason", "type": "text", "required": True, "default": "'button'"}],
            },
            stages=[{"key": "a", "steps": [{"key": "s", "kind": "background", "flow": "score"}]}],
        ),
        orchestration(
            "other_type",
            start={"type": "autolaunched", "record_type": "ticket"},
            stages=[{"key": "a", "steps": [{"key": "s", "kind": "background", "flow": "score"}]}],
        ),
    )


def launch_buttons(html: str) -> list[str]:
    import re

    return re.findall(r'name="orchestration" value="(\w+)"', html)


def test_only_launchers_see_buttons_for_orchestrations_that_need_nothing_more(client, clerk, definitions):
    case = make_case("Case", owner=clerk)
    client.force_login(clerk)
    assert launch_buttons(client.get(f"/records/case/{case.pk}/").content.decode()) == []
    grant(clerk, LAUNCH)
    page = client.get(f"/records/case/{case.pk}/").content.decode()
    assert sorted(launch_buttons(page)) == ["triage", "with_default"]
    assert "Launch Case triage" in page


def test_launch_button_starts_a_run_and_the_panel_shows_it(
    client, clerk, definitions, django_capture_on_commit_callbacks
):
    grant(clerk, LAUNCH)
    case = make_case("Case", owner=clerk)
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/records/case/{case.pk}/launch/", {"orchestration": "triage"})
    assert response.status_code == 302
    assert response["Location"] == f"/records/case/{case.pk}/"
    run = Run.objects.get()
    assert run.record_id == case.pk and run.started_by == clerk
    page = client.get(response["Location"]).content.decode()
    assert f"Launched Case triage (run {run.pk}" in page
    runs = page.split('id="runs-heading"')[1]
    assert "Case triage" in runs
    assert '<span class="status-in_progress fw-semibold">In progress</span>' in runs
    assert "Stage: Human review" in runs


def test_launch_without_permission_reports_it_and_starts_nothing(client, clerk, definitions):
    case = make_case("Case", owner=clerk)
    client.force_login(clerk)
    response = client.post(f"/records/case/{case.pk}/launch/", {"orchestration": "triage"}, follow=True)
    assert "You cannot launch Case triage" in response.content.decode()
    assert not Run.objects.exists()


def test_orchestrations_the_page_does_not_offer_cannot_be_launched_from_it(client, clerk, definitions):
    grant(clerk, LAUNCH)
    case = make_case("Case", owner=clerk)
    client.force_login(clerk)
    for name in ("needs_input", "other_type", "missing"):
        response = client.post(f"/records/case/{case.pk}/launch/", {"orchestration": name}, follow=True)
        assert f"“{name}” cannot be launched from this record." in response.content.decode()
    assert not Run.objects.exists()


def test_a_launch_error_is_reported(client, clerk, definitions, monkeypatch):
    from orchestration.services import LaunchError

    def fail(**kwargs):  # type: ignore[no-untyped-def]
        raise LaunchError({"reason": ["this input is required"]})

    monkeypatch.setattr("records.views.launch.run_launch", fail)
    grant(clerk, LAUNCH)
    case = make_case("Case", owner=clerk)
    client.force_login(clerk)
    response = client.post(f"/records/case/{case.pk}/launch/", {"orchestration": "triage"}, follow=True)
    assert "Case triage could not be launched: reason: this input is required" in response.content.decode()


def test_launch_is_post_only(client, clerk, definitions):
    grant(clerk, LAUNCH)
    case = make_case("Case", owner=clerk)
    client.force_login(clerk)
    assert client.get(f"/records/case/{case.pk}/launch/").status_code == 405
    assert not Run.objects.exists()
