"""Factories and small builders shared by the tests. Personas: alice (end user, group
"engineering"), bob (end user, group "support", queue "triage"), charlie (manager),
admin (superuser)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from orchestration.services import definitions_import
from records.models import Record, RecordType
from records.services import record_create, record_type_upsert
from workitems.models import Queue

User = get_user_model()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("pw")


def make_personas() -> SimpleNamespace:
    engineering, _ = Group.objects.get_or_create(name="engineering")
    support, _ = Group.objects.get_or_create(name="support")
    managers, _ = Group.objects.get_or_create(name="managers")
    managers.permissions.add(Permission.objects.get(codename="reassign_workitem"))
    alice: Any = UserFactory(username="alice")
    alice.groups.add(engineering)
    bob: Any = UserFactory(username="bob")
    bob.groups.add(support)
    charlie: Any = UserFactory(username="charlie")
    charlie.groups.add(managers)
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    triage, _ = Queue.objects.get_or_create(api_name="triage", defaults={"label": "Triage"})
    triage.users.add(bob)
    eng_queue, _ = Queue.objects.get_or_create(api_name="eng_queue", defaults={"label": "Engineering queue"})
    eng_queue.groups.add(engineering)
    case_type()
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        charlie=charlie,
        admin=admin,
        engineering=engineering,
        support=support,
        managers=managers,
        triage=triage,
        eng_queue=eng_queue,
    )


def case_type() -> RecordType:
    return record_type_upsert(
        api_name="case",
        label="Case",
        fields=[
            {"name": "severity", "type": "choice", "choices": ["Low", "Medium", "High"], "required": True},
            {"name": "amount", "type": "decimal"},
            {"name": "description", "type": "long_text"},
            {"name": "status", "type": "text"},
        ],
    )


def make_case(name: str = "Case 1", *, owner: Any = None, **values: Any) -> Record:
    rt = RecordType.objects.filter(api_name="case").first() or case_type()
    values.setdefault("severity", "Low")
    return record_create(record_type=rt, name=name, values=values, owner=owner)


def screen_flow(
    api_name: str = "review_form",
    *,
    fields: list[dict[str, Any]] | None = None,
    screens: list[dict[str, Any]] | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if screens is None:
        screens = [
            {
                "key": "main",
                "fields": fields
                or [{"name": "approved", "type": "boolean"}, {"name": "comment", "type": "text"}],
            }
        ]
    return {"kind": "screen_flow", "api_name": api_name, "screens": screens, "inputs": inputs or []}


def auto_flow(
    api_name: str,
    *,
    outputs: dict[str, str] | None = None,
    actions: list[dict[str, Any]] | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An autolaunched flow that sets the given outputs ({name: expression})."""
    outputs = outputs or {"done": "true"}
    return {
        "kind": "autolaunched_flow",
        "api_name": api_name,
        "inputs": inputs or [],
        "outputs": [{"name": k, "type": "json"} for k in outputs],
        "actions": actions or [{"type": "set_outputs", "values": outputs}],
    }


def eval_flow(api_name: str, expression: str) -> dict[str, Any]:
    return {
        "kind": "evaluation_flow",
        "api_name": api_name,
        "actions": [{"type": "set_outputs", "values": {"is_condition_met": expression}}],
    }


def orchestration(
    api_name: str = "proc",
    *,
    stages: list[dict[str, Any]],
    start: dict[str, Any] | None = None,
    variables: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "orchestration",
        "api_name": api_name,
        "start": start or {"type": "autolaunched", "record_type": "case"},
        "variables": variables or [],
        "stages": stages,
    }


def load(*docs: dict[str, Any]) -> None:
    definitions_import(items=[(f"test{i}.yaml", d) for i, d in enumerate(docs)])


# --- records pages ------------------------------------------------------------------------------

RECORD_PERMS = ("records.view_record", "records.add_record", "records.change_record")


def grant(user: Any, *perms: str) -> Any:
    """Give `user` the permissions named "app_label.codename"; returns the user, perm caches cleared."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


def ticket_type() -> RecordType:
    """A record type with one field of every type, for forms and formatting."""
    return record_type_upsert(
        api_name="ticket",
        label="Ticket",
        fields=[
            {"name": "title", "type": "text", "required": True, "help": "One line"},
            {"name": "body", "type": "long_text"},
            {"name": "count", "type": "number"},
            {"name": "price", "type": "decimal"},
            {"name": "due", "type": "date"},
            {"name": "meeting", "type": "datetime"},
            {"name": "urgent", "type": "boolean"},
            {"name": "colour", "type": "choice", "choices": ["red", "green"]},
            {"name": "contact", "type": "email"},
            {"name": "assignee", "type": "user"},
        ],
    )


def login_request(ip: str = "127.0.0.1") -> Any:
    """A request to pass to `authenticate()` (and `client.login(request=...)`): django-axes'
    backend refuses to authenticate without one, since it throttles per username and address."""
    from django.test import RequestFactory

    return RequestFactory().post("/login/", REMOTE_ADDR=ip)
