"""Saved views of My Work: a person names the search, filters and sort they look at, opens it
again from a pill above the table, and deletes it. Each person's views are theirs alone."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from tests.factories import make_case
from workitems.models import SavedFilter
from workitems.services import saved_view_create

from .mywork_support import interactive, launch, load_process

pytestmark = pytest.mark.django_db

URL = "/my-work/"


@pytest.fixture
def items(personas):  # type: ignore[no-untyped-def]
    load_process(
        "proc",
        "Case review",
        interactive("a", "Check the printer", {"user": "alice"}),
        interactive("b", "Bob decides", {"user": "bob"}),
    )
    load_process("audit", "Case audit", interactive("c", "Audit it", {"user": "alice"}))
    launch("proc", make_case("Printer on fire"))
    launch("audit", make_case("Books"))


def save(client, name: str, **view: str):  # type: ignore[no-untyped-def]
    return client.post("/my-work/views/", {"name": name, **view})


def pills(html: str) -> list[tuple[str, str]]:
    """(name, href) of the saved views listed above the table."""
    return re.findall(
        r'<a class="nav-link py-1 px-2[^"]*" href="(/my-work/views/\d+/)"[^>]*>([^<]+)</a>', html
    )


def test_save_the_current_view_and_open_it_again(client, personas, items):
    client.force_login(personas.alice)
    response = save(client, "  Printer   work ", q=" printer ", orchestration="proc", sort="newest", page="2")
    assert response.status_code == 302
    assert response["Location"] == "/my-work/?q=printer&orchestration=proc&sort=newest"
    saved = SavedFilter.objects.get(user=personas.alice)
    # The name tidied; the query only the view's parameters, as the page reads them (no page).
    assert (saved.name, saved.query) == ("Printer work", "q=printer&orchestration=proc&sort=newest")

    html = client.get(response["Location"]).content.decode()
    assert "Saved this view as “Printer work”: it is listed above the table." in html
    assert pills(html) == [(f"/my-work/views/{saved.pk}/", "Printer work")]
    # The pill of the view on screen is marked as the current one.
    assert f'active" href="/my-work/views/{saved.pk}/" aria-current="page">Printer work</a>' in html
    assert 'aria-current="page">Printer work' not in client.get(URL).content.decode()

    opened = client.get(f"/my-work/views/{saved.pk}/")
    assert opened.status_code == 302
    assert opened["Location"] == "/my-work/?q=printer&orchestration=proc&sort=newest"
    page = client.get(opened["Location"]).content.decode()
    assert re.findall(r'<a class="fw-semibold" href="[^"]*">([^<]+)</a>', page) == ["Check the printer"]


def test_the_default_view_saves_as_an_empty_query(client, personas, items):
    client.force_login(personas.alice)
    assert save(client, "Everything", sort="oldest")["Location"] == URL
    saved = SavedFilter.objects.get(user=personas.alice)
    assert saved.query == ""
    assert client.get(f"/my-work/views/{saved.pk}/")["Location"] == URL


def test_a_saved_view_is_read_again_when_opened(client, personas, items):
    """A query stored by an older version, or edited in the database: unknown parameters are
    dropped, an unknown sort becomes the default, a search too long is left out."""
    saved = SavedFilter.objects.create(
        user=personas.alice,
        name="Old",
        query="sort=bogus&next=https://evil.example/&q=" + "x" * 150 + "&record_type=case&page=9",
    )
    client.force_login(personas.alice)
    assert client.get(f"/my-work/views/{saved.pk}/")["Location"] == "/my-work/?record_type=case"


def test_a_duplicate_name_is_refused_and_nothing_is_lost(client, personas, items):
    client.force_login(personas.alice)
    save(client, "Mine", q="printer")
    response = save(client, "mine", orchestration="audit", sort="priority")
    # Back to the view she was on, with the name she typed, and the message.
    assert response["Location"] == "/my-work/?orchestration=audit&sort=priority&save=mine"
    html = client.get(response["Location"]).content.decode()
    assert (
        "You already have a saved view called “mine”: choose another name, or delete that one first." in html
    )
    assert re.search(
        r'<input class="form-control is-invalid" type="text" id="save-view-name" name="name"'
        r'[^>]*value="mine"',
        html,
    )
    assert '<details class="mb-3 my-work-save" open>' in html
    assert '<option value="audit" selected>Case audit</option>' in html
    # The first view is untouched, and no second one was made.
    assert list(SavedFilter.objects.filter(user=personas.alice).values_list("name", "query")) == [
        ("Mine", "q=printer")
    ]
    # Another person may use the same name.
    client.force_login(personas.bob)
    assert save(client, "Mine", q="bob").status_code == 302
    assert SavedFilter.objects.filter(name="Mine").count() == 2


def test_an_empty_or_too_long_name_is_refused(client, personas, items):
    client.force_login(personas.alice)
    html = client.post("/my-work/views/", {"name": "   ", "q": "printer"}, follow=True).content.decode()
    assert "Give the view a name." in html
    html = client.post("/my-work/views/", {"name": "n" * 81}, follow=True).content.decode()
    assert "The name of a view has at most 80 characters (this one has 81)." in html
    assert not SavedFilter.objects.exists()


def test_a_view_too_long_to_keep_is_refused(personas):
    with pytest.raises(ValidationError, match="too long to save"):
        saved_view_create(user=personas.alice, name="Emoji", params={"q": "😀" * 100})
    assert not SavedFilter.objects.exists()


def test_delete_a_saved_view_and_go_back_to_the_same_page(client, personas, items):
    client.force_login(personas.alice)
    save(client, "Audit", orchestration="audit")
    saved = SavedFilter.objects.get()
    response = client.post(f"/my-work/views/{saved.pk}/delete/", {"q": "printer", "sort": "newest"})
    assert response["Location"] == "/my-work/?q=printer&sort=newest"
    assert "Deleted the saved view “Audit”." in client.get(response["Location"]).content.decode()
    assert not SavedFilter.objects.exists()
    assert client.get(f"/my-work/views/{saved.pk}/delete/").status_code == 405


def test_another_persons_saved_view_cannot_be_opened_or_deleted(client, personas, items):
    theirs = SavedFilter.objects.create(user=personas.bob, name="Vault watch", query="q=vault")
    client.force_login(personas.alice)
    assert client.get(f"/my-work/views/{theirs.pk}/").status_code == 404
    assert client.post(f"/my-work/views/{theirs.pk}/delete/").status_code == 404
    assert SavedFilter.objects.filter(pk=theirs.pk).exists()
    assert "Vault watch" not in client.get(URL).content.decode()
    # The same answer as for a view that does not exist.
    assert client.get(f"/my-work/views/{theirs.pk + 100}/").status_code == 404


def test_saved_views_need_a_login(client, personas, items):
    saved = SavedFilter.objects.create(user=personas.alice, name="Mine", query="q=printer")
    response = client.get(f"/my-work/views/{saved.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert client.post("/my-work/views/", {"name": "x"}).status_code == 302
    assert SavedFilter.objects.count() == 1


def test_views_are_listed_by_name(client, personas, items):
    for name in ("Zulu", "alpha", "Mike"):
        saved_view_create(user=personas.alice, name=name, params={"q": name})
    client.force_login(personas.alice)
    assert [name for _, name in pills(client.get(URL).content.decode())] == ["Mike", "Zulu", "alpha"]
