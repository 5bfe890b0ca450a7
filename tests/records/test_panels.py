from __future__ import annotations

import pytest

from records.panels import PANELS, record_panels, register_record_panel
from tests.factories import make_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def note_panel(settings, tmp_path):  # type: ignore[no-untyped-def]
    """A panel contributed the way another app would: its own template and context function."""
    (tmp_path / "note.html").write_text('<section><h2 class="h5">Note</h2><p>{{ note }}</p></section>')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]

    def context(request, record):  # type: ignore[no-untyped-def]
        if record.name == "hidden":
            return None
        return {"note": f"{request.user.get_username()} sees {record.name}"}

    register_record_panel("note", "note.html", context, order=1)
    yield
    PANELS.pop("note", None)


def test_panels_are_ordered_and_runs_is_built_in():
    assert "runs" in PANELS
    orders = [p.order for p in record_panels()]
    assert orders == sorted(orders)


def test_a_registered_panel_is_rendered_on_the_detail_page_before_later_ones(clerk_client, note_panel):
    case = make_case("<b>bold</b>")
    page = clerk_client.get(f"/records/case/{case.pk}/").content.decode()
    assert '<div id="panel-note" class="record-panel">' in page
    assert "alice sees &lt;b&gt;bold&lt;/b&gt;" in page
    assert page.index('id="panel-note"') < page.index('id="panel-runs"')


def test_a_panel_whose_context_is_none_is_left_out(clerk_client, note_panel):
    case = make_case("hidden")
    page = clerk_client.get(f"/records/case/{case.pk}/").content.decode()
    assert 'id="panel-note"' not in page
    assert 'id="panel-runs"' in page
    assert clerk_client.get(f"/records/case/{case.pk}/panels/note/").status_code == 404


def test_one_panel_renders_alone_for_htmx_refreshes(clerk_client, note_panel):
    case = make_case("Alone")
    response = clerk_client.get(f"/records/case/{case.pk}/panels/note/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.decode() == '<section><h2 class="h5">Note</h2><p>alice sees Alone</p></section>'
