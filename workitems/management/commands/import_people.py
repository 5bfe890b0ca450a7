"""Create or update groups (with their permissions), users and queues from a YAML file, so that a
deployment's people can be set up from a file under version control instead of by hand.

    groups:
      Approvers: [workitems.view_workitem]          # its permissions, or:
      IT: {permissions: [records.view_record], managers: [maria]}
    users:
      - {username: maria, first_name: Maria, last_name: Lopez, email: maria@example.com,
         groups: [Approvers], manager: ken}
    queues:
      - {api_name: it_desk, label: IT desk, groups: [IT], users: [maria]}

Users are created without a usable password unless --initial-password is given (they then set
their own with `manage.py changepassword` or the admin); an existing user's password is never
touched. Group permissions and memberships are added, never removed. Everything in the file is
checked first; nothing is stored if any of it is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from orchestration.loading import too_large
from workitems.models import GroupProfile, PersonProfile, Queue

USER_FIELDS = ("first_name", "last_name", "email")


def _group_spec(spec: Any) -> tuple[list[Any], list[str]]:
    """A group's (permissions, managers): a list is its permissions; a mapping says both."""
    if isinstance(spec, dict):
        return list(spec.get("permissions") or []), [str(m) for m in spec.get("managers") or []]
    return list(spec or []), []


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    big = too_large(path.stat().st_size)
    if big:
        raise CommandError(f"{path}: {big}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(loaded, dict) or set(loaded) - {"groups", "users", "queues"}:
        raise CommandError(f"{path}: expected a mapping with groups, users and queues")
    return loaded


def _permission(dotted: Any) -> Permission | None:
    app_label, _, codename = str(dotted).partition(".")
    return Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()


def _check(data: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    groups = data.get("groups") or {}
    if not isinstance(groups, dict):
        return ["groups: expected a mapping of group name to a list of permissions"]
    for name, spec in groups.items():
        if isinstance(spec, dict) and set(spec) - {"permissions", "managers"}:
            errors.append(f"groups.{name}: give permissions and managers (nothing else)")
        perms, _managers = _group_spec(spec)
        for p in perms:
            if _permission(p) is None:
                errors.append(f"groups.{name}: no permission {p!r} (write it app_label.codename)")
    known_groups = set(groups) | set(Group.objects.values_list("name", flat=True))
    users = data.get("users") or []
    User = get_user_model()
    usernames = set(User._default_manager.values_list(User.USERNAME_FIELD, flat=True))
    usernames |= {u["username"] for u in users if isinstance(u, dict) and u.get("username")}
    for name, spec in groups.items():
        errors += [
            f"groups.{name}: no user {m!r} to manage it" for m in _group_spec(spec)[1] if m not in usernames
        ]
    for i, u in enumerate(users):
        if not isinstance(u, dict) or not u.get("username"):
            errors.append(f"users[{i}]: each user needs a username")
            continue
        unknown = set(u) - {"username", "groups", "superuser", "staff", "manager", *USER_FIELDS}
        if u.get("manager") and u["manager"] not in usernames:
            errors.append(f"users[{i}] {u['username']}: no user {u['manager']!r} to be their manager")
        if unknown:
            errors.append(f"users[{i}] {u['username']}: unknown field(s) {', '.join(sorted(unknown))}")
        errors += [
            f"users[{i}] {u['username']}: no group {g!r}"
            for g in u.get("groups") or []
            if g not in known_groups
        ]
    for i, q in enumerate(data.get("queues") or []):
        if not isinstance(q, dict) or not q.get("api_name") or not q.get("label"):
            errors.append(f"queues[{i}]: each queue needs an api_name and a label")
            continue
        errors += [
            f"queues[{i}] {q['api_name']}: no group {g!r}"
            for g in q.get("groups") or []
            if g not in known_groups
        ]
        errors += [
            f"queues[{i}] {q['api_name']}: no user {n!r}" for n in q.get("users") or [] if n not in usernames
        ]
    return errors


class Command(BaseCommand):
    help = "Create or update groups (with permissions), users and queues from a YAML file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="FILE")
        parser.add_argument(
            "--initial-password",
            metavar="PASSWORD",
            help="The password of the users this creates (existing users keep theirs). "
            "Without it, new users have none until one is set.",
        )

    def handle(self, *args: Any, path: str, initial_password: str | None = None, **options: Any) -> None:
        data = _load(Path(path))
        errors = _check(data)
        if errors:
            for line in errors:
                self.stderr.write(f"{path}: {line}")
            raise CommandError(f"{len(errors)} error(s): nothing was stored")
        User = get_user_model()
        with transaction.atomic():
            for name, perms in (data.get("groups") or {}).items():
                group, created = Group.objects.get_or_create(name=name)
                group.permissions.add(*[p for p in map(_permission, perms or []) if p is not None])
                self.stdout.write(
                    f"{'created' if created else 'updated'} group {name} ({len(perms or [])} permissions)"
                )
            for u in data.get("users") or []:
                defaults = {k: u[k] for k in USER_FIELDS if k in u}
                if "superuser" in u:
                    defaults["is_superuser"] = defaults["is_staff"] = bool(u["superuser"])
                if "staff" in u:
                    defaults["is_staff"] = bool(u["staff"])
                user, created = User._default_manager.update_or_create(
                    **{User.USERNAME_FIELD: u["username"]}, defaults=defaults
                )
                if created:
                    if initial_password:
                        user.set_password(initial_password)
                    else:
                        user.set_unusable_password()
                    user.save(update_fields=["password"])
                user.groups.add(*Group.objects.filter(name__in=u.get("groups") or []))
                in_groups = f" in {', '.join(u['groups'])}" if u.get("groups") else ""
                self.stdout.write(f"{'created' if created else 'updated'} user {u['username']}{in_groups}")
            # Managers last: they may be users this file creates.
            for u in data.get("users") or []:
                if u.get("manager"):
                    manager = User._default_manager.get(**{User.USERNAME_FIELD: u["manager"]})
                    PersonProfile.objects.update_or_create(
                        user=User._default_manager.get(**{User.USERNAME_FIELD: u["username"]}),
                        defaults={"manager": manager},
                    )
                    self.stdout.write(f"manager of {u['username']}: {u['manager']}")
            for name, spec in (data.get("groups") or {}).items():
                managers = _group_spec(spec)[1]
                if managers:
                    profile, _ = GroupProfile.objects.get_or_create(group=Group.objects.get(name=name))
                    profile.managers.add(
                        *User._default_manager.filter(**{f"{User.USERNAME_FIELD}__in": managers})
                    )
                    self.stdout.write(f"managers of {name}: {', '.join(managers)}")
            for q in data.get("queues") or []:
                queue, created = Queue.objects.update_or_create(
                    api_name=q["api_name"], defaults={"label": q["label"]}
                )
                queue.groups.add(*Group.objects.filter(name__in=q.get("groups") or []))
                queue.users.add(
                    *User._default_manager.filter(**{f"{User.USERNAME_FIELD}__in": q.get("users") or []})
                )
                members = [*(q.get("groups") or []), *(q.get("users") or [])]
                self.stdout.write(
                    f"{'created' if created else 'updated'} queue {q['api_name']} ({q['label']})"
                    + (f" for {', '.join(members)}" if members else "")
                )
