"""Uploading a definitions file on the Orchestrations page: a valid file creates versions (and
activates them when asked), an invalid one lists every error with its location and stores
nothing, a bad file gets a clear message, and only importers may upload."""

from __future__ import annotations

import html as html_lib
import json

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from orchestration.forms import MAX_UPLOAD_BYTES
from orchestration.models import Flow, Orchestration, OrchestrationVersion
from tests.factories import auto_flow, grant, load, orchestration

from .engine_support import bg, stage, task

pytestmark = pytest.mark.django_db

URL = "/monitor/orchestrations/upload/"


def _importer(user):  # type: ignore[no-untyped-def]
    return grant(user, "orchestration.view_run", "orchestration.import_definitions")


def _definition(stages: int = 1) -> list[dict]:
    return [
        auto_flow("noop"),
        orchestration("loan_approval", stages=[stage(f"s{i}", bg(f"b{i}", "noop")) for i in range(stages)]),
    ]


def _yaml(docs: list[dict]) -> bytes:
    return yaml.safe_dump_all(docs, sort_keys=False).encode()


def _post(client, content: bytes, name: str = "loan.yaml", activate: bool = True):  # type: ignore[no-untyped-def]
    data: dict = {"file": SimpleUploadedFile(name, content)}
    if activate:
        data["activate"] = "on"
    return client.post(URL, data, follow=True)


def test_form_is_shown_with_activate_checked(personas, client):
    client.force_login(_importer(personas.bob))
    html = client.get(URL).content.decode()
    assert 'type="file"' in html and 'enctype="multipart/form-data"' in html
    assert 'name="activate"' in html and "checked" in html


def test_valid_upload_creates_and_activates(personas, client):
    client.force_login(_importer(personas.bob))
    response = _post(client, _yaml(_definition()))
    assert response.redirect_chain[-1][0] == "/monitor/orchestrations/"
    html = response.content.decode()
    assert "created: autolaunched_flow noop v1, orchestration loan_approval v1" in html
    version = OrchestrationVersion.objects.get(orchestration__api_name="loan_approval")
    assert version.is_active and version.source == "loan.yaml" and version.created_by == personas.bob
    assert 'data-orchestration="loan_approval"' in html

    # The same file again: nothing new.
    again = _post(client, _yaml(_definition())).content.decode()
    assert "unchanged: autolaunched_flow noop v1, orchestration loan_approval v1" in again
    assert OrchestrationVersion.objects.count() == 1


def test_upload_without_activate_keeps_the_active_version(personas, client):
    load(*_definition())
    client.force_login(_importer(personas.bob))
    html = _post(client, _yaml(_definition(stages=2)), activate=False).content.decode()
    assert "created: orchestration loan_approval v2" in html
    assert "unchanged: autolaunched_flow noop v1" in html
    active = OrchestrationVersion.objects.get(is_active=True)
    assert active.number == 1
    assert OrchestrationVersion.objects.get(number=2).is_active is False


def test_json_upload(personas, client):
    client.force_login(_importer(personas.bob))
    html = _post(client, json.dumps(_definition()).encode(), name="defs.JSON").content.decode()
    assert "created: autolaunched_flow noop v1, orchestration loan_approval v1" in html


def test_invalid_upload_lists_every_error_with_its_location_and_stores_nothing(personas, client):
    client.force_login(_importer(personas.bob))
    bad = orchestration(
        "loan_approval",
        stages=[
            stage("intake", bg("b", "missing_flow")),
            stage("review", task("t", "noop", user="nobody_here"), next="nowhere"),
        ],
    )
    response = _post(client, _yaml([auto_flow("noop"), bad]), name="bad.yaml")
    assert response.status_code == 200 and not response.redirect_chain  # the form stays
    html = response.content.decode()
    assert "The file was not imported" in html
    assert "bad.yaml" in html
    assert "stages[0].steps[0].flow" in html and "missing_flow" in html
    assert "stages[1].next" in html and "nowhere" in html
    assert "stages[1].steps[0].flow" in html  # an interactive step needs a screen flow
    assert 'type="file"' in html
    assert not Orchestration.objects.exists()
    assert not Flow.objects.exists()


def test_yaml_syntax_error_is_listed(personas, client):
    client.force_login(_importer(personas.bob))
    html = _post(client, b"kind: orchestration\napi_name: [unclosed\n").content.decode()
    assert "The file was not imported" in html and "cannot parse" in html
    assert not Orchestration.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("defs.txt", b"kind: orchestration", "Upload a .yaml, .yml or .json file."),
        ("defs.yaml", b"", "The submitted file is empty."),
        ("defs.yaml", b"   \n\n", "The file is empty."),
        ("defs.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("defs.yaml", "kind: orchestration # café".encode("latin-1"), "not UTF-8"),
        ("defs.yaml", b"#" * (MAX_UPLOAD_BYTES + 1), "larger than 1 MB"),
        ("defs.yaml", b"# only a comment\n", "no definition documents found"),
        ("defs.yaml", b"- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_files_get_a_clear_message(personas, client, name, content, message):
    client.force_login(_importer(personas.bob))
    response = _post(client, content, name=name)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Orchestration.objects.exists()


def test_upload_without_permission_is_refused(personas, client):
    client.force_login(grant(personas.alice, "orchestration.view_run"))
    assert client.get(URL).status_code == 403
    response = client.post(
        URL, {"file": SimpleUploadedFile("loan.yaml", _yaml(_definition())), "activate": "on"}
    )
    assert response.status_code == 403
    assert not Orchestration.objects.exists()
    client.logout()
    assert client.get(URL)["Location"].startswith("/login/")


def test_the_yaml_shown_on_a_version_page_imports_back_unchanged(personas, client):
    load(*_definition(stages=2))
    client.force_login(_importer(personas.bob))
    html = client.get("/monitor/orchestrations/loan_approval/v1/").content.decode()
    shown = html[
        html.index("<code>", html.index("version-yaml")) + len("<code>") : html.index("</code></pre>")
    ]
    text = html_lib.unescape(shown)
    assert text.startswith("kind: orchestration\napi_name: loan_approval\n")
    assert "max_attempts" not in text  # defaults left out, as an admin writes it
    after = _post(client, text.encode(), name="copy.yaml").content.decode()
    assert "unchanged: orchestration loan_approval v1" in after
    assert OrchestrationVersion.objects.count() == 1
