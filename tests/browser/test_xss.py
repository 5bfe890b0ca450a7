"""Stored XSS, in real chromium: hostile text in every place a person or an admin can put text
(tests/security/xss_support.py), then every page an end user and an admin see.

On every page: no dialog fired (`page.on("dialog")` records them), no element grew an event
handler or a `javascript:` link from the data, no script holds the payload; and the markers
the page is about are there as visible text, whole (stored and shown escaped, not dropped).
A check of the DOM as well as of dialogs, because a Content-Security-Policy would silence the
dialog of a hole without closing it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import logged_in_page
from tests.security.xss_support import HOSTILE_EMAIL, JS_URL, build, mark
from workitems.emails import item_path
from workitems.models import WorkItem, WorkItemStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"

# Elements that hostile data would have created, looked for in every frame of the page.
HOSTILE_DOM = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      const value = a.value.trim().toLowerCase();
      const handler = a.name.startsWith('on') && value.includes('alert');
      const url = ['href', 'src', 'action', 'formaction', 'xlink:href'].includes(a.name);
      if (handler || (url && value.startsWith('javascript:'))) found.push(`${el.tagName} ${a.name}`);
    }
  }
  for (const s of document.querySelectorAll('script')) {
    if (s.textContent.includes('alert(')) found.push(`script: ${s.textContent.slice(0, 80)}`);
  }
  return found;
}"""


class Walk:
    """One person's browser: records the dialogs of every page it visits."""

    def __init__(self, page: Page, base: str):
        self.page, self.base = page, base
        self.dialogs: list[str] = []
        self.visited: list[str] = []
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{self.page.url}: {dialog.type} {dialog.message}")
        dialog.dismiss()

    def check(self, *markers: str, where: str = "body") -> str:
        """Assert the page as it stands now is clean and shows `markers` as text; returns the text."""
        page = self.page
        page.wait_for_load_state("load")
        self.visited.append(page.url)
        hostile = [h for frame in page.frames for h in frame.evaluate(HOSTILE_DOM)]
        assert hostile == [], f"{page.url}: elements built from data: {hostile}"
        assert self.dialogs == [], self.dialogs
        text = page.locator(where).first.inner_text()
        # inner_text keeps the text as shown: whitespace collapsed per line, no markup.
        flat = " ".join(text.split())
        # A value shown as JSON (run variables, step inputs and outputs) has its quotes escaped.
        missing = [
            m for m in markers if not any(" ".join(f.split()) in flat for f in (m, json.dumps(m)[1:-1]))
        ]
        assert missing == [], f"{page.url}: not shown as text: {missing}\nThe page says: {flat[:3000]}"
        return flat

    def visit(self, path: str, *markers: str, where: str = "body") -> str:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        return self.check(*markers, where=where)


@pytest.fixture
def world(personas):  # type: ignore[no-untyped-def]
    return build()


def test_an_end_user_sees_every_hostile_value_as_text_and_no_script_runs(new_context, live_server, world):
    walk = Walk(logged_in_page(new_context, live_server, "alice"), live_server.url)
    record = world.record
    detail = f"/records/xss/{record.pk}/"

    walk.visit("/records/xss/", mark("RTYPES"), mark("RNAME"), mark("VTEXT"), mark("LTEXT"))
    walk.visit(
        detail,
        mark("RNAME"),
        mark("VTEXT"),
        mark("VTEXT2"),  # the history: old value
        mark("VLONG"),
        mark("VLONG2"),
        mark("CHOICE"),
        mark("LTEXT"),
        mark("LLONG"),
        mark("LNUMBER"),
        mark("LDECIMAL"),
        mark("LDATE"),
        mark("LDATETIME"),
        mark("LBOOLEAN"),
        mark("LCHOICE"),
        mark("LEMAIL"),
        mark("LUSER"),
        world.mallory.username,  # the owner and the user field
        HOSTILE_EMAIL,
        JS_URL,
        # The Work Guide and the runs panel
        mark("STEPASK"),
        mark("ORCHLABEL"),
        mark("STAGE1"),
        mark("STAGE2"),
    )
    for path in ("/records/xss/new/", f"{detail}edit/"):
        walk.visit(path, mark("LTEXT"), mark("HTEXT"), mark("HLONG"), mark("LCHOICE"), mark("LUSER"))
        expect(walk.page.get_by_role("option", name=mark("CHOICE"), exact=True)).to_have_count(1)
    expect(walk.page.locator("input[name=text]")).to_have_value(mark("VTEXT"))
    expect(walk.page.locator("input[name=link]")).to_have_value(JS_URL)

    # A record form refused: the typed hostile values come back, escaped.
    walk.page.locator("input[name=text]").fill(mark("TYPED"))
    walk.page.locator("input[name=price]").fill("not a number")
    walk.page.get_by_role("button", name="Save").click()
    walk.check(mark("LDECIMAL"), mark("HTEXT"))
    expect(walk.page.locator("input[name=text]")).to_have_value(mark("TYPED"))

    # The Work Guide with the item open: labels, help, choices and defaults from the record.
    walk.visit(item_path(world.ask), mark("FLOWLABEL"), mark("SCREENL"), mark("SCREENH"), mark("SFLABEL"))
    walk.check(mark("SFHELP"), mark("SFLONG"), mark("SFCHOICEL"), mark("SFMULTIL"), mark("SFMULTI"))
    guide = walk.page.locator("#panel-work_guide")
    answer = guide.get_by_label(mark("SFLABEL"))
    expect(answer).to_have_value(mark("VTEXT"))  # the default expression, from the record
    expect(guide.get_by_role("option", name=mark("SFCHOICE"), exact=True)).to_have_count(1)

    # After a validation error (size above its maximum): what was typed is back, escaped.
    answer.fill(mark("ANSWER"))
    guide.get_by_label(mark("SFLONG")).fill(mark("NOTES"))
    guide.get_by_label(mark("SFCHOICEL")).select_option(mark("SFCHOICE"))
    guide.get_by_label(mark("SFNUMBER")).fill("99")
    guide.get_by_role("button", name="Finish").click()
    expect(guide.get_by_label(mark("SFNUMBER"))).to_have_attribute("aria-invalid", "true")
    walk.check(mark("SFLABEL"), mark("SFHELP"))
    expect(guide.get_by_label(mark("SFLABEL"))).to_have_value(mark("ANSWER"))
    expect(guide.get_by_label(mark("SFLONG"))).to_have_value(mark("NOTES"))

    walk.visit("/my-work/", mark("STEPASK"), mark("RNAME"), mark("ORCHLABEL"), mark("STAGE1"))
    assert WorkItem.objects.get(pk=world.ask.pk).status == WorkItemStatus.ASSIGNED
    assert walk.dialogs == []
    assert len(walk.visited) == 9


def test_an_admin_sees_every_hostile_value_as_text_and_no_script_runs(
    new_context, live_server, world, settings, tmp_path
):
    settings.MAILERS = {"default": {"BACKEND": FILE_BACKEND, "OPTIONS": {"file_path": str(tmp_path)}}}
    walk = Walk(logged_in_page(new_context, live_server, "admin"), live_server.url)
    open_run, done_run, broken_run = world.open_run, world.done_run, world.broken_run

    walk.visit("/monitor/runs/", mark("ORCHLABEL"), mark("BROKENLABEL"), mark("RNAME"), mark("STAGE1"))
    # Filters echo what was typed: a hostile query string comes back as text in the form.
    walk.visit(
        "/monitor/runs/?orchestration=xss_proc&status=in_progress&q=" + _quote(mark("QUERY")),
        mark("ORCHLABEL"),
    )
    expect(walk.page.locator("input[name=q]")).to_have_value(mark("QUERY"))
    walk.visit(
        f"/monitor/runs/{open_run.pk}/",
        mark("ORCHLABEL"),
        mark("RNAME"),
        mark("STAGE1"),
        mark("STAGE2"),
        mark("STEPASK"),
        mark("STEPTEAM"),
        mark("RUNVAR"),  # a run variable
        mark("VTEXT"),  # a variable computed from the record
        # (The reassign reason is in the timeline too, but past the 200 characters an event
        # summary shows after the hostile old and new assignee: its admin page is below.)
        mark("EVENT"),  # an event payload
    )
    walk.visit(f"/monitor/runs/{done_run.pk}/")
    walk.page.locator("details.step-io summary").first.click()  # the step's inputs and outputs
    walk.check(mark("SUBMIT"), mark("SUBMITLONG"), mark("SFCHOICE"), mark("SFMULTI"))
    walk.visit(f"/monitor/runs/{broken_run.pk}/", mark("STEPERROR"), mark("STEPBOOM"), mark("BROKENSTAGE"))

    walk.visit("/work-items/", mark("STEPASK"), mark("STEPTEAM"), mark("RNAME"), mark("ORCHLABEL"))
    walk.visit("/monitor/orchestrations/", mark("ORCHLABEL"), mark("BROKENLABEL"))
    walk.visit("/monitor/orchestrations/xss_proc/", mark("ORCHLABEL"), mark("ORCHDESC"))
    walk.visit(
        "/monitor/orchestrations/xss_proc/v1/",
        mark("ORCHLABEL"),
        mark("STAGE1"),
        mark("STEPASK"),
        mark("STEPTEAM"),
        mark("STAGE2"),
    )

    # The upload page, refusing a YAML document full of payloads: errors quote it as text.
    walk.visit("/monitor/orchestrations/upload/")
    hostile_yaml = (
        "kind: orchestration\napi_name: bad\nlabel: 'x'\n"
        f"start: {{type: autolaunched}}\nstages:\n- key: s\n  label: {_yaml(mark('UPLOADLABEL'))}\n"
        "  steps:\n  - key: a\n    kind: interactive\n    flow: nope\n"
        f"    assignee: {{user: {_yaml(mark('UPLOADUSER'))}}}\n"
    )
    walk.page.set_input_files(
        "input[type=file]",
        files=[{"name": "<i>bad.yaml", "mimeType": "text/yaml", "buffer": hostile_yaml.encode()}],
    )
    walk.page.get_by_role("button", name="Import").click()
    walk.check(mark("UPLOADUSER"), "<i>bad.yaml")

    # The Outbox: the assignment emails written by the file backend with hostile values.
    assert send_assignment_email_again(world.ask.pk) == 1
    walk.visit("/dev/outbox/", "Task " + mark("VTEXT"))
    walk.page.get_by_role("link", name="Task " + mark("VTEXT")).first.click()
    walk.check("Task " + mark("VTEXT"), mark("VTEXT"), mark("RNAME"))
    frame = walk.page.frame_locator("iframe.outbox-html")
    expect(frame.locator("body")).to_contain_text(mark("STEPASK"))
    expect(frame.locator("body")).to_contain_text(mark("RNAME"))

    # The Django admin's changelists and a change page of the main models.
    for path, markers in (
        ("/admin/records/record/", [mark("RNAME")]),
        (f"/admin/records/record/{world.record.pk}/change/", [mark("RNAME")]),
        ("/admin/records/recordtype/", [mark("RTYPE")]),
        ("/admin/records/fieldchange/", [mark("VTEXT2")]),
        ("/admin/orchestration/orchestration/", [mark("ORCHLABEL")]),
        ("/admin/orchestration/flow/", [mark("FLOWLABEL")]),
        ("/admin/orchestration/run/", [mark("RNAME")]),
        (f"/admin/orchestration/run/{open_run.pk}/change/", [mark("RUNVAR")]),
        ("/admin/orchestration/steprun/", ["boom"]),
        (f"/admin/orchestration/steprun/{_step(broken_run, 'boom')}/change/", [mark("STEPERROR")]),
        ("/admin/orchestration/runevent/", []),
        (
            f"/admin/orchestration/runevent/{_event(open_run, 'workitems.item.reassigned')}/change/",
            [mark("REASON")],
        ),
        ("/admin/workitems/workitem/", [mark("STEPASK")]),
        (f"/admin/workitems/workitem/{world.team.pk}/change/", [mark("STEPTEAM")]),
        ("/admin/workitems/queue/", [mark("QUEUE")]),
        ("/admin/auth/user/", [world.mallory.username]),
        ("/admin/auth/group/", [world.group.name]),
    ):
        walk.visit(path, *markers)
    assert walk.dialogs == []
    assert len(walk.visited) == 31


def _step(run: Any, key: str) -> int:
    return int(run.step_runs.get(key=key).pk)


def _event(run: Any, name: str) -> int:
    return int(run.events.get(name=name).pk)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def _yaml(text: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- emails ----------------------------------------------------------------------------------

INJECTED = "\r\nBcc: mallory@example.com\r\nX-Injected: yes"


def _assert_headers_clean(message: Any) -> None:
    """Every header of the sent message is one line and nothing was added by the data."""
    import email
    import email.policy

    parsed = email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)
    assert {k.lower() for k in parsed} <= {
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "subject",
        "from",
        "to",
        "date",
        "message-id",
        "auto-submitted",
        "x-orchestration-key",
    }, parsed.keys()
    assert parsed["Subject"] == message.subject
    assert "\r" not in message.subject and "\n" not in message.subject
    assert message.bcc == []


def send_assignment_email_again(item_id: int) -> int:
    """The item's assignment email, rendered from the values as they are now and delivered
    (through the outbox, as on assignment: written in a transaction, sent on its commit)."""
    from django.db import transaction

    from orchestration.models import OutboxEmail
    from workitems.emails import assignment_emails_write

    item = WorkItem.objects.get(pk=item_id)
    OutboxEmail.objects.filter(work_item_id=item.pk).delete()  # the earlier message, rendered then
    with transaction.atomic():
        rows = assignment_emails_write(item=item)
    assert OutboxEmail.objects.filter(work_item_id=item.pk, status="sent").count() == rows
    return rows


def _html_in_chromium(page: Page, html: str) -> list[str]:
    dialogs: list[str] = []

    def record(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.set_content(html)
    assert page.evaluate(HOSTILE_DOM) == []
    return dialogs


def test_the_assignment_email_escapes_hostile_values_in_html_and_keeps_them_verbatim_in_text(
    page: Page, world, mailoutbox
):
    from records.services import record_update

    record_update(record=world.record, values={"text": mark("SUBJ") + INJECTED})
    mailoutbox.clear()
    assert send_assignment_email_again(world.ask.pk) == 1
    [message] = mailoutbox
    html = next(content for content, mime in message.alternatives if mime == "text/html")

    # The subject template `Task {{ record.text }} {{ assignee.name }}`: the value, on one line.
    assert message.subject.startswith("Task " + mark("SUBJ") + " Bcc: mallory@example.com")
    _assert_headers_clean(message)
    # Text part: the values as they were typed (a plain-text email needs no escaping).
    assert mark("RNAME") in message.body
    assert mark("STEPASK") in message.body
    assert mark("ORCHLABEL") in message.body
    # Not rendered a second time: the Jinja text is there verbatim, never its value (ids in the
    # link may contain "49", so the value is looked for where the text would have been).
    assert "{{ 7*7 }}{% raw %}" in message.body and "javascript:alert(1)49" not in message.body
    # The admin's body template is text: its <b> is shown, not applied, in the HTML part.
    assert "Admin text <b>bold</b> for " + mark("SUBJ") in message.body
    assert "Admin text &lt;b&gt;bold&lt;/b&gt;" in html
    # HTML part: every value escaped, nothing of it raw.
    for tag in ("RNAME", "STEPASK", "ORCHLABEL"):
        assert _escaped(mark(tag)) in html
    assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert _html_in_chromium(page, html) == []
    expect(page.locator("body")).to_contain_text(mark("RNAME"))
    expect(page.locator("body")).to_contain_text(mark("STEPASK"))


def test_a_send_email_action_keeps_hostile_values_verbatim_and_out_of_the_headers(world, mailoutbox):
    from orchestration.services import run_launch
    from records.services import record_update

    record_update(record=world.record, values={"text": mark("ACTION") + INJECTED})
    mailoutbox.clear()
    run = run_launch(orchestration="xss_broken", record=world.record)
    sent = [m for m in mailoutbox if m.to == ["ops@example.com"]]
    assert len(sent) == 1, [m.subject for m in mailoutbox]
    [message] = sent
    assert run.step_runs.get(key="mail").status == "completed"
    _assert_headers_clean(message)
    assert message.subject == "Subject " + mark("ACTION") + " Bcc: mallory@example.com X-Injected: yes"
    # The body template `Body {{ record.text }}\nLong {{ record.long }}`: the values verbatim,
    # Jinja syntax inside them not run. The action sends text only: there is no HTML part.
    assert message.body == f"Body {mark('ACTION')}{INJECTED}\nLong {world.record.data['long']}"
    assert getattr(message, "alternatives", []) == []


def _escaped(text: str) -> str:
    from django.utils.html import escape

    return str(escape(text))
