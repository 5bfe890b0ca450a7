from __future__ import annotations

import pytest

from records.models import Record
from tests.factories import make_case
from tests.records.conftest import post_edit

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_script_in_a_name_and_a_field_is_shown_as_text_everywhere(clerk_client, clerk):
    response = clerk_client.post(
        "/records/case/new/",
        {"name": PAYLOAD, "owner": "", "severity": "Low", "status": PAYLOAD, "description": PAYLOAD},
        follow=True,
    )
    record = Record.objects.get()
    assert record.name == PAYLOAD and record.data["status"] == PAYLOAD
    edit = post_edit(
        clerk_client,
        record,
        {"name": PAYLOAD, "owner": "", "severity": "Low", "status": PAYLOAD + "!", "description": PAYLOAD},
        follow=True,
    )
    pages = {
        "created": response,
        "edited (history)": edit,
        "list": clerk_client.get("/records/case/"),
        "search": clerk_client.get("/records/case/", {"q": PAYLOAD}),
        "edit form": clerk_client.get(f"/records/case/{record.pk}/edit/"),
        "invalid form": clerk_client.post("/records/case/new/", {"name": PAYLOAD, "severity": PAYLOAD}),
    }
    for what, page in pages.items():
        html = page.content.decode()
        assert PAYLOAD not in html, what
        assert ESCAPED in html, what


def test_script_in_a_list_column_is_escaped(clerk_client):
    make_case("x", status=PAYLOAD)
    html = clerk_client.get("/records/case/").content.decode()
    assert PAYLOAD not in html
    assert ESCAPED in html
