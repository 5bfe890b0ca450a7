"""Assignment emails through Django's mail outbox: who gets one, what it says, where its link
goes, and the switch that turns them off. The email is an outbox row written with the
assignment and delivered by a Celery task on commit (eager in tests), so these tests commit for
real."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from orchestration.models import OutboxEmail, OutboxStatus
from orchestration.outbox import outbox_deliver
from tests.factories import UserFactory, make_case
from workitems.models import WorkItem
from workitems.services import workitem_reassign

from .mywork_support import interactive, item, launch, load_process

pytestmark = pytest.mark.django_db(transaction=True)


def parts(message) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The text body and the HTML alternative of a sent message."""
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return message.body, html


def test_the_assignee_gets_a_text_and_html_email_with_an_absolute_link(personas, mailoutbox, settings):
    settings.SITE_URL = "https://flow.example.com"
    load_process(
        "proc",
        "Case review",
        interactive(
            "check",
            "Check the facts",
            {"user": "alice"},
            email={
                "subject": "Please check {{ record.name }} ({{ record.severity }}) for {{ assignee.name }}",
                "body": "{{ record.name }} needs {{ step.label | lower }}.\nThanks, {{ run.orchestration }}",
            },
        ),
    )
    case = make_case("Printer on fire", severity="High")
    run = launch("proc", case)
    it = item(run, "check")

    [message] = mailoutbox
    assert message.to == ["alice@example.com"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "Please check Printer on fire (High) for alice"
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    link = f"https://flow.example.com/records/case/{case.pk}/?item={it.pk}"
    text, html = parts(message)
    assert "Printer on fire needs check the facts.\nThanks, Case review" in text
    assert f"Open it here (you will be asked to log in if you are not):\n{link}" in text
    assert "Printer on fire needs check the facts.<br>Thanks, Case review" in html
    assert f'<a href="{link}"' in html
    assert "Check the facts" in html


def test_without_subject_or_body_a_default_says_what_and_where(personas, mailoutbox):
    load_process("proc", "Case review", interactive("check", "Check the facts", {"user": "alice"}))
    run = launch("proc", make_case("Printer on fire"))
    [message] = mailoutbox
    assert message.subject == "Check the facts: Printer on fire"
    text, html = parts(message)
    assert text.startswith("Hello alice,\n\nYou have a new task: Check the facts\nRecord: Printer on fire\n")
    assert "Process: Case review" in text
    assert f"?item={item(run, 'check').pk}" in text
    assert "<p>Hello alice,</p>" in html
    assert "Check the facts" in html and "Printer on fire" in html


def test_record_values_are_text_in_the_html_version(personas, mailoutbox):
    load_process(
        "proc",
        "Case review",
        interactive("check", "Check <it>", {"user": "alice"}, email={"body": "About: {{ record.name }}"}),
    )
    launch("proc", make_case('<img src=x onerror="alert(1)"> & co'))
    [message] = mailoutbox
    text, html = parts(message)
    assert 'About: <img src=x onerror="alert(1)"> & co' in text  # the text version is plain text
    assert "<img" not in html
    assert "About: &lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; co" in html
    assert "Check &lt;it&gt;" in html
    # A header is one line, whatever the template or the record holds.
    assert "\n" not in message.subject


def test_a_template_that_fails_falls_back_to_the_default(personas, mailoutbox, caplog):
    load_process(
        "proc",
        "Case review",
        interactive("check", "Check", {"user": "alice"}, email={"subject": "{{ record.amount / 0 }}"}),
    )
    launch("proc", make_case("Broken", amount="3"))
    [message] = mailoutbox
    assert message.subject == "Check: Broken"
    assert "the email subject template failed" in caplog.text


def test_emails_can_be_switched_off_per_step(personas, mailoutbox):
    load_process(
        "proc",
        "Case review",
        interactive("quiet", "Quiet", {"user": "alice"}, email={"enabled": False}),
        interactive("loud", "Loud", {"user": "alice"}),
    )
    run = launch("proc", make_case())
    assert [m.subject for m in mailoutbox] == ["Loud: Case 1"]
    # Reassigning a step whose emails are off stays quiet too.
    mailoutbox.clear()
    workitem_reassign(item=item(run, "quiet"), actor=personas.charlie, user=personas.bob)
    assert mailoutbox == []


def test_a_group_or_queue_emails_each_active_member_with_an_address_once(personas, mailoutbox):
    UserFactory(username="erin").groups.add(personas.engineering)
    UserFactory(username="gone", is_active=False).groups.add(personas.engineering)
    UserFactory(username="silent", email="").groups.add(personas.engineering)
    # Frank is in eng_queue both directly and through the engineering group: one email.
    frank = UserFactory(username="frank")
    frank.groups.add(personas.engineering)
    personas.eng_queue.users.add(frank)
    load_process(
        "proc",
        "Case review",
        interactive("g", "For the group", {"group": "engineering"}),
        interactive("q", "For the queue", {"queue": "eng_queue"}),
    )
    launch("proc", make_case())
    sent = sorted((m.subject.split(":")[0], m.to[0]) for m in mailoutbox)
    team = ["alice@example.com", "erin@example.com", "frank@example.com"]
    assert sent == [("For the group", a) for a in team] + [("For the queue", a) for a in team]
    message = next(m for m in mailoutbox if m.subject.startswith("For the queue"))
    assert "You have a new task for the queue Engineering queue (anyone in it can take it)" in message.body


def test_reassigning_emails_the_new_assignee_and_a_stale_email_is_not_sent(personas, mailoutbox):
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())
    it = item(run, "check")
    mailoutbox.clear()
    workitem_reassign(item=it, actor=personas.charlie, queue=personas.triage)
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]
    # The email written for alice, had it been delivered only now, sends nothing: she no longer
    # has the item. Its row says so.
    alices = OutboxEmail.objects.get(work_item_id=it.pk, recipient_id=personas.alice.pk)
    OutboxEmail.objects.filter(pk=alices.pk).update(status=OutboxStatus.PENDING, subject="")
    assert outbox_deliver(email_id=alices.pk) == "canceled"
    assert len(mailoutbox) == 1
    alices.refresh_from_db()
    assert alices.status == "canceled"
    assert alices.last_error == "the item was reassigned before the email went out"
    # One row per recipient per assignment: alice's first, then bob's for the queue.
    assert list(OutboxEmail.objects.filter(work_item_id=it.pk).values_list("status", "to")) == [
        ("canceled", ["alice@example.com"]),
        ("sent", ["bob@example.com"]),
    ]


def test_a_closed_item_sends_nothing(personas, mailoutbox):
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())
    it = item(run, "check")
    WorkItem.objects.filter(pk=it.pk).update(status="canceled")
    mailoutbox.clear()
    row = OutboxEmail.objects.get(work_item_id=it.pk)
    OutboxEmail.objects.filter(pk=row.pk).update(status=OutboxStatus.PENDING)
    assert outbox_deliver(email_id=row.pk) == "canceled"
    assert mailoutbox == []
    row.refresh_from_db()
    assert row.last_error == "the item was canceled before the email went out"


def test_an_item_without_a_record_links_to_my_work(personas, mailoutbox, settings):
    settings.SITE_URL = "http://127.0.0.1:8000"
    # An autolaunched orchestration without a record type runs on no record.
    from tests.factories import load, orchestration, screen_flow

    doc = orchestration(
        "errand",
        stages=[{"key": "s", "steps": [interactive("go", "Go", {"user": "alice"})]}],
        start={"type": "autolaunched"},
    )
    load(screen_flow("review"), doc)
    run = launch("errand", None)
    [message] = mailoutbox
    assert f"http://127.0.0.1:8000/my-work/?item={item(run, 'go').pk}" in message.body
    assert message.subject == "Go: errand"


# --- the link, logged out ------------------------------------------------------------------------


def test_following_the_link_logged_out_goes_through_login_and_back(client, personas, mailoutbox):
    from tests.factories import RECORD_PERMS, grant

    grant(personas.alice, *RECORD_PERMS)
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    case = make_case()
    run = launch("proc", case)
    [message] = mailoutbox
    link = re.search(r"^(http\S+)$", message.body, re.M).group(1)  # type: ignore[union-attr]
    path = link.removeprefix(settings.SITE_URL)
    assert path == f"/records/case/{case.pk}/?item={item(run, 'check').pk}"

    response = client.get(path)
    assert response.status_code == 302
    login_url = response["Location"]
    assert login_url == f"/login/?next=/records/case/{case.pk}/%3Fitem%3D{item(run, 'check').pk}"
    form = client.get(login_url).content.decode()
    assert "Log in to continue to the page you asked for." in form
    assert f'name="next" value="{path}"' in form  # the query string survives the round trip
    response = client.post(login_url, {"username": "alice", "password": "pw", "next": path})
    assert response.status_code == 302
    assert response["Location"] == path
    assert client.get(path).status_code == 200
