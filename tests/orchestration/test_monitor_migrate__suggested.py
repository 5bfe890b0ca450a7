"""The migrate page offers the renames the two versions' diff recognises (orchestration/diff.py)
as its mapping: filled in when opened for a version with no mapping, else a "Use them" link."""

from __future__ import annotations

import html as html_lib
from typing import Any

import pytest

from orchestration.services import run_launch
from tests.factories import grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import stage, task

pytestmark = pytest.mark.django_db

URL = "/monitor/orchestrations/proc/v2/migrate/"


@pytest.fixture
def renamed(personas: Any) -> None:
    load(
        screen_flow("review"),
        orchestration("proc", stages=[stage("review", task("check"), task("sign"), task("note"))]),
    )
    run_launch(orchestration="proc", record=make_case("C"))
    # v2: the stage is "approval" (2 of its 4 step keys shared: a rename), "note" is "remark".
    load(orchestration("proc", stages=[stage("approval", task("check"), task("sign"), task("remark"))]))


def _textareas(html: str) -> dict[str, str]:
    out = {}
    for name in ("stages", "steps"):
        start = html.index(f'name="{name}" rows="3">') + len(f'name="{name}" rows="3">')
        out[name] = html_lib.unescape(html[start : html.index("</textarea>", start)])
    return out


def test_opened_for_a_version_the_mapping_is_the_diffs_renames(renamed, personas, client):
    client.force_login(grant(personas.bob, "orchestration.view_run", "orchestration.import_definitions"))
    html = client.get(URL, {"from": "1"}).content.decode()
    assert _textareas(html) == {"stages": "review=approval", "steps": "note=remark"}
    assert 'id="migrate-suggested"' not in html  # already what the form says
    assert "<strong>1</strong> run can move" in html  # and the preview uses it


def test_a_mapping_given_is_kept_and_the_renames_offered(renamed, personas, client):
    client.force_login(grant(personas.bob, "orchestration.view_run", "orchestration.import_definitions"))
    html = client.get(URL, {"from": "1", "stages": "", "steps": ""}).content.decode()
    assert _textareas(html) == {"stages": "", "steps": ""}
    suggested = html[html.index('id="migrate-suggested"') :]
    suggested = suggested[: suggested.index("</p>")]
    assert "<code>review=approval</code>" in suggested and "<code>note=remark</code>" in suggested
    assert 'href="?from=1&amp;stages=review%3Dapproval&amp;steps=note%3Dremark">Use them</a>' in suggested
