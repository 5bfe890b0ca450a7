"""Only people who may act on an item reach it (others get a 404, as for an item that does not
exist); input is checked on the server; htmx posts carry the CSRF token; what people type is
escaped when shown back."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import RECORD_PERMS, UserFactory, grant
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus

from .guide_support import define, item_of, page_url, panel, post_screen, start, text

pytestmark = pytest.mark.django_db


def attempts(client: Client, item: WorkItem) -> list:  # type: ignore[type-arg]
    return [
        client.get(f"/work-items/{item.pk}/", HTTP_HX_REQUEST="true"),
        client.get(f"/work-items/{item.pk}/"),
        post_screen(client, item, 0, "next", amount="5", kind="repair"),
        post_screen(client, item, 0, "finish", amount="5", kind="repair", htmx=False),
        client.post(f"/work-items/{item.pk}/claim", HTTP_HX_REQUEST="true"),
        client.post(f"/work-items/{item.pk}/release"),
    ]


@pytest.mark.parametrize("assignee", [{"user": "bob"}, {"group": "support"}, {"queue": "triage"}])
def test_people_who_may_not_act_get_a_404_for_every_action(client, personas, assignee):
    define(assignee=assignee, screens=[{"key": "one", "fields": [{"name": "amount"}, {"name": "kind"}]}])
    _, run = start()
    item = item_of(run)
    client.force_login(personas.alice)
    assert [r.status_code for r in attempts(client, item)] == [404] * 6
    item.refresh_from_db()
    assert item.status == WorkItemStatus.ASSIGNED and item.claimed_by is None
    assert not WorkItemDraft.objects.exists()


def test_an_unknown_item_is_a_404_too(client, personas):
    client.force_login(personas.alice)
    assert client.get("/work-items/424242/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.post("/work-items/424242/screen", {"screen": 0, "action": "next"}).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client, personas):
    define()
    _, run = start()
    item = item_of(run)
    response = client.get(f"/work-items/{item.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert post_screen(client, item, 0, "next", htmx=False, amount="5").status_code == 302
    # From htmx (a panel whose session expired) the whole page goes to the login form.
    htmx_response = post_screen(client, item, 0, "next", amount="5")
    assert htmx_response["HX-Redirect"].startswith("/login/?next=")
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED


def test_reading_is_get_only_and_changing_is_post_only(client, personas):
    define()
    _, run = start()
    item = item_of(run)
    client.force_login(personas.alice)
    assert client.post(f"/work-items/{item.pk}/").status_code == 405
    assert client.get(f"/work-items/{item.pk}/screen").status_code == 405
    assert client.get(f"/work-items/{item.pk}/claim").status_code == 405


def test_posts_need_the_csrf_token_which_htmx_sends_as_a_header(personas):
    grant(personas.alice, *RECORD_PERMS)
    define()
    case, run = start()
    item = item_of(run)
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    data = {"screen": 0, "action": "next", "f-amount": "5", "f-kind": "repair"}
    url = f"/work-items/{item.pk}/screen"
    assert client.post(url, data, HTTP_HX_REQUEST="true").status_code == 403
    page = client.get(page_url(case)).content.decode()
    # The page puts the token in hx-headers on <body>, for every htmx request.
    token = page.split('hx-headers=\'{"X-CSRFToken": "', 1)[1].split('"', 1)[0]
    response = client.post(url, data, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert "Screen 2 of 2" in text(response.content.decode())


def test_input_is_checked_on_the_server_whatever_the_browser_lets_through(client, personas):
    define()
    _, run = start()
    item = item_of(run)
    client.force_login(personas.alice)
    # A choice that is not offered, an amount under the minimum, a reason over the limit.
    post_screen(client, item, 0, "next", amount="5", kind="repair")
    html = post_screen(client, item, 1, "finish", reason="x" * 41).content.decode()
    assert "At most 40 characters." in html
    html = post_screen(client, item, 0, "next", amount="0.5", kind="destroy").content.decode()
    assert "Must be at least 1." in html
    assert "Choose one of: repair, replace." in html
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED


def test_script_payloads_typed_into_fields_are_escaped_everywhere_they_are_shown(client, personas):
    grant(personas.alice, *RECORD_PERMS)
    payload = "<script>alert('x')</script>"
    define(assignee={"group": "engineering"})
    case, run = start()
    item = item_of(run)
    client.force_login(personas.alice)
    # Shown back in the form after an error ...
    html = post_screen(client, item, 0, "next", amount=payload, kind=payload).content.decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    # ... from the draft on the record page ...
    page = client.get(page_url(case, item=item.pk, check=1)).content.decode()
    assert "<script>alert" not in page
    # ... and as input shown back when someone else completed the item first.
    post_screen(client, item, 0, "next", amount="5", kind="repair")
    erin = UserFactory(username="erin")
    erin.groups.add(personas.engineering)
    from workitems.services import workitem_complete

    workitem_complete(item=item, user=erin, data={"amount": "5", "kind": "repair", "reason": "done"})
    html = post_screen(client, item, 1, "finish", reason=payload).content.decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<script>alert" not in panel(client.get(page_url(case, item=item.pk)).content.decode())
