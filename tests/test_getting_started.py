"""docs/getting-started.md, followed as written: every command of its `console` blocks is run and
what it prints compared with what the page shows; then its browser steps are done through the web
pages (sam creates a request, maria approves it in the Work Guide, ken delivers it), and the
outcome the page promises is checked: the record's status, the run's end, the emails."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from orchestration.models import Run, RunStatus
from records.models import Record
from tests.workitems.guide_support import post_screen
from workitems.models import WorkItem, WorkItemStatus

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "getting-started.md"
# Shell steps a test process does not repeat: its database is already migrated and it serves
# the pages itself (the test client).
NOT_RUN = {"export DATABASE_URL=sqlite:///$PWD/var/mine.sqlite3", "make migrate", "make serve"}
PASSWORD = "change-me-now"


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """(command, the lines shown after it) for every `$ ` line of every console block."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:].strip(), []))
            elif line.strip():
                steps[-1][1].append(line.rstrip())
    return steps


def run_step(command: str, monkeypatch: pytest.MonkeyPatch) -> str:
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):  # VAR=value before the command
        name, _, value = words.pop(0).partition("=")
        monkeypatch.setenv(name, value)
    assert words[:2] == [".venv/bin/python", "manage.py"], f"a step the test cannot follow: {command}"
    out, err = io.StringIO(), io.StringIO()
    call_command(*words[2:], stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_the_commands_print_what_the_guide_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    steps = console_steps(GUIDE.read_text())
    assert [c for c, _ in steps if c not in NOT_RUN] and {c for c, _ in steps} >= NOT_RUN
    ran = 0
    for command, shown in steps:
        if command in NOT_RUN:
            assert not shown, f"{command} shows output the test does not check"
            continue
        printed = run_step(command, monkeypatch).splitlines()
        assert printed == shown, f"{command}\nprinted: {printed}\nthe guide shows: {shown}"
        ran += 1
    assert ran == 5  # createsuperuser, import_record_types, import_people, validate, import


def _login(client: Any, username: str) -> None:
    """Through the login page, as the guide says (the password import_people gave)."""
    client.logout()
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, username


def test_the_browser_steps_run_the_process_to_its_end(
    client: Any, monkeypatch: pytest.MonkeyPatch, mailoutbox
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(ROOT)
    for command, _ in console_steps(GUIDE.read_text()):
        if command not in NOT_RUN:
            run_step(command, monkeypatch)
    users = {u.username: u for u in get_user_model().objects.all()}
    assert set(users) == {"admin", "sam", "maria", "ken"}

    # 1. sam creates the request; the run starts on it, in Approval.
    _login(client, "sam")
    home = client.get("/").content.decode()  # "Records" in the navigation
    assert "Equipment request" in home and "/records/equipment_request/" in home
    assert "/records/equipment_request/new/" in client.get("/records/equipment_request/").content.decode()
    response = client.post(
        "/records/equipment_request/new/",
        {
            "name": "Laptop for Sam",
            "owner": users["sam"].pk,
            "item": "Laptop",
            "cost": "1450",
            "justification": "My old one no longer starts.",
            "status": "Requested",
        },
        follow=True,
    )
    record = Record.objects.get(name="Laptop for Sam")
    assert response.redirect_chain[-1][0] == f"/records/equipment_request/{record.pk}/"
    page = response.content.decode()
    assert "Runs on this record" in page
    assert page.index("Approval") < page.index("Delivery") < page.index("Rejected")
    run = Run.objects.get(record_id=record.pk)
    assert run.current_stage == "approval"

    # 2. maria finds it on My Work (and in her email), approves it in the Work Guide.
    _login(client, "maria")
    my_work = client.get("/my-work/").content.decode()
    assert "Approve the request" in my_work and "Laptop for Sam" in my_work
    assert [m.to for m in mailoutbox] == [["maria@example.com"]]
    approve = WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)
    assert post_screen(client, approve, 0, "finish", decision="Approve").status_code == 200
    approve.refresh_from_db()
    assert approve.status == WorkItemStatus.COMPLETED and approve.completed_by == users["maria"]
    record.refresh_from_db()
    run.refresh_from_db()
    assert (run.current_stage, record.data["status"]) == ("delivery", "Approved")

    # 3. ken delivers it from the IT desk queue; the request is Delivered, the run completed.
    _login(client, "ken")
    assert "Deliver the equipment" in client.get("/my-work/").content.decode()
    deliver = WorkItem.objects.get(run=run, status=WorkItemStatus.ASSIGNED)
    assert post_screen(client, deliver, 0, "finish", serial_number="SN-4821").status_code == 200
    record.refresh_from_db()
    run.refresh_from_db()
    assert record.data["status"] == "Delivered"
    assert run.status == RunStatus.COMPLETED
    assert sorted(m.to[0] for m in mailoutbox) == ["ken@example.com", "maria@example.com"]

    # 4. admin sees it, completed, on the runs page.
    _login(client, "admin")
    runs = client.get("/monitor/runs/").content.decode()
    assert f"/monitor/runs/{run.pk}/" in runs and "Completed" in runs
