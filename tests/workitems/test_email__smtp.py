"""The assignment email over a real SMTP conversation: a separate server process on loopback
(tests/workitems/smtp_sink.py) receives it, and the test reads what arrived."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.settings import _mailer_from_url
from orchestration.models import OutboxEmail
from tests.factories import make_case
from workitems.models import WorkItemStatus

from .mywork_support import eager_retries, interactive, item, launch, load_process  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

SINK = Path(__file__).with_name("smtp_sink.py")


def start_sink(folder: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(SINK), "--folder", str(folder), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "PORT <n>" once it listens
    assert line.startswith("PORT "), f"the SMTP sink did not start: {line!r}"
    return proc, int(line.split()[1])


@pytest.fixture
def smtp(tmp_path: Path, settings) -> Iterator[Callable[..., Path]]:  # type: ignore[no-untyped-def]
    """`smtp(*options)` starts a sink with those options, points the default mailer at it (the
    way EMAIL_URL=smtp://host:port does) and returns the folder it saves messages to."""
    procs: list[subprocess.Popen[str]] = []

    def run(*extra: str) -> Path:
        folder = tmp_path / f"mail{len(procs)}"
        proc, port = start_sink(folder, *extra)
        procs.append(proc)
        settings.MAILERS = {"default": _mailer_from_url(f"smtp://127.0.0.1:{port}")}
        return folder

    yield run
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def received(folder: Path, n: int) -> list[tuple[list[str], email.message.EmailMessage]]:
    """The first `n` messages the sink saved (it runs in another process: wait a little)."""
    deadline = time.monotonic() + 10
    while len(list(folder.glob("*.eml"))) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    out = []
    for path in sorted(folder.glob("*.eml"), key=lambda p: int(p.stem)):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out.append((path.with_suffix(".rcpt").read_text().split(), msg))
    return out


def test_the_email_arrives_over_smtp_with_both_versions_and_the_link(personas, smtp, settings):
    folder = smtp()
    settings.SITE_URL = "https://flow.example.com"
    load_process(
        "proc",
        "Case review",
        interactive(
            "check", "Check the facts", {"user": "alice"}, email={"subject": "Über {{ record.name }}"}
        ),
    )
    case = make_case("Drucker brennt")
    run = launch("proc", case)
    link = f"https://flow.example.com/records/case/{case.pk}/?item={item(run, 'check').pk}"

    [(rcpt, msg)] = received(folder, 1)
    assert rcpt == ["alice@example.com"]
    assert msg["To"] == "alice@example.com"
    assert msg["Subject"] == "Über Drucker brennt"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert link in text
    assert f'<a href="{link}"' in html
    assert "Drucker brennt" in text and "Drucker brennt" in html


@pytest.mark.usefixtures("eager_retries")
def test_a_server_that_refuses_for_a_while_gets_the_email_on_a_retry(personas, smtp):
    folder = smtp("--fail-first", "2")
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())

    [(rcpt, msg)] = received(folder, 1)
    assert rcpt == ["alice@example.com"]
    assert msg["Subject"] == "Check: Case 1"
    assert item(run, "check").status == WorkItemStatus.ASSIGNED
    row = OutboxEmail.objects.get(work_item_id=item(run, "check").pk)
    assert (row.status, row.attempts) == ("sent", 3)
    # The Message-ID is the row's, stable across tries (docs/effects.md).
    assert msg["Message-ID"] == row.message_id


@pytest.mark.usefixtures("eager_retries")
def test_no_server_at_all_leaves_the_assignment_in_place(personas, settings, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.MAILERS = {"default": _mailer_from_url(f"smtp://127.0.0.1:{port}")}
    load_process("proc", "Case review", interactive("check", "Check", {"user": "alice"}))
    run = launch("proc", make_case())
    assert item(run, "check").status == WorkItemStatus.ASSIGNED
    assert "ConnectionRefusedError" in caplog.text
    row = OutboxEmail.objects.get(work_item_id=item(run, "check").pk)
    assert (row.status, row.attempts) == ("failed", settings.ORCHESTRATION_EMAIL_MAX_ATTEMPTS)
    assert "ConnectionRefusedError" in row.last_error
    assert f"failed after {row.attempts} tries" in caplog.text
