"""`?next=` never sends anyone off the site: the login page, the htmx login redirect that
builds a `next` from the HX-Current-URL header, and the due date and priority form (which goes
back to the page it was included in). (Every other redirect in the code goes to a URL the view
reverses itself; My Work's `_back` and saved views keep only its own query string.)"""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

HOSTILE = [
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "///evil.example",
    "https:evil.example",
    "javascript:alert(document.domain)",
    "JaVaScRiPt:alert(1)",
    " //evil.example",
    "http://testserver@evil.example/",
    "data:text/html,<script>alert(1)</script>",
]


def log_in(client: Client, next_url: str) -> object:
    return client.post("/login/", {"username": "alice", "password": "pw", "next": next_url})


@pytest.mark.parametrize("next_url", HOSTILE)
def test_login_with_a_hostile_next_lands_on_the_home_page(personas, next_url):
    client = Client()
    page = client.get("/login/", {"next": next_url}).content.decode()
    # The hidden field does not carry the hostile value into the form either.
    assert 'name="next" value=""' in page
    response = log_in(client, next_url)
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("next_url", ["/my-work/", "/records/case/1/?item=3", "/monitor/runs/?status=error"])
def test_login_follows_a_next_on_this_site(personas, next_url):
    response = log_in(Client(), next_url)
    assert response.status_code == 302
    assert response["Location"] == next_url


@pytest.mark.parametrize(
    "current_url",
    [
        "https://evil.example/records/case/1/",
        "//evil.example/x",
        "http://testserver.evil.example/records/",
        "javascript:alert(1)",
    ],
)
def test_the_htmx_login_redirect_ignores_a_foreign_current_url(current_url):
    response = Client().get("/my-work/", headers={"HX-Request": "true", "HX-Current-URL": current_url})
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/"


@pytest.mark.parametrize("path", ["//evil.example/", "/\\evil.example/", "///evil.example/"])
def test_the_htmx_login_redirect_refuses_a_path_that_reads_as_another_site(path):
    """A same-origin HX-Current-URL whose path looks protocol-relative (http://testserver//evil…):
    the middleware does not pass it on as `next`."""
    response = Client().get(
        "/my-work/", headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{path}"}
    )
    assert response["HX-Redirect"] == "/login/?next=/"


@pytest.mark.parametrize("next_url", HOSTILE)
def test_the_schedule_form_goes_back_only_to_this_site(personas, next_url):
    from tests.factories import make_case
    from tests.workitems.mywork_support import interactive, item, launch, load_process

    load_process("proc", "Case review", interactive("a", "Check", {"user": "alice"}))
    it = item(launch("proc", make_case()), "a")
    client = Client()
    client.force_login(personas.charlie)  # a manager
    url = f"/work-items/{it.pk}/schedule/"
    response = client.post(url, {"due_at": "", "priority": "3", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == url
    htmx = client.post(url, {"due_at": "", "priority": "4", "next": next_url}, headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == url
