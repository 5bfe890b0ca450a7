from __future__ import annotations

import html as htmllib
import re

import pytest
from django.core.exceptions import ValidationError

from records.models import FieldChange, Record
from records.services import record_update
from tests.factories import make_case
from tests.records.conftest import field_error, post_edit, tag

pytestmark = pytest.mark.django_db


def case_data(**overrides):  # type: ignore[no-untyped-def]
    data = {
        "name": "Broken laptop",
        "owner": "",
        "severity": "High",
        "amount": "120.50",
        "description": "Screen\ncracked",
        "status": "new",
    }
    data.update(overrides)
    return data


def test_create_saves_the_record_and_shows_it(clerk_client, clerk):
    response = clerk_client.post("/records/case/new/", case_data(owner=str(clerk.pk)), follow=True)
    record = Record.objects.get(name="Broken laptop")
    assert response.redirect_chain == [(f"/records/case/{record.pk}/", 302)]
    assert record.owner == clerk
    assert record.data == {
        "severity": "High",
        "amount": "120.50",
        "description": "Screen\ncracked",
        "status": "new",
    }
    page = response.content.decode()
    assert "Case “Broken laptop” created." in page
    assert "Screen<br>cracked" in page


def test_new_form_proposes_the_viewer_as_owner(clerk_client, clerk):
    page = clerk_client.get("/records/case/new/").content.decode()
    assert f'<option value="{clerk.pk}" selected>alice</option>' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "twelve", "Enter a number."),
        ("severity", "", "This field is required."),
        ("severity", "Critical", "Select a valid choice. Critical is not one of the available choices."),
        ("name", "   ", "This field is required."),
    ],
)
def test_invalid_input_shows_the_error_on_the_field_and_keeps_what_was_typed(
    clerk_client, field, value, message
):
    response = clerk_client.post("/records/case/new/", case_data(**{field: value}))
    assert response.status_code == 200
    page = response.content.decode()
    assert field_error(page, field) == message
    assert "Please correct the 1 error below." in page
    assert not Record.objects.exists()
    # Everything else the person typed is still in the form.
    for other in ("name", "amount", "status"):
        if other != field:
            assert f'value="{case_data()[other]}"' in tag(page, other)
    assert "Screen\ncracked</textarea>" in page


def test_errors_raised_by_the_service_land_on_the_named_field(clerk_client, monkeypatch):
    def refuse(**kwargs):  # type: ignore[no-untyped-def]
        raise ValidationError({"amount": ["too much for one case"], "gone": ["field was removed"]})

    monkeypatch.setattr("records.views.pages.record_create", refuse)
    page = clerk_client.post("/records/case/new/", case_data()).content.decode()
    assert field_error(page, "amount") == "too much for one case"
    assert "gone: field was removed" in page
    assert 'value="120.50"' in tag(page, "amount")


def test_edit_changes_fields_and_the_history_shows_who_changed_what(clerk_client, clerk):
    case = make_case("Printer jam", owner=clerk, severity="Low", amount="10", status="new")
    form = clerk_client.get(f"/records/case/{case.pk}/edit/").content.decode()
    assert 'value="Printer jam"' in tag(form, "name")
    assert 'value="10"' in tag(form, "amount")

    response = post_edit(
        clerk_client,
        case,
        case_data(
            name="Printer jam",
            owner=str(clerk.pk),
            severity="High",
            amount="10.0",
            description="",
            status="new",
        ),
        follow=True,
    )
    assert response.redirect_chain == [(f"/records/case/{case.pk}/", 302)]
    case.refresh_from_db()
    assert case.data["severity"] == "High"
    # 10.0 is the number that was already there: not a change.
    assert list(FieldChange.objects.filter(record=case).values_list("field", "old", "new")) == [
        ("severity", "Low", "High")
    ]
    page = response.content.decode()
    assert "Case “Printer jam” saved." in page
    history = page.split('id="history-heading"')[1]
    assert "<strong>Severity</strong>" in history
    assert '<span class="history-old">Low</span>' in history
    assert '<span class="history-new">High</span>' in history
    assert "by alice" in history


def test_history_is_newest_first_and_shows_owner_changes_by_username(clerk_client, clerk, personas):
    case = make_case("Order", owner=clerk, status="a")
    post_edit(
        clerk_client,
        case,
        case_data(name="Order", owner=str(clerk.pk), severity="Low", amount="", description="", status="b"),
    )
    post_edit(
        clerk_client,
        case,
        case_data(
            name="Order", owner=str(personas.bob.pk), severity="Low", amount="", description="", status="b"
        ),
    )
    history = clerk_client.get(f"/records/case/{case.pk}/").content.decode().split('id="history-heading"')[1]
    assert history.index("<strong>Owner</strong>") < history.index("<strong>Status</strong>")
    assert '<span class="history-old">alice</span>' in history
    assert '<span class="history-new">bob</span>' in history


def test_edit_without_changes_says_so_and_records_no_history(clerk_client, clerk):
    case = make_case("Same", owner=clerk, severity="Low", amount="5")
    response = post_edit(
        clerk_client,
        case,
        case_data(name="Same", owner=str(clerk.pk), severity="Low", amount="5", description="", status=""),
        follow=True,
    )
    assert "Nothing changed." in response.content.decode()
    assert not FieldChange.objects.exists()


def test_invalid_edit_keeps_the_input_and_the_record(clerk_client, clerk):
    case = make_case("Keep", owner=clerk, amount="5")
    response = post_edit(
        clerk_client,
        case,
        case_data(name="Renamed", owner=str(clerk.pk), severity="Medium", amount="5,5"),
    )
    page = response.content.decode()
    assert field_error(page, "amount") == "Enter a number."
    assert 'value="Renamed"' in tag(page, "name")
    assert 'value="5,5"' in tag(page, "amount")
    case.refresh_from_db()
    assert case.name == "Keep" and case.data["amount"] == "5"
    assert not FieldChange.objects.exists()


def test_saving_over_someone_elses_edit_asks_first_and_keeps_the_input(clerk_client, clerk, personas):
    case = make_case("Race", owner=clerk, severity="Low", status="new")
    url = f"/records/case/{case.pk}/edit/"
    version = re.search(r'name="version" value="([^"]+)"', clerk_client.get(url).content.decode()).group(1)
    # bob saves while alice has the form open
    record_update(record=case, values={"status": "bob's status"}, actor=None)
    mine = case_data(
        name="Race", owner=str(clerk.pk), severity="High", amount="", description="", status="new"
    )
    response = clerk_client.post(url, {**mine, "version": version})
    assert response.status_code == 409
    page = response.content.decode()
    assert "Someone else saved this record while you were editing it." in page
    assert '<option value="High" selected>' in page
    case.refresh_from_db()
    assert case.data["status"] == "bob's status" and case.data["severity"] == "Low"
    # The re-shown form carries the new version: saving now is a deliberate choice.
    new_version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    assert new_version != version
    clerk_client.post(url, {**mine, "version": new_version})
    case.refresh_from_db()
    assert case.data == {**case.data, "severity": "High", "status": "new"}


def test_a_post_without_the_version_field_is_refused_with_a_clear_message(clerk_client, clerk):
    case = make_case("No version", owner=clerk, severity="Low", status="new")
    mine = case_data(
        name="Changed", owner=str(clerk.pk), severity="High", amount="", description="", status="new"
    )
    response = clerk_client.post(f"/records/case/{case.pk}/edit/", mine)
    assert response.status_code == 400
    page = htmllib.unescape(response.content.decode())
    assert "This form was sent without its “version” field" in page and "nothing was saved" in page
    assert '<option value="High" selected>' in page  # what was sent is shown back
    case.refresh_from_db()
    assert case.name == "No version" and case.data["severity"] == "Low"
    assert not FieldChange.objects.exists()
