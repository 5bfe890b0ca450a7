"""The records home (/records/): each record type with its counts (records, and those with a
process under way), the viewer's newest records and everyone's; only counts and names the
viewer may see."""

from __future__ import annotations

import re

import pytest

from orchestration.models import Run, RunStatus
from records.models import RecordType
from records.services import record_type_upsert
from tests.factories import UserFactory, grant, make_case, ticket_type
from tests.workitems.mywork_support import interactive, launch, load_process

pytestmark = pytest.mark.django_db

URL = "/records/"


def counts(html: str) -> dict[str, tuple[int, int]]:
    """{record type api name: (records, with a process under way)} as the page shows them."""
    found = {}
    for api_name, body in re.findall(r'data-record-type="([\w-]+)">(.*?)</li>', html, re.S):
        records = re.search(r'data-count="records">(\d+)<', body)
        open_runs = re.search(r'data-count="open-runs">(\d+)<', body)
        assert records and open_runs, body
        found[api_name] = (int(records.group(1)), int(open_runs.group(1)))
    return found


def listed(html: str, name: str) -> list[str]:
    """The record names in the list called `name` ("mine" or "recent"), top to bottom."""
    block = re.search(rf'data-list="{name}">(.*?)</ul>', html, re.S)
    return (
        re.findall(r'<a class="me-auto text-break" href="[^"]+">([^<]+)</a>', block.group(1)) if block else []
    )


def test_counts_per_record_type(clerk_client, clerk):
    load_process("proc", "Case review", interactive("a", "Review", {"user": "alice"}))
    ticket_type()
    record_type_upsert(api_name="asset", label="Asset", fields=[])  # none yet
    busy, done, failed, _quiet = (make_case(n) for n in ("Busy", "Done", "Failed", "Quiet"))
    launch("proc", busy)
    launch("proc", busy)  # two open runs: still one record
    Run.objects.filter(pk=launch("proc", done).pk).update(status=RunStatus.COMPLETED)
    Run.objects.filter(pk=launch("proc", failed).pk).update(status=RunStatus.ERROR)
    html = clerk_client.get(URL).content.decode()
    assert counts(html) == {"asset": (0, 0), "case": (4, 2), "ticket": (0, 0)}
    assert '<a href="/records/case/">Cases</a>' in html
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    assert "4 cases, 2 with a process under way" in text
    assert "0 assets, 0 with a process under way" in text
    assert "/records/case/new/" in html  # alice may create records


def test_the_viewers_newest_records_and_everyones(clerk_client, clerk):
    other = UserFactory(username="zed")
    for i in range(12):
        make_case(f"Theirs {i:02}", owner=other)
    for i in range(3):
        make_case(f"Mine {i}", owner=clerk)
    html = clerk_client.get(URL).content.decode()
    assert listed(html, "mine") == ["Mine 2", "Mine 1", "Mine 0"]
    assert listed(html, "recent") == [
        "Mine 2",
        "Mine 1",
        "Mine 0",
        *[f"Theirs {i:02}" for i in range(11, 4, -1)],
    ]
    assert len(listed(html, "recent")) == 10
    mine = make_case("Linked", owner=clerk)
    html = clerk_client.get(URL).content.decode()
    assert f'href="/records/case/{mine.pk}/">Linked</a>' in html


def test_someone_without_records_yet(clerk_client):
    html = clerk_client.get(URL).content.decode()
    assert "You own no records yet." in html
    assert "No records yet." in html


def test_no_record_types(clerk_client):
    RecordType.objects.all().delete()
    assert "No record types yet." in clerk_client.get(URL).content.decode()


def test_who_may_not_see_records_sees_the_types_but_no_counts_or_names(client, personas, nobody):
    load_process("proc", "Case review", interactive("a", "Review", {"user": "alice"}))
    launch("proc", make_case("Secret merger"))
    # alice holds no records permission: her work on the record lets her open it, not browse.
    for user in (nobody, personas.alice):
        client.force_login(user)
        response = client.get(URL)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Secret merger" not in html
        assert "data-count=" not in html
        assert "/records/case/" not in html
        assert "Cases" in html
        assert "You may not browse records." in html


def test_may_create_without_browsing_gets_the_new_button(client, personas, nobody):
    grant(nobody, "records.add_record")
    client.force_login(nobody)
    assert "/records/case/new/" in client.get(URL).content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/records/"


def test_the_navigation_marks_records_as_the_current_page(clerk_client):
    html = clerk_client.get(URL).content.decode()
    assert re.search(r'<a class="nav-link" href="/"\s+aria-current="page">Records</a>', html)
