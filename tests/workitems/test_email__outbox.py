"""The development Outbox: with the file mail backend (`make run`), /dev/outbox/ lists what was
sent and shows each message so a newcomer can click through; anywhere else it does not exist."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest
from django.core.mail import EmailMultiAlternatives

from tests.factories import make_case

from .mywork_support import interactive, item, launch, load_process

pytestmark = pytest.mark.django_db

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


@pytest.fixture
def outbox(tmp_path: Path, settings, client, django_user_model) -> Path:  # type: ignore[no-untyped-def]
    """`make run`'s setup: DEBUG on, mail written to a folder; the client is a staff member's
    (the Outbox is staff's only, even in development)."""
    folder = tmp_path / "outbox"
    settings.DEBUG = True
    settings.MAILERS = {"default": {"BACKEND": FILE_BACKEND, "OPTIONS": {"file_path": str(folder)}}}
    staff, _ = django_user_model.objects.get_or_create(username="outbox-staff", defaults={"is_staff": True})
    client.force_login(staff)
    return folder


def send(subject: str, to: str, text: str, html: str | None = None) -> None:
    msg = EmailMultiAlternatives(subject, text, "flow@example.com", [to])
    if html is not None:
        msg.attach_alternative(html, "text/html")
    msg.send()


def subjects(page: str) -> list[str]:
    return re.findall(r'<a href="/dev/outbox/[^"]+">([^<]+)</a>', page)


@pytest.mark.django_db(transaction=True)
def test_an_assignment_email_is_listed_and_its_link_opens_the_item(client, personas, outbox, settings):
    settings.SITE_URL = "http://testserver"
    load_process(
        "proc",
        "Case review",
        interactive("one", "Check the facts", {"user": "alice"}),
        interactive("two", "Engineering look", {"group": "engineering"}),
    )
    case = make_case("Printer on fire")
    run = launch("proc", case)

    page = client.get("/dev/outbox/").content.decode()
    assert sorted(subjects(page)) == ["Check the facts: Printer on fire", "Engineering look: Printer on fire"]
    assert "alice@example.com" in page
    assert "2 messages" in page
    assert 'class="alert' not in page  # no stray notices (the messages framework shares the name)

    detail_url = re.search(r'<a href="(/dev/outbox/[^"]+)">Check the facts', page).group(1)  # type: ignore[union-attr]
    detail = client.get(detail_url).content.decode()
    link = f"http://testserver/records/case/{case.pk}/?item={item(run, 'one').pk}"
    # The link is a plain link of the page, outside the message's own markup.
    assert f'<li class="text-break"><a href="{link}">{link}</a></li>' in detail
    assert "Open it here (you will be asked to log in if you are not):" in detail
    # The HTML version is only ever inside a sandboxed iframe, as an escaped srcdoc attribute.
    iframe = re.search(r"<iframe [^>]*>", detail).group(0)  # type: ignore[union-attr]
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in iframe
    srcdoc = htmllib.unescape(re.search(r'srcdoc="([^"]*)"', iframe).group(1))  # type: ignore[union-attr]
    assert srcdoc.startswith('<base target="_blank"><!doctype html>')
    assert f'<a href="{link}"' in srcdoc
    assert "Open the task</a>" not in detail.replace(iframe, "")

    # Following the link logged out leads to the login page, and back to the item afterwards.
    client.logout()
    response = client.get(link.removeprefix("http://testserver"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_messages_are_newest_first_and_several_in_one_file_are_all_read(client, personas, outbox):
    from django.core.mail import mailers

    # One connection (one file) for two messages, as a group's assignment email is.
    connection = mailers.default
    connection.open()
    for n in (1, 2):
        connection.send_messages(
            [EmailMultiAlternatives(f"Batch {n}", "x", "f@example.com", ["a@example.com"])]
        )
    connection.close()
    # A plain text body with a line that looks like the backend's separator stays one message.
    send("Later", "b@example.com", "above\n" + "-" * 79 + "\nbelow")
    assert len(list(outbox.glob("*.log"))) == 2

    page = client.get("/dev/outbox/").content.decode()
    assert subjects(page) == ["Later", "Batch 2", "Batch 1"]
    later = re.search(r'<a href="(/dev/outbox/[^"]+)">Later', page).group(1)  # type: ignore[union-attr]
    detail = client.get(later).content.decode()
    assert "above\n" + "-" * 79 + "\nbelow" in detail
    assert "<iframe" not in detail  # no HTML version, no frame


def test_scripts_in_a_message_stay_inert(client, personas, outbox):
    send(
        "<b>Bold</b> subject",
        "a@example.com",
        "text <script>alert(1)</script>",
        '<p onclick="alert(1)">hi</p><script>alert(2)</script>',
    )
    page = client.get("/dev/outbox/").content.decode()
    assert "&lt;b&gt;Bold&lt;/b&gt; subject" in page
    detail = client.get(re.search(r'href="(/dev/outbox/[^"]+/0/)"', page).group(1)).content.decode()  # type: ignore[union-attr]
    assert "<script>" not in detail
    assert "text &lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in detail  # inside the sandboxed srcdoc only


def test_the_message_page_alone_allows_the_inline_styles_of_emails(client, personas, outbox):
    """The HTML version is an srcdoc iframe, which inherits the page's Content-Security-Policy;
    emails need inline styles, scripts stay refused (and the iframe is sandboxed)."""
    send("Styled", "a@example.com", "text", '<p style="color:red">hi</p>')
    listing = client.get("/dev/outbox/")
    assert "'unsafe-inline'" not in listing["Content-Security-Policy"]
    url = re.search(r'href="(/dev/outbox/[^"]+/0/)"', listing.content.decode()).group(1)  # type: ignore[union-attr]
    policy = client.get(url)["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self';" in policy


def test_bad_message_addresses_are_not_found(client, personas, outbox, tmp_path):
    send("One", "a@example.com", "x")
    [log] = outbox.glob("*.log")
    (tmp_path / "secret.log").write_text("Subject: not in the outbox\n\nx\n")
    assert client.get(f"/dev/outbox/{log.name}/0/").status_code == 200
    assert client.get(f"/dev/outbox/{log.name}/1/").status_code == 404
    assert client.get("/dev/outbox/nothing.log/0/").status_code == 404
    assert client.get("/dev/outbox/..%2Fsecret.log/0/").status_code == 404
    assert client.get("/dev/outbox/secret.txt/0/").status_code == 404


def test_an_empty_outbox_says_so(client, personas, outbox):
    page = client.get("/dev/outbox/").content.decode()
    assert "No emails yet." in page


def test_only_for_staff_and_only_with_the_file_backend(client, personas, outbox, settings):
    """Even in development: the Outbox holds everybody's emails (records, links to items)."""
    send("One", "a@example.com", "x")
    assert client.get("/dev/outbox/").status_code == 200
    assert 'href="/dev/outbox/">Outbox</a>' in client.get("/").content.decode()
    client.force_login(personas.alice)  # DEBUG is on, as with make run
    assert client.get("/dev/outbox/").status_code == 404
    assert "Outbox" not in client.get("/").content.decode()
    client.logout()
    assert client.get("/dev/outbox/").status_code == 404
    settings.DEBUG = False
    client.force_login(personas.admin)
    assert client.get("/dev/outbox/").status_code == 200

    # Mail really going out (SMTP): there is no outbox to show, for anyone.
    settings.DEBUG = True
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}}
    assert client.get("/dev/outbox/").status_code == 404
    assert "Outbox" not in client.get("/").content.decode()
