"""Exporting one version as YAML (services.version_export + definitions_yaml, the version page's
download and `export_definitions`): byte-stable round trips over every demo definition, and
the download itself."""

from __future__ import annotations

import pytest

from demo.services import DEFINITIONS_DIR, DemoReport, demo_people_ensure, demo_record_types_ensure
from orchestration.definitions import FLOW_KINDS
from orchestration.loading import load_paths, load_text
from orchestration.models import FlowVersion, OrchestrationVersion
from orchestration.services import (
    definitions_export,
    definitions_import,
    definitions_import_paths,
    definitions_yaml,
    version_export,
)
from tests.factories import UserFactory, grant

pytestmark = pytest.mark.django_db

# Every definition of the demo (flows, calendars and orchestrations): (kind, api name).
DEMO_ITEMS, _ = load_paths([DEFINITIONS_DIR])
DEMO = sorted({(d["kind"], d["api_name"]) for _, d in DEMO_ITEMS})


@pytest.fixture
def demo_definitions():  # type: ignore[no-untyped-def]
    report = DemoReport()
    demo_people_ensure(report=report)  # validation checks that named users, groups, queues exist
    demo_record_types_ensure(report=report)
    definitions_import_paths(paths=[str(DEFINITIONS_DIR)], activate=True)


def _version(kind: str, api_name: str) -> OrchestrationVersion | FlowVersion:
    if kind in FLOW_KINDS:
        return FlowVersion.objects.select_related("flow").get(flow__api_name=api_name, is_active=True)
    return OrchestrationVersion.objects.select_related("orchestration").get(
        orchestration__api_name=api_name, is_active=True
    )


def _counts() -> tuple[int, int]:
    return OrchestrationVersion.objects.count(), FlowVersion.objects.count()


def test_the_table_holds_every_kind_of_the_demo():
    kinds = {k for k, _ in DEMO}
    assert {"orchestration", "screen_flow", "autolaunched_flow"} <= kinds
    assert len([1 for k, _ in DEMO if k == "orchestration"]) == 4


@pytest.mark.parametrize(("kind", "api_name"), DEMO, ids=[f"{k}:{n}" for k, n in DEMO])
def test_export_import_export_is_byte_stable_and_creates_no_version(kind, api_name, demo_definitions):
    version = _version(kind, api_name)
    first = definitions_yaml([version_export(version=version)]).encode("utf-8")
    before = _counts()

    docs, errors = load_text(first.decode("utf-8"), f"{api_name}.yaml")
    assert errors == [] and len(docs) == 1
    report = definitions_import(items=[(f"{api_name}.yaml", docs[0])])
    assert report.created == []
    assert report.unchanged == [f"{kind} {api_name} v{version.number}"]
    assert _counts() == before

    # The import found the latest version's checksum in the exported text: nothing new.
    again = _version(kind, api_name)
    assert again.pk == version.pk and again.checksum == version.checksum
    assert definitions_yaml([version_export(version=again)]).encode("utf-8") == first
    # What export_definitions writes for it is the same document.
    (exported,) = [d for name, d in definitions_export(names=[api_name]) if d["kind"] == kind]
    assert definitions_yaml([exported]).encode("utf-8") == first


def test_kind_and_api_name_come_first_and_defaults_are_left_out(demo_definitions):
    text = definitions_yaml([version_export(version=_version("orchestration", "loan_approval"))])
    assert text.startswith("kind: orchestration\napi_name: loan_approval\n")
    assert "max_attempts: 3" not in text  # a default
    assert "---" not in text  # one document


def test_the_download_is_that_yaml_as_an_attachment(demo_definitions, client):
    version = _version("orchestration", "loan_approval")
    client.force_login(grant(UserFactory(username="viewer"), "orchestration.view_orchestration"))
    response = client.get(f"/monitor/orchestrations/loan_approval/v{version.number}/yaml/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/yaml; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="loan_approval-v{version.number}.yaml"'
    assert response.content == definitions_yaml([version_export(version=version)]).encode("utf-8")
    # The version page links to it.
    page = client.get(f"/monitor/orchestrations/loan_approval/v{version.number}/").content.decode()
    assert f'href="/monitor/orchestrations/loan_approval/v{version.number}/yaml/" download' in page


def test_the_download_needs_a_view_permission_and_a_real_version(demo_definitions, client):
    url = "/monitor/orchestrations/loan_approval/v1/yaml/"
    assert client.get(url)["Location"].startswith("/login/")
    client.force_login(UserFactory(username="nobody_special"))  # the demo's people have roles
    assert client.get(url).status_code == 403
    client.force_login(grant(UserFactory(username="viewer"), "orchestration.view_run"))
    assert client.get(url).status_code == 200
    assert client.get("/monitor/orchestrations/loan_approval/v99/yaml/").status_code == 404
    assert client.get("/monitor/orchestrations/nope/v1/yaml/").status_code == 404
