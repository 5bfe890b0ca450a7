"""Comparing versions on the monitoring pages: the compare page (change list and YAML diff), the
activation page's "What changes", the orchestration page's compare form and History."""

from __future__ import annotations

import html as html_lib
from typing import Any

import pytest

from orchestration.models import DefinitionEvent
from orchestration.services import definitions_import, version_activate
from tests.factories import auto_flow, grant, orchestration

from .engine_support import bg, stage, task

pytestmark = pytest.mark.django_db

COMPARE = "/monitor/orchestrations/proc/compare/"


def _v1() -> dict[str, Any]:
    return orchestration(
        "proc",
        stages=[
            stage("intake", task("check", "noop_form", label="Check"), bg("score", "noop")),
            stage("review", bg("approve", "noop")),
        ],
    )


def _v2() -> dict[str, Any]:
    doc = _v1()
    doc["stages"][0]["steps"][1]["max_attempts"] = 7
    doc["stages"][1]["key"] = "approval"  # same steps: renamed
    doc["stages"].append(stage("payout", bg("pay", "noop")))
    return doc


@pytest.fixture
def two_versions(personas):  # type: ignore[no-untyped-def]
    from tests.factories import screen_flow

    definitions_import(items=[("f.yaml", auto_flow("noop")), ("s.yaml", screen_flow("noop_form"))])
    definitions_import(items=[("proc.yaml", _v1())])
    definitions_import(items=[("proc.yaml", _v2())], activate=False)


def _viewer(user: Any) -> Any:
    return grant(user, "orchestration.view_run")


def _section(html: str, start: str, end: str) -> str:
    i = html.index(start)
    return html[i : html.index(end, i)]


def test_the_compare_page_lists_changes_by_element_beside_the_yaml_diff(two_versions, personas, client):
    client.force_login(_viewer(personas.alice))
    response = client.get(COMPARE, {"from": 1, "to": 2})
    assert response.status_code == 200
    html = response.content.decode()
    changes = _section(html, 'id="changes-h"', 'id="yaml-diff-h"')
    assert '<h3 class="h6 mb-1">Stage payout</h3>' in changes
    assert '<h3 class="h6 mb-1">Stage approval</h3>' in changes
    renamed = _section(changes, 'data-element="stage approval"', "</section>")
    assert 'class="change change-renamed" data-path="stages[approval].key"' in renamed
    assert "<code>review</code> → <code>approval</code>" in renamed
    score = _section(changes, 'data-element="step intake/score"', "</section>")
    assert 'data-path="stages[intake].steps[score].max_attempts"' in score
    assert '<del class="change-old text-break">3</del> → <ins class="change-new text-break">7</ins>' in score
    assert 'data-path="stages[payout].steps[pay]"' in changes and "added" in changes

    diff = html[html.index('class="yaml-diff') :]
    diff = diff[: diff.index("</pre>")]
    assert '<span class="diff-line diff-file">--- proc v1' in diff
    assert '<del class="diff-line diff-del"><span class="diff-sign">-</span>- key: review' in diff
    assert '<ins class="diff-line diff-add"><span class="diff-sign">+</span>- key: approval' in diff
    assert '<ins class="diff-line diff-add"><span class="diff-sign">+</span>    max_attempts: 7' in diff
    assert "style=" not in html.split("<body", 1)[1]  # the CSP allows no inline style


def test_without_from_and_to_the_newest_is_compared_with_the_one_before(two_versions, personas, client):
    client.force_login(_viewer(personas.alice))
    html = client.get(COMPARE).content.decode()
    assert 'From <a href="/monitor/orchestrations/proc/v1/">v1</a> (active) to' in html
    assert '<option value="2" selected>v2</option>' in html


def test_the_same_version_twice_has_no_changes(two_versions, personas, client):
    client.force_login(_viewer(personas.alice))
    html = client.get(COMPARE, {"from": 2, "to": 2}).content.decode()
    assert "No changes: the two versions define the same orchestration." in html
    assert "The two YAML documents are the same." in html


@pytest.mark.parametrize("query", [{"from": 1, "to": 9}, {"from": "x", "to": 2}, {"from": "-1", "to": 2}])
def test_unknown_versions_get_a_clear_message(two_versions, personas, client, query):
    client.force_login(_viewer(personas.alice))
    response = client.get(COMPARE, query)
    assert response.status_code == 400
    assert "No such version of proc" in response.content.decode()


def test_compare_needs_a_view_permission(two_versions, personas, client):
    assert client.get(COMPARE)["Location"].startswith("/login/")
    client.force_login(personas.bob)
    assert client.get(COMPARE).status_code == 403
    assert client.get("/monitor/orchestrations/nope/compare/").status_code == 403
    client.force_login(_viewer(personas.alice))
    assert client.get("/monitor/orchestrations/nope/compare/").status_code == 404


def test_the_activation_page_says_what_changes(two_versions, personas, client):
    client.force_login(grant(personas.bob, "orchestration.view_run", "orchestration.import_definitions"))
    html = client.get("/monitor/orchestrations/proc/v2/activate/").content.decode()
    what = _section(html, 'id="what-changes-h"', "<form")
    assert "From the active v1 to v2" in what
    assert 'href="/monitor/orchestrations/proc/compare/?from=1&amp;to=2"' in what
    assert 'data-path="stages[approval].key"' in what and 'data-path="stages[payout]"' in what
    assert DefinitionEvent.objects.filter(version_number=2).count() == 0  # GET changes nothing

    client.post("/monitor/orchestrations/proc/v2/activate/")
    (event,) = DefinitionEvent.objects.filter(name="definitions.version.activated", version_number=2)
    assert event.actor_id == personas.bob.pk
    assert event.payload["changes"]["stages"]["renamed"] == [["review", "approval"]]


def test_the_orchestration_page_has_a_compare_form_and_the_history(two_versions, personas, client):
    version_activate(version=two_versions_v(2), actor=grant(personas.bob, "orchestration.import_definitions"))
    client.force_login(_viewer(personas.alice))
    html = client.get("/monitor/orchestrations/proc/").content.decode()
    form = _section(html, 'id="compare-h"', "</form>")
    assert '<form method="get" action="/monitor/orchestrations/proc/compare/"' in form
    assert '<option value="2" selected>v2 (active)</option>' in _section(form, 'name="to"', "</select>")

    history = _section(html, 'id="history-h"', "</table>")
    rows = history.split('<tr data-event="definitions.version.activated"')[1:]
    assert len(rows) == 2  # v2 (by bob), then v1 (the system's import), newest first
    assert 'data-version="2"' in rows[0] and "bob" in rows[0] and "(was v1)" in rows[0]
    assert "stages renamed review→approval" in html_lib.unescape(rows[0])
    assert 'href="/monitor/orchestrations/proc/compare/?from=1&amp;to=2">compare</a>' in rows[0]
    assert 'data-version="1"' in rows[1] and "(first active version)" in rows[1] and "system" in rows[1]


def test_the_version_page_links_to_compare_with_the_active_version(two_versions, personas, client):
    client.force_login(_viewer(personas.alice))
    v2 = client.get("/monitor/orchestrations/proc/v2/").content.decode()
    assert f'href="{COMPARE}?from=1&amp;to=2">Compare with v1</a>' in v2
    v1 = client.get("/monitor/orchestrations/proc/v1/").content.decode()
    assert "Compare with" not in v1  # the active, first version: nothing before it


def two_versions_v(number: int) -> Any:
    from orchestration.models import OrchestrationVersion

    return OrchestrationVersion.objects.get(orchestration__api_name="proc", number=number)
