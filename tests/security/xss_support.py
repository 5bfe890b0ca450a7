"""A world full of hostile text, for the stored-XSS tests (tests/browser/test_xss.py and the
email tests in tests/security/test_xss_emails.py).

Every place a person or an admin can put text gets its own marker: `mark("RNAME")` is
"RNAME" followed by every payload (a script element, an attribute break-out into an <img
onerror>, a single-quote break-out into an <svg onload>, a `javascript:` URL and Jinja
template syntax). A page that shows a marker escaped shows it as text, whole; a page that does
not escape it runs a script (a dialog) or grows an element with an event handler.

`build()` stores them through the same services the product uses (record services, the
definition import, run launches, work item completion and reassignment, a failing Python
flow for a step error, a send_email action) and returns what the walk needs.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.contrib.auth.models import Group

from orchestration.models import Run, RunEvent
from orchestration.registry import register_flow
from orchestration.services import definitions_import, run_launch
from records.services import record_create, record_type_upsert, record_update
from tests.factories import RECORD_PERMS, UserFactory, grant
from workitems.models import Queue, WorkItem, WorkItemStatus
from workitems.services import workitem_complete, workitem_reassign

# Jinja syntax that would print 49 (or fail) if user data were ever rendered as template code.
TEMPLATE_SYNTAX = "{{ 7*7 }}{% raw %}"
PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    TEMPLATE_SYNTAX,
)


def mark(tag: str) -> str:
    """The text stored in one place: its tag (to know where it came from) and every payload."""
    return f"{tag}:" + "".join(PAYLOADS)


# An address Django's EmailValidator accepts (a quoted local part) that is still markup.
HOSTILE_EMAIL = '"<svg/onload=alert(1)>"@example.com'
JS_URL = "javascript:alert(1)"


@register_flow("xss_fails")
def _fails(ctx: Any) -> dict[str, Any]:
    """A Python flow that fails with a hostile message: the step's error shows it."""
    raise RuntimeError(mark("STEPERROR"))


def _record_type() -> Any:
    return record_type_upsert(
        api_name="xss",
        label=mark("RTYPE"),
        label_plural=mark("RTYPES"),
        fields=[
            {"name": "text", "type": "text", "label": mark("LTEXT"), "help": mark("HTEXT"), "required": True},
            {"name": "long", "type": "long_text", "label": mark("LLONG"), "help": mark("HLONG")},
            {"name": "count", "type": "number", "label": mark("LNUMBER")},
            {"name": "price", "type": "decimal", "label": mark("LDECIMAL")},
            {"name": "day", "type": "date", "label": mark("LDATE")},
            {"name": "at", "type": "datetime", "label": mark("LDATETIME")},
            {"name": "flag", "type": "boolean", "label": mark("LBOOLEAN")},
            {
                "name": "pick",
                "type": "choice",
                "label": mark("LCHOICE"),
                "choices": [mark("CHOICE"), "plain"],
            },
            {"name": "mail", "type": "email", "label": mark("LEMAIL")},
            {"name": "person", "type": "user", "label": mark("LUSER")},
            {"name": "link", "type": "text", "label": "Link"},
        ],
    )


SCREEN_FIELDS: list[dict[str, Any]] = [
    {
        "name": "answer",
        "type": "text",
        "label": mark("SFLABEL"),
        "help": mark("SFHELP"),
        "required": True,
        "max_length": 400,
        "default": "record.text",
    },
    {"name": "notes", "type": "long_text", "label": mark("SFLONG"), "default": "record.long"},
    {
        "name": "choose",
        "type": "choice",
        "label": mark("SFCHOICEL"),
        "choices": [mark("SFCHOICE"), "plain"],
        "required": True,
    },
    {"name": "several", "type": "multi_choice", "label": mark("SFMULTIL"), "choices": [mark("SFMULTI"), "b"]},
    {"name": "size", "type": "number", "label": mark("SFNUMBER"), "max_value": 10},
]


def _definitions() -> list[dict[str, Any]]:
    form = {
        "kind": "screen_flow",
        "api_name": "xss_form",
        "label": mark("FLOWLABEL"),
        "description": mark("FLOWDESC"),
        "screens": [
            {"key": "main", "label": mark("SCREENL"), "help": mark("SCREENH"), "fields": SCREEN_FIELDS}
        ],
    }
    mailer = {
        "kind": "autolaunched_flow",
        "api_name": "xss_mailer",
        "label": mark("MAILFLOW"),
        "actions": [
            {
                "type": "send_email",
                "to": "'ops@example.com'",
                "subject": "Subject {{ record.text }}",
                "body": "Body {{ record.text }}\nLong {{ record.long }}",
            }
        ],
    }
    failing = {
        "kind": "autolaunched_flow",
        "api_name": "xss_failing",
        "actions": [{"type": "call", "name": "xss_fails"}],
    }
    interactive = {
        "kind": "interactive",
        "flow": "xss_form",
        "email": {
            "subject": "Task {{ record.text }} {{ assignee.name }}",
            "body": "Admin text <b>bold</b> for {{ record.text }}",
        },
    }
    main = {
        "kind": "orchestration",
        "api_name": "xss_proc",
        "label": mark("ORCHLABEL"),
        "description": mark("ORCHDESC"),
        "start": {
            "type": "autolaunched",
            "record_type": "xss",
            "inputs": [{"name": "note", "type": "text", "description": mark("INPUTDESC")}],
        },
        "variables": [
            {"name": "note", "type": "text", "description": mark("VARDESC")},
            {"name": "copied", "type": "text", "default": "record.text"},
        ],
        "stages": [
            {
                "key": "review",
                "label": mark("STAGE1"),
                "steps": [
                    {**interactive, "key": "ask", "label": mark("STEPASK"), "assignee": {"user": "alice"}},
                    {
                        **interactive,
                        "key": "team",
                        "label": mark("STEPTEAM"),
                        "assignee": {"group": "xss_group"},
                    },
                ],
            },
            {
                "key": "wrap",
                "label": mark("STAGE2"),
                "steps": [
                    {**interactive, "key": "last", "label": mark("STEPLAST"), "assignee": {"user": "alice"}}
                ],
            },
        ],
    }
    broken = {
        "kind": "orchestration",
        "api_name": "xss_broken",
        "label": mark("BROKENLABEL"),
        "start": {"type": "autolaunched", "record_type": "xss"},
        "stages": [
            {
                "key": "work",
                "label": mark("BROKENSTAGE"),
                "steps": [
                    {"key": "mail", "label": mark("STEPMAIL"), "kind": "background", "flow": "xss_mailer"},
                    {
                        "key": "boom",
                        "label": mark("STEPBOOM"),
                        "kind": "background",
                        "flow": "xss_failing",
                        "max_attempts": 1,
                    },
                ],
            }
        ],
    }
    return [form, mailer, failing, main, broken]


def build() -> SimpleNamespace:
    """Store every marker; returns the people, records, runs and items the walk visits.

    Needs the personas (alice, charlie the manager, admin)."""
    group, _ = Group.objects.get_or_create(name=mark("GROUP")[:150])
    # Definitions name the group by name: a second, plain-named group carries the payload in
    # its members' names instead, and the first one is what pages list.
    xss_group, _ = Group.objects.get_or_create(name="xss_group")
    queue, _ = Queue.objects.get_or_create(api_name="xss_queue", defaults={"label": mark("QUEUE")})
    alice = grant(UserFactory(username="alice"), *RECORD_PERMS)
    xss_group.user_set.add(alice)
    mallory: Any = UserFactory(
        username=mark("USERNAME")[:150],
        first_name=mark("FIRST")[:150],
        last_name=mark("LAST")[:150],
        email="mallory@example.com",
    )
    mallory.groups.add(group, xss_group)
    grant(mallory, *RECORD_PERMS)
    queue.users.add(alice)

    rtype = _record_type()
    values = {
        "text": mark("VTEXT"),
        "long": mark("VLONG") + "\nsecond line " + mark("VLONG2"),
        "count": 7,
        "price": "1.50",
        "day": "2026-01-02",
        "at": "2026-01-02T10:00:00+00:00",
        "flag": True,
        "pick": mark("CHOICE"),
        "mail": HOSTILE_EMAIL,
        "person": mallory.pk,
        "link": JS_URL,
    }
    record = record_create(record_type=rtype, name=mark("RNAME"), values=values, owner=mallory)
    # A change, so that the history shows hostile old and new values.
    record = record_update(record=record, values={"text": mark("VTEXT2")}, name=mark("RNAME"))
    record = record_update(record=record, values={"text": mark("VTEXT")}, name=mark("RNAME"))

    definitions_import(items=[(f"xss{i}.yaml", d) for i, d in enumerate(_definitions())])

    # Run A: alice's item open in the first stage; the team item reassigned with a reason.
    open_run = run_launch(orchestration="xss_proc", record=record, inputs={"note": mark("RUNVAR")})
    team = WorkItem.objects.get(run=open_run, step_run__key="team")
    charlie = grant(UserFactory(username="charlie"), "workitems.reassign_workitem")
    team = workitem_reassign(item=team, actor=charlie, user=mallory, reason=mark("REASON"))
    ask = WorkItem.objects.get(run=open_run, step_run__key="ask", status=WorkItemStatus.ASSIGNED)

    # Run B: alice answered both first-stage items with hostile values; the run is in "wrap".
    done_run = run_launch(orchestration="xss_proc", record=record, inputs={"note": mark("RUNVAR2")})
    submitted = {
        "answer": mark("SUBMIT"),
        "notes": mark("SUBMITLONG"),
        "choose": mark("SFCHOICE"),
        "several": [mark("SFMULTI")],
        "size": 3,
    }
    for key in ("ask", "team"):
        item = WorkItem.objects.get(run=done_run, step_run__key=key)
        workitem_complete(item=item, user=alice, data=submitted)

    # Run C: a send_email action with the record's values, and a step that errors.
    broken_run = run_launch(orchestration="xss_broken", record=record)

    for run in (open_run, done_run, broken_run):
        run.refresh_from_db()
    # An event whose payload is hostile by itself (what a Python integration might log).
    RunEvent.objects.create(run=open_run, name="orchestration.note", payload={"text": mark("EVENT")})
    return SimpleNamespace(
        alice=alice,
        charlie=charlie,
        mallory=mallory,
        group=group,
        queue=queue,
        rtype=rtype,
        record=record,
        open_run=open_run,
        done_run=done_run,
        broken_run=broken_run,
        ask=ask,
        team=team,
        runs=Run.objects.filter(pk__in=[open_run.pk, done_run.pk, broken_run.pk]),
    )
