"""import_record_types and import_people: what they create, that running them again changes
nothing but what changed, and that a mistake anywhere in the file stores nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from records.models import RecordType
from workitems.models import Queue

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def fails(*args: str) -> tuple[str, str]:
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(*args, stdout=io.StringIO(), stderr=err)
    return str(exc.value), err.getvalue()


def test_record_types_are_created_then_updated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(
        "- {api_name: ticket, label: Ticket, fields: [{name: title, type: text, required: true}]}\n"
    )
    assert run("import_record_types", str(path)) == "created record type ticket (Ticket, 1 field)\n"
    path.write_text(
        "- api_name: ticket\n  label: Support ticket\n  fields:\n"
        "    - {name: title, type: text, required: true}\n    - {name: body, type: long_text}\n"
    )
    assert run("import_record_types", str(path)) == "updated record type ticket (Support ticket, 2 fields)\n"
    rt = RecordType.objects.get()
    assert rt.label == "Support ticket" and [f["name"] for f in rt.fields] == ["title", "body"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "- {api_name: a, label: A, fields: [{name: c, type: choice}]}\n",
            "[1] a: fields[0].choices: a choice",
        ),
        (
            "- {api_name: a, label: A, fields: [{name: x, type: colour}]}\n",
            "fields[0].type: unknown type 'colour'",
        ),
        ("- {label: A}\n", "[1] (no api_name): api_name and label are required"),
        ("api_name: a\n", "expected a list of record types"),
        ("- [unclosed\n", "cannot read"),
    ],
)
def test_a_mistake_in_any_record_type_stores_none(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "types.yaml"
    path.write_text(
        "- {api_name: good, label: Good, fields: []}\n" + text if text.startswith("- {") else text
    )
    message, err = fails("import_record_types", str(path))
    assert said in message + err
    assert not RecordType.objects.exists()


PEOPLE = """
groups:
  Approvers: [records.view_record, workitems.view_workitem]
users:
  - {username: maria, first_name: Maria, last_name: Lopez, email: maria@example.com, groups: [Approvers]}
  - {username: ken}
queues:
  - {api_name: desk, label: Desk, groups: [Approvers], users: [ken]}
"""


def test_people_are_created_with_the_initial_password_and_kept_on_a_second_run(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(PEOPLE)
    out = run("import_people", str(path), "--initial-password", "pw-1")
    assert out.splitlines() == [
        "created group Approvers (2 permissions)",
        "created user maria in Approvers",
        "created user ken",
        "created queue desk (Desk) for Approvers, ken",
    ]
    User = get_user_model()
    maria = User.objects.get(username="maria")
    assert maria.check_password("pw-1") and maria.get_full_name() == "Maria Lopez"
    assert maria.has_perm("workitems.view_workitem")
    maria.set_password("her-own")
    maria.save()
    again = run("import_people", str(path), "--initial-password", "pw-2")
    assert "updated user maria in Approvers" in again
    maria.refresh_from_db()
    assert maria.check_password("her-own")  # never overwritten
    queue = Queue.objects.get()
    assert list(queue.users.values_list("username", flat=True)) == ["ken"]
    assert list(queue.groups.values_list("name", flat=True)) == ["Approvers"]
    assert (User.objects.count(), Group.objects.count(), Queue.objects.count()) == (2, 1, 1)


def test_without_an_initial_password_new_people_have_none(tmp_path: Path) -> None:
    path = tmp_path / "people.yaml"
    path.write_text("users: [{username: ken}]\n")
    run("import_people", str(path))
    assert not get_user_model().objects.get(username="ken").has_usable_password()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("groups: {A: [records.fly]}\n", "groups.A: no permission 'records.fly'"),
        ("users: [{username: x, groups: [Nope]}]\n", "users[0] x: no group 'Nope'"),
        ("users: [{username: x, colour: red}]\n", "users[0] x: unknown field(s) colour"),
        ("queues: [{api_name: q, label: Q, users: [ghost]}]\n", "queues[0] q: no user 'ghost'"),
        ("queues: [{api_name: q}]\n", "queues[0]: each queue needs an api_name and a label"),
        ("people: []\n", "expected a mapping with groups, users and queues"),
        # The good group and user before the mistake are not stored either.
        (
            "groups: {Good: []}\nusers: [{username: fine}, {username: x, groups: [Nope]}]\n",
            "users[1] x: no group",
        ),
    ],
)
def test_a_mistake_anywhere_in_the_people_file_stores_nothing(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "people.yaml"
    path.write_text(text)
    message, err = fails("import_people", str(path))
    assert said in message + err
    assert not get_user_model().objects.exists() and not Group.objects.exists() and not Queue.objects.exists()


def test_managers_of_people_and_groups(tmp_path: Path) -> None:
    from workitems.models import GroupProfile, PersonProfile

    path = tmp_path / "people.yaml"
    path.write_text(
        "groups:\n  IT: {permissions: [records.view_record], managers: [ken]}\n"
        "users:\n  - {username: maria, groups: [IT], manager: ken}\n  - {username: ken}\n"
    )
    out = run("import_people", str(path)).splitlines()
    assert out[-2:] == ["manager of maria: ken", "managers of IT: ken"]
    manager = PersonProfile.objects.get(user__username="maria").manager
    assert manager is not None and manager.username == "ken"
    assert list(GroupProfile.objects.get(group__name="IT").managers.values_list("username", flat=True)) == [
        "ken"
    ]
    path.write_text("users:\n  - {username: maria, manager: nobody}\n")
    _message, err = fails("import_people", str(path))
    assert "users[0] maria: no user 'nobody' to be their manager" in err
