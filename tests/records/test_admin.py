from __future__ import annotations

import pytest

from records.models import FieldChange, Record, RecordType
from tests.factories import make_case, ticket_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, personas):  # type: ignore[no-untyped-def]
    client.force_login(personas.admin)
    return client


def test_record_changelist_searches_by_name_and_filters_by_type(admin_client):
    make_case("Printer")
    make_case("Laptop")
    rt = ticket_type()
    Record.objects.create(record_type=rt, name="Printer ticket", data={"title": "x"})
    page = admin_client.get("/admin/records/record/", {"q": "printer"}).content.decode()
    assert "Printer ticket" in page and ">Printer<" in page and "Laptop" not in page
    case_type = RecordType.objects.get(api_name="case")
    page = admin_client.get(
        "/admin/records/record/", {"record_type__id__exact": case_type.pk}
    ).content.decode()
    assert "Laptop" in page and "Printer ticket" not in page


def test_editing_a_record_in_the_admin_keeps_history(admin_client, personas):
    case = make_case("Admin edit", severity="Low")
    response = admin_client.post(
        f"/admin/records/record/{case.pk}/change/",
        {
            "name": "Admin edit",
            "owner": "",
            "data": '{"severity": "High"}',
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    case.refresh_from_db()
    assert case.data["severity"] == "High"
    change = FieldChange.objects.get(record=case)
    assert (change.field, change.old, change.new, change.changed_by) == (
        "severity",
        "Low",
        "High",
        personas.admin,
    )
    page = admin_client.get(f"/admin/records/record/{case.pk}/change/").content.decode()
    assert "Field changes" in page  # the read-only history inline


def test_invalid_record_data_in_the_admin_is_an_error_not_a_save(admin_client):
    case = make_case("Admin bad", severity="Low")
    response = admin_client.post(
        f"/admin/records/record/{case.pk}/change/",
        {
            "name": "Admin bad",
            "owner": "",
            "data": '{"severity": "Huge", "nope": 1}',
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "severity: choose one of: Low, Medium, High" in page
    assert "nope: &#x27;nope&#x27; is not a field of Case" in page
    case.refresh_from_db()
    assert case.data["severity"] == "Low"


def test_adding_a_record_in_the_admin_goes_through_the_service(admin_client):
    case_type = RecordType.objects.get(api_name="case")
    response = admin_client.post(
        "/admin/records/record/add/",
        {
            "record_type": case_type.pk,
            "name": "From admin",
            "owner": "",
            "data": '{"severity": "Medium"}',
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    record = Record.objects.get(name="From admin")
    assert record.data == {"severity": "Medium", "amount": None, "description": None, "status": None}


def test_record_type_fields_are_validated(admin_client):
    response = admin_client.post(
        "/admin/records/recordtype/add/",
        {"api_name": "thing", "label": "Thing", "label_plural": "", "fields": '[{"name": "Bad Name"}]'},
    )
    assert response.status_code == 200
    assert "fields[0].name: must be lower_snake_case" in response.content.decode()
    response = admin_client.post(
        "/admin/records/recordtype/add/",
        {"api_name": "thing", "label": "Thing", "label_plural": "", "fields": '[{"name": "size"}]'},
    )
    assert response.status_code == 302
    assert RecordType.objects.get(api_name="thing").fields[0]["label"] == "Size"


def test_field_history_admin_is_read_only(admin_client):
    assert admin_client.get("/admin/records/fieldchange/").status_code == 200
    assert admin_client.get("/admin/records/fieldchange/add/").status_code == 403
