from __future__ import annotations

import pytest

from records.models import Record
from tests.factories import grant, make_case, ticket_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(personas):  # type: ignore[no-untyped-def]
    return make_case("Secret case")


def urls(case):  # type: ignore[no-untyped-def]
    return [
        "/records/case/",
        f"/records/case/{case.pk}/",
        "/records/case/new/",
        f"/records/case/{case.pk}/edit/",
        f"/records/case/{case.pk}/panels/runs/",
    ]


def test_anonymous_visitors_are_sent_to_the_login_page_and_back(client, case):
    for url in urls(case):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"
    response = client.post(f"/records/case/{case.pk}/launch/", {"orchestration": "x"})
    assert response["Location"].startswith("/login/")


def test_users_without_permission_get_403(client, nobody, case):
    client.force_login(nobody)
    for url in urls(case):
        assert client.get(url).status_code == 403, url
    assert client.post("/records/case/new/", {"name": "x", "severity": "Low"}).status_code == 403
    assert client.post(f"/records/case/{case.pk}/launch/", {"orchestration": "x"}).status_code == 403
    assert Record.objects.count() == 1


def test_viewing_does_not_allow_creating_or_editing(client, nobody, case):
    grant(nobody, "records.view_record")
    client.force_login(nobody)
    detail = client.get(f"/records/case/{case.pk}/")
    assert detail.status_code == 200
    assert f"/records/case/{case.pk}/edit/" not in detail.content.decode()
    assert "/records/case/new/" not in client.get("/records/case/").content.decode()
    assert client.get("/records/case/new/").status_code == 403
    response = client.post(f"/records/case/{case.pk}/edit/", {"name": "Changed", "severity": "High"})
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.name == "Secret case"


def test_unknown_types_and_records_are_404(clerk_client, case):
    ticket_type()
    assert clerk_client.get("/records/nothing/").status_code == 404
    assert clerk_client.get("/records/nothing/new/").status_code == 404
    assert clerk_client.get(f"/records/case/{case.pk + 1000}/").status_code == 404
    assert clerk_client.get(f"/records/case/{case.pk + 1000}/edit/").status_code == 404
    # A case is not a ticket, whatever the URL says.
    assert clerk_client.get(f"/records/ticket/{case.pk}/").status_code == 404
    assert clerk_client.get(f"/records/case/{case.pk}/panels/nothing/").status_code == 404


def test_login_page_logs_in_and_returns_to_the_page_asked_for(client, clerk, case):
    url = f"/records/case/{case.pk}/"
    page = client.get(f"/login/?next={url}").content.decode()
    assert "<title>Log in · Flow Orchestration</title>" in page
    assert "Log in to continue" in page
    bad = client.post("/login/", {"username": "alice", "password": "wrong", "next": url})
    assert "Please enter a correct username and password" in bad.content.decode()
    response = client.post("/login/", {"username": "alice", "password": "pw", "next": url})
    assert response["Location"] == url
    assert client.get(url).status_code == 200


def test_logout_is_a_post_that_ends_the_session(clerk_client, case):
    home = clerk_client.get("/").content.decode()
    assert '<form method="post" action="/logout/"' in home
    response = clerk_client.post("/logout/")
    assert response["Location"] == "/login/"
    assert "You are logged out." in clerk_client.get("/login/").content.decode()
    assert clerk_client.get("/records/case/").status_code == 302


def test_home_lists_record_types_with_a_new_button_for_those_who_may_create(clerk_client, client, nobody):
    ticket_type()
    page = clerk_client.get("/").content.decode()  # the records home, also at /records/
    assert '<a href="/records/case/">Cases</a>' in page
    assert '<a href="/records/ticket/">Tickets</a>' in page
    assert "/records/ticket/new/" in page
    client.force_login(nobody)
    assert "/records/ticket/new/" not in client.get("/").content.decode()
