"""Loading the demo: people, groups, queues, record types, the demo definitions and a few
sample records. Every part is idempotent, so `make run` can call it on every start."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from orchestration.services import ImportReport, definitions_import_paths
from records.models import Record, RecordType
from records.services import record_create, record_type_upsert, record_update
from workitems.models import GroupProfile, PersonProfile, Queue

DEMO_DIR = Path(__file__).resolve().parent
DEFINITIONS_DIR = DEMO_DIR / "definitions"
RECORD_TYPES_FILE = DEMO_DIR / "record_types.yaml"
PASSWORD = "demo"
STAFF = "Staff"

# Group -> permissions ("app_label.codename").
GROUP_PERMISSIONS: dict[str, list[str]] = {
    STAFF: ["records.view_record", "records.add_record", "records.change_record"],
    "Managers": ["workitems.reassign_workitem", "workitems.view_workitem"],
    "Orchestration Admins": [
        "orchestration.view_orchestration",
        "orchestration.view_flow",
        "orchestration.view_run",
        "orchestration.cancel_run",
        "orchestration.suspend_run",
        "orchestration.retry_step",
        "orchestration.skip_step",
        "orchestration.import_definitions",
        "orchestration.change_orchestration",  # the builder (/builder/)
        "orchestration.launch_orchestration",
        "workitems.view_workitem",
        # "Who may reassign: users with a reassign permission and admins" (issue 4).
        "workitems.reassign_workitem",
    ],
    "IT": [],
    "Facilities": [],
    "HR": [],
    "Engineering": [],
    "Support": [],
    "Loan officers": [],
    "Loan committee": [],
}


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    groups: tuple[str, ...]
    superuser: bool = False


USERS = [
    DemoUser("admin", "Ada", "Admin", (), superuser=True),
    DemoUser("alice", "Alice", "Ito", ("IT",)),
    DemoUser("bob", "Bob", "Meyer", ("Managers", "Orchestration Admins")),
    DemoUser("carol", "Carol", "Nguyen", ("Facilities",)),
    DemoUser("dave", "Dave", "Okafor", ("HR",)),
    DemoUser("erin", "Erin", "Schmidt", ("Engineering",)),
    DemoUser("frank", "Frank", "Rossi", ("Support",)),
    DemoUser("grace", "Grace", "Hopper", ("Loan officers",)),
    DemoUser("henry", "Henry", "Adeyemi", ("Loan committee",)),
]

# Who manages whom (SLA rules escalate to managers): people -> their manager, groups -> managers.
MANAGERS = {"alice": "bob", "carol": "bob", "dave": "bob", "erin": "bob", "frank": "bob", "grace": "bob"}
GROUP_MANAGERS = {"Engineering": ["bob"], "Support": ["bob"], "IT": ["bob"]}

# Queue api name -> (label, member groups).
QUEUES: dict[str, tuple[str, list[str]]] = {
    "facilities_desk": ("Facilities desk", ["Facilities"]),
    "loan_review": ("Loan review", ["Loan officers"]),
}


@dataclass
class DemoReport:
    users_created: list[str] = field(default_factory=list)
    record_types: list[str] = field(default_factory=list)
    definitions: ImportReport = field(default_factory=ImportReport)
    records_created: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        d = self.definitions
        return [
            f"users created: {', '.join(self.users_created) or 'none (all exist)'}",
            f"record types: {', '.join(self.record_types)}",
            f"definitions imported: {', '.join(d.created) or 'none'}; unchanged: {len(d.unchanged)}",
            f"sample records created: {', '.join(self.records_created) or 'none (records exist)'}",
        ]


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def demo_people_ensure(*, report: DemoReport) -> dict[str, Any]:
    """Groups with their permissions, users (password "demo" when created), queues."""
    groups: dict[str, Group] = {}
    for name, perms in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        if perms:
            group.permissions.add(*[_permission(p) for p in perms])
        groups[name] = group
    User = get_user_model()
    users: dict[str, Any] = {}
    for spec in USERS:
        user, created = User.objects.get_or_create(
            username=spec.username,
            defaults={
                "email": f"{spec.username}@example.com",
                "first_name": spec.first_name,
                "last_name": spec.last_name,
                "is_staff": spec.superuser,
                "is_superuser": spec.superuser,
            },
        )
        if created:
            # Only on creation: a password someone changed in the demo stays changed.
            user.set_password(PASSWORD)
            user.save(update_fields=["password"])
            report.users_created.append(spec.username)
        user.groups.add(*[groups[g] for g in (*spec.groups, STAFF)])
        users[spec.username] = user
    for api_name, (label, member_groups) in QUEUES.items():
        queue, _ = Queue.objects.get_or_create(api_name=api_name, defaults={"label": label})
        queue.groups.add(*[groups[g] for g in member_groups])
    for username, manager in MANAGERS.items():
        PersonProfile.objects.get_or_create(user=users[username], defaults={"manager": users[manager]})
    for name, managers in GROUP_MANAGERS.items():
        profile, _ = GroupProfile.objects.get_or_create(group=groups[name])
        profile.managers.add(*[users[m] for m in managers])
    return users


def demo_record_types_ensure(*, report: DemoReport, path: Path = RECORD_TYPES_FILE) -> None:
    for spec in yaml.safe_load(path.read_text(encoding="utf-8")):
        record_type_upsert(
            api_name=spec["api_name"],
            label=spec["label"],
            label_plural=spec.get("label_plural", ""),
            fields=spec["fields"],
        )
        report.record_types.append(spec["api_name"])


def demo_samples_create(*, users: dict[str, Any], report: DemoReport) -> None:
    """One employee, one case and two loan applications, each only if its type has no records.

    Creating them launches the record-triggered orchestrations (when each save commits), so the
    demo users find work items at once. Background steps are queued for the Celery worker."""
    types = {rt.api_name: rt for rt in RecordType.objects.all()}

    def absent(api_name: str) -> bool:
        return not Record.objects.filter(record_type=types[api_name]).exists()

    if absent("employee"):
        record_create(
            record_type=types["employee"],
            name="Nina Newcomer",
            values={
                "start_date": timezone.localdate() + dt.timedelta(days=14),
                "department": "Engineering",
                "role": "Backend developer",
                "manager": users["bob"].pk,
                "laptop": "MacBook Pro 14",
                "personal_email": "nina.newcomer@example.com",
                "status": "New",
            },
            owner=users["dave"],
            actor=users["dave"],
        )
        report.records_created.append("employee Nina Newcomer")
    if absent("case"):
        case = record_create(
            record_type=types["case"],
            name="Checkout fails for ACME",
            values={
                "severity": "Medium",
                "account": "ACME Corp",
                "description": "Customers report intermittent errors when paying at checkout.",
                "status": "New",
            },
            owner=users["frank"],
            actor=users["frank"],
        )
        # The escalation launches when severity *becomes* High: raise it, as a user would.
        record_update(record=case, values={"severity": "High"}, actor=users["frank"])
        report.records_created.append("case Checkout fails for ACME (raised to High)")
    if absent("loan_application"):
        for name, amount, email, purpose, term in [
            ("LA-1001 Jordan Lee", Decimal("12000"), "jordan.lee@example.com", "Car purchase", 48),
            ("LA-1002 Priya Shah", Decimal("85000"), "priya.shah@example.com", "Home renovation", 120),
        ]:
            record_create(
                record_type=types["loan_application"],
                name=name,
                values={
                    "amount": amount,
                    "applicant_email": email,
                    "purpose": purpose,
                    "term_months": term,
                    "status": "Submitted",
                },
                owner=users["grace"],
                actor=users["grace"],
            )
            report.records_created.append(f"loan_application {name}")


def demo_load(*, samples: bool = True) -> DemoReport:
    """Create or update everything the demo needs; safe to run any number of times."""
    report = DemoReport()
    with transaction.atomic():
        users = demo_people_ensure(report=report)
        demo_record_types_ensure(report=report)
        # Validation checks that named users, groups, queues and record types exist: after them.
        report.definitions = definitions_import_paths(paths=[str(DEFINITIONS_DIR)], activate=True)
    if samples:
        # Outside the block above: each save commits on its own and launches its runs then.
        demo_samples_create(users=users, report=report)
    return report


def demo_logins() -> list[tuple[str, str]]:
    """(username, what they do) of the demo users, for the login page of a development server
    (DEBUG) on which `load_demo` has run; nothing otherwise (one query, only in DEBUG)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    if not settings.DEBUG:
        return []
    names = [u.username for u in USERS]
    present = set(
        get_user_model()._default_manager.filter(username__in=names).values_list("username", flat=True)
    )
    roles = {u.username: ("admin" if u.superuser else ", ".join(u.groups)) for u in USERS}
    return [(name, roles[name]) for name in names if name in present]
