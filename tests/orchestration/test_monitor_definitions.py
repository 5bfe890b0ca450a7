"""The Orchestrations monitoring page: figures per orchestration, versions, a version's diagram,
activating a version. Uploads are in test_monitor_definitions__upload.py."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration.models import OrchestrationVersion, Run, RunStatus
from orchestration.selectors import orchestration_stats, percentile_cont
from tests.factories import auto_flow, grant, load, make_case, orchestration, screen_flow

from .engine_support import bg, launch, stage, task

pytestmark = pytest.mark.django_db

LIST = "/monitor/orchestrations/"


def _viewer(user):  # type: ignore[no-untyped-def]
    return grant(user, "orchestration.view_run")


def _importer(user):  # type: ignore[no-untyped-def]
    return grant(user, "orchestration.view_run", "orchestration.import_definitions")


def _simple(api_name: str = "proc", label: str = "") -> None:
    doc = orchestration(api_name, stages=[stage("only", bg("b", "noop"))])
    if label:
        doc["label"] = label
    load(auto_flow("noop"), doc)


def _runs(api_name: str, status: str, *durations: float) -> None:
    """Runs in `status`, each lasting the given seconds (started and ended set directly)."""
    version = OrchestrationVersion.objects.get(orchestration__api_name=api_name, is_active=True)
    start = timezone.now() - dt.timedelta(days=1)
    for seconds in durations:
        Run.objects.create(
            orchestration=version.orchestration,
            version=version,
            status=status,
            started_at=start,
            ended_at=start + dt.timedelta(seconds=seconds),
        )


def _row(html: str, api_name: str) -> str:
    """The table row of one orchestration."""
    start = html.index(f'data-orchestration="{api_name}"')
    return html[start : html.index("</tr>", start)]


# --- figures ----------------------------------------------------------------------------------


def test_percentile_matches_postgresql_percentile_cont():
    assert percentile_cont([], 0.9) is None
    assert percentile_cont([5.0], 0.9) == 5.0
    assert percentile_cont([float(s) for s in range(10, 101, 10)], 0.9) == pytest.approx(91.0)
    assert percentile_cont([1.0, 2.0], 0.5) == pytest.approx(1.5)


def test_figures_per_orchestration(personas, client):
    _simple("loan_approval", label="Loan approval")
    _simple("idle")
    # Completed runs of 10, 20 … 100 s: average 55 s, p90 (interpolated) 91 s.
    _runs("loan_approval", RunStatus.COMPLETED, *range(10, 101, 10))
    _runs("loan_approval", RunStatus.ERROR, 1, 1)
    # Canceled and failed runs count as finished but not in the durations.
    _runs("loan_approval", RunStatus.CANCELED, 5000, 5000, 5000)
    _runs("loan_approval", RunStatus.IN_PROGRESS, 1)

    stats = {s.orchestration.api_name: s for s in orchestration_stats()}
    loan = stats["loan_approval"]
    assert loan.by_status == {"completed": 10, "error": 2, "canceled": 3, "in_progress": 1}
    assert loan.completion_rate == pytest.approx(10 / 15)
    assert loan.avg_seconds == pytest.approx(55.0)
    assert loan.p90_seconds == pytest.approx(91.0)
    assert (loan.active_number, loan.version_count, loan.failed) == (1, 1, 2)
    idle = stats["idle"]
    assert (idle.by_status, idle.completion_rate, idle.avg_seconds, idle.p90_seconds) == (
        {},
        None,
        None,
        None,
    )

    client.force_login(_viewer(personas.alice))
    html = client.get(LIST).content.decode()
    row = _row(html, "loan_approval")
    assert "Loan approval" in row
    assert "66.7 %" in row
    assert "55 s" in row
    assert "1 min 31 s" in row
    assert 'href="/monitor/runs/?orchestration=loan_approval&amp;status=error"' in row
    assert 'href="/monitor/runs/?orchestration=loan_approval&amp;status=completed"' in row
    assert "no runs" in _row(html, "idle")


def test_failed_runs_link_opens_the_runs_page_on_those_runs(personas, client):
    _simple("loan_approval")
    _runs("loan_approval", RunStatus.ERROR, 1)
    _runs("loan_approval", RunStatus.COMPLETED, 1)
    client.force_login(_viewer(personas.alice))
    row = _row(client.get(LIST).content.decode(), "loan_approval")
    href = re.search(r'class="link-danger fw-bold" href="([^"]+)"', row)
    assert href is not None
    runs_page = client.get(html_lib.unescape(href.group(1)))
    assert runs_page.status_code == 200
    failed = Run.objects.get(status=RunStatus.ERROR)
    completed = Run.objects.get(status=RunStatus.COMPLETED)
    assert f"/monitor/runs/{failed.pk}/" in runs_page.content.decode()
    assert f"/monitor/runs/{completed.pk}/" not in runs_page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_figures_count_a_real_run(personas):
    load(
        screen_flow("review"),
        orchestration("proc", stages=[stage("s", bg("b", "noop"))]),
        auto_flow("noop"),
    )
    launch("proc", record=make_case())
    (stats,) = orchestration_stats()
    assert stats.by_status == {"completed": 1}
    assert stats.completion_rate == 1.0
    assert stats.avg_seconds is not None and stats.avg_seconds >= 0


def test_active_version_and_version_count(personas, client):
    _simple("proc")
    load(orchestration("proc", stages=[stage("only", bg("b", "noop")), stage("more", bg("c", "noop"))]))
    client.force_login(_viewer(personas.alice))
    row = _row(client.get(LIST).content.decode(), "proc")
    assert 'href="/monitor/orchestrations/proc/v2/"' in row
    assert '<td class="text-end version-count">2</td>' in row


def test_list_query_count_does_not_grow_with_orchestrations(personas, client):
    client.force_login(_viewer(personas.alice))

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LIST).status_code == 200
        return len(ctx.captured_queries)

    _simple("p0")
    _runs("p0", RunStatus.COMPLETED, 3, 4)
    one = count()
    for i in range(1, 10):
        _simple(f"p{i}")
        _runs(f"p{i}", RunStatus.COMPLETED, 3, 4)
        _runs(f"p{i}", RunStatus.ERROR, 1)
    assert count() == one
    with CaptureQueriesContext(connection) as ctx:
        assert len(orchestration_stats()) == 10
    assert len(ctx.captured_queries) == 3  # orchestrations, runs by status, durations


# --- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [LIST, "/monitor/orchestrations/proc/", "/monitor/orchestrations/proc/v1/"],
)
def test_view_pages_need_a_view_permission(personas, client, url):
    _simple("proc")
    assert client.get(url).status_code == 302  # anonymous: to the login page
    assert client.get(url)["Location"].startswith("/login/")
    client.force_login(personas.alice)
    assert client.get(url).status_code == 403
    client.force_login(grant(personas.bob, "orchestration.view_orchestration"))
    assert client.get(url).status_code == 200
    client.force_login(_viewer(personas.charlie))
    assert client.get(url).status_code == 200


def test_unknown_orchestration_or_version_is_404(personas, client):
    _simple("proc")
    client.force_login(_viewer(personas.alice))
    assert client.get("/monitor/orchestrations/nope/").status_code == 404
    assert client.get("/monitor/orchestrations/proc/v2/").status_code == 404
    assert client.get("/monitor/orchestrations/proc/v99999999999999999999/").status_code == 404


def test_upload_and_activate_are_offered_only_to_importers(personas, client):
    _simple("proc")
    load(orchestration("proc", stages=[stage("only", bg("b", "noop")), stage("more", bg("c", "noop"))]))
    old = "/monitor/orchestrations/proc/v1/"
    client.force_login(_viewer(personas.alice))
    assert "Upload definitions" not in client.get(LIST).content.decode()
    assert ">Activate<" not in client.get(old).content.decode()
    assert client.get(old + "activate/").status_code == 403
    assert client.post(old + "activate/").status_code == 403
    assert OrchestrationVersion.objects.get(number=1).is_active is False

    client.force_login(_importer(personas.bob))
    assert "Upload definitions" in client.get(LIST).content.decode()
    assert ">Activate<" in client.get(old).content.decode()
    assert ">Activate<" not in client.get("/monitor/orchestrations/proc/v2/").content.decode()


# --- versions ---------------------------------------------------------------------------------


def test_orchestration_page_lists_versions(personas, client):
    _simple("proc")
    load(orchestration("proc", stages=[stage("only", bg("b", "noop")), stage("more", bg("c", "noop"))]))
    _runs("proc", RunStatus.COMPLETED, 1, 2, 3)  # on v2, the active one
    client.force_login(_viewer(personas.alice))
    html = client.get("/monitor/orchestrations/proc/").content.decode()
    v2 = html[html.index('data-version="2"') :]
    v2 = v2[: v2.index("</tr>")]
    v1 = html[html.index('data-version="1"') :]
    v1 = v1[: v1.index("</tr>")]
    assert html.index('data-version="2"') < html.index('data-version="1"')  # newest first
    assert "active" in v2 and "active" not in v1
    assert "test0.yaml" in v2  # the source file
    assert '<a href="/monitor/runs/?orchestration=proc&amp;version=2">3</a>' in v2
    assert '<td class="text-end">0</td>' in v1
    assert 'href="/monitor/orchestrations/proc/v1/"' in v1


def _diagram_definition() -> None:
    load(
        screen_flow("review"),
        auto_flow("notify"),
        {
            "kind": "evaluation_flow",
            "api_name": "docs_ready",
            "actions": [{"type": "set_outputs", "values": {"is_condition_met": "true"}}],
        },
        orchestration(
            "loan_approval",
            stages=[
                stage(
                    "intake",
                    task("check", label="Check the file", user="alice"),
                    bg("score", "notify", start={"after": ["check"]}),
                    task("docs", assignee={"group": "support"}, start={"condition": "record.amount > 10"}),
                    fault_path="repair",
                    next={
                        "outcomes": [
                            {"label": "Huge", "when": "record.amount > 10000", "goto": "board"},
                            {"when": "record.severity == 'High'", "goto": "board"},
                        ],
                        "default": "end",
                    },
                ),
                stage(
                    "board",
                    task("vote", assignee={"queue": "triage"}),
                    exit={"evaluation_flow": "docs_ready"},
                ),
                stage("repair", task("fix", completion={"condition": "record.status == 'fixed'"})),
            ],
        ),
    )


def test_version_page_draws_stages_steps_decision_and_fault_path(personas, client):
    _diagram_definition()
    client.force_login(_viewer(personas.alice))
    page = client.get("/monitor/orchestrations/loan_approval/v1/").content.decode()

    # The flow graph, as the run page draws it, without a run: stages link to their text below,
    # steps to theirs; no status anywhere.
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('class="rg-stage ') == 3 and svg.count("rg-status-none") == 3
    assert '<a href="#stage-intake" tabindex="-1">' in svg
    assert 'href="#step-intake-check" tabindex="-1" data-step="intake/check"' in svg
    assert 'class="rg-diamond"' in svg and 'data-from="intake" data-to="repair"' in svg  # the fault path
    assert "rg-state-done" not in svg and "rg-edge-taken" not in svg
    assert 'id="step-intake-check"' in page  # where the step's link goes

    # Under it, the stages and steps in text: left to right, in the definition's order.
    html = page[page.index('class="version-diagram') :]
    assert (
        html.index('data-stage="intake"')
        < html.index('data-stage="board"')
        < html.index('data-stage="repair"')
    )
    intake = html[html.index('data-stage="intake"') : html.index('data-stage="board"')]
    board = html[html.index('data-stage="board"') : html.index('data-stage="repair"')]
    repair = html[html.index('data-stage="repair"') : html.index("version-yaml")]

    assert "Check the file" in intake and "user alice" in intake and "at stage start" in intake
    assert "after check" in intake and "when its flow finishes" in intake
    assert "group support" in intake and "when record.amount &gt; 10" in intake
    assert "Decision" in intake
    assert "Huge" in intake and "record.amount &gt; 10000" in intake
    assert "outcome 2" in intake and "record.severity == &#x27;High&#x27;" in intake
    assert "otherwise" in intake and 'data-goto="end"' in intake
    assert "On error" in intake and 'href="#stage-repair"' in intake

    assert "queue triage" in board
    assert "when evaluation flow docs_ready says so" in board
    assert 'data-goto="repair"' in board  # no `next`: the following stage
    assert "when record.status == &#x27;fixed&#x27;" in repair
    assert 'data-goto="end"' in repair  # the last stage ends the run
    assert "On error" not in board

    yaml_part = html[html.index("version-yaml") :]
    assert "<details" in html and "api_name: loan_approval" in yaml_part
    assert "kind: orchestration" in yaml_part


# --- activate ---------------------------------------------------------------------------------


def test_activate_through_the_page(personas, client):
    _simple("proc")
    load(orchestration("proc", stages=[stage("only", bg("b", "noop")), stage("more", bg("c", "noop"))]))
    client.force_login(_importer(personas.bob))
    url = "/monitor/orchestrations/proc/v1/activate/"

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Activate proc v1?" in confirm.content.decode()
    assert "instead of version 2" in confirm.content.decode()
    assert OrchestrationVersion.objects.get(number=2).is_active  # GET changes nothing

    response = client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == "/monitor/orchestrations/proc/v1/"
    assert "proc v1 is now the active version" in response.content.decode()
    active = OrchestrationVersion.objects.get(is_active=True)
    assert active.number == 1

    again = client.post(url, follow=True)
    assert "already the active version" in again.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_run_launched_after_activation_uses_that_version(personas, client):
    _simple("proc")
    load(orchestration("proc", stages=[stage("only", bg("b", "noop")), stage("more", bg("c", "noop"))]))
    client.force_login(_importer(personas.bob))
    client.post("/monitor/orchestrations/proc/v1/activate/")
    run = launch("proc", record=make_case())
    assert run.version.number == 1


def test_the_pages_name_the_source_file_not_the_servers_folders(personas, client):
    """The version page showed where on the server the file had been (`/srv/…/flows/x.yaml`)."""
    from orchestration.models import OrchestrationVersion

    _simple("proc")
    OrchestrationVersion.objects.filter(orchestration__api_name="proc").update(
        source="/srv/deploy/secret-layout/flows/proc.yaml"
    )
    client.force_login(_viewer(personas.alice))
    for url in ("/monitor/orchestrations/proc/", "/monitor/orchestrations/proc/v1/"):
        html = client.get(url).content.decode()
        assert "proc.yaml" in html and "/srv/deploy" not in html
