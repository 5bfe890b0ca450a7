"""Launch an orchestration from the command line (scripts, cron, support).

`--record ID` names a record of the model runs are anchored on, which the app that owns it
registers (`registry.record_model_label()`: records.Record in this project); `orchestration`
does not import `records` (DESIGN.md, apps and their direction of dependency)."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.registry import record_model_label
from orchestration.services import LaunchError, run_launch


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs. Values stay text (the orchestration's declared input types convert
    them: "42" to a number, "yes" to a boolean) unless they are a JSON list or object."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--input {pair!r}: write it as key=value")
        if value.strip().startswith(("[", "{")):
            try:
                out[key.strip()] = json.loads(value)
                continue
            except ValueError as exc:
                raise CommandError(f"--input {key}: not valid JSON: {exc}") from exc
        out[key.strip()] = value
    return out


class Command(BaseCommand):
    help = "Launch a run of orchestration NAME (its active version) and print the run id and status."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="The orchestration's api name.")
        parser.add_argument("--record", type=int, metavar="ID", help="Id of the record to run on.")
        parser.add_argument(
            "--input",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="An input value; repeat for several. JSON lists/objects are accepted.",
        )
        parser.add_argument(
            "--as",
            dest="username",
            metavar="USERNAME",
            help="Launch as this user (recorded as the starter, permissions checked). Default: the system.",
        )

    def handle(
        self,
        *args: Any,
        name: str,
        record: int | None = None,
        input: list[str] | None = None,
        username: str | None = None,
        **options: Any,
    ) -> None:
        inputs = parse_inputs(input or [])
        actor = None
        if username:
            User = get_user_model()
            actor = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
            if actor is None:
                raise CommandError(f"no user '{username}'")
        rec = None
        if record is not None:
            label = record_model_label()
            if label is None:
                raise CommandError("--record: no app registers the records runs are anchored on")
            model = apps.get_model(label)
            # Beyond a bigint no row can exist (and PostgreSQL would refuse the query).
            found = 0 < record < 2**63
            rec = model._default_manager.filter(pk=record).first() if found else None
            if rec is None:
                raise CommandError(f"no record with id {record}")
        try:
            run = run_launch(orchestration=name, record=rec, inputs=inputs, actor=actor)
        except LaunchError as exc:
            if hasattr(exc, "error_dict"):
                lines = [f"{key}: {msg}" for key, msgs in exc.message_dict.items() for msg in msgs]
            else:
                lines = list(exc.messages)
            raise CommandError("cannot launch: " + "; ".join(lines)) from exc
        except PermissionDenied as exc:
            raise CommandError(f"cannot launch as {username}: {exc}") from exc
        run.refresh_from_db()
        stage = f", stage {run.current_stage}" if run.current_stage else ""
        self.stdout.write(f"run {run.pk}: {run.status}{stage}")
