"""Move the open runs of one version of an orchestration to another (docs/monitoring.md,
"Migrating running runs"): preview first (--dry-run), then apply."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.models import OrchestrationVersion
from orchestration.services.migration import Mapping, migration_apply, migration_preview, parse_pairs


class Command(BaseCommand):
    help = "Move the open runs of an orchestration's version FROM to version TO (stage/step keys mapped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", metavar="NAME", help="The orchestration's api name.")
        parser.add_argument("--from", dest="source", type=int, required=True, metavar="N")
        parser.add_argument("--to", dest="target", type=int, required=True, metavar="N")
        parser.add_argument("--map-stage", action="append", default=[], metavar="OLD=NEW")
        parser.add_argument("--map-step", action="append", default=[], metavar="OLD=NEW")
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would move and why not; change nothing."
        )
        parser.add_argument(
            "--as", dest="username", metavar="USERNAME", help="Recorded as the actor (permission checked)."
        )

    def handle(self, *args: Any, name: str, source: int, target: int, **opts: Any) -> None:
        versions = {
            v.number: v
            for v in OrchestrationVersion.objects.filter(
                orchestration__api_name=name, number__in=[source, target]
            )
        }
        for n in (source, target):
            if n not in versions:
                raise CommandError(f"orchestration '{name}' has no version {n}")
        try:
            mapping = Mapping(
                stages=parse_pairs(opts["map_stage"], "stage"), steps=parse_pairs(opts["map_step"], "step")
            )
            preview = migration_preview(source=versions[source], target=versions[target], mapping=mapping)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{len(preview.movable)} runs can move from v{source} to v{target}; {len(preview.refused)} cannot"
        )
        for why, n in preview.reasons.items():
            self.stdout.write(f"  {n} refused: {why}")
        if opts["dry_run"]:
            return
        actor = None
        if opts.get("username"):
            User = get_user_model()
            actor = User._default_manager.filter(**{User.USERNAME_FIELD: opts["username"]}).first()
            if actor is None:
                raise CommandError(f"no user '{opts['username']}'")
        try:
            outcome = migration_apply(
                source=versions[source], target=versions[target], mapping=mapping, actor=actor
            )
        except PermissionDenied as exc:
            raise CommandError(f"cannot migrate as {opts['username']}: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"migrated {len(outcome.migrated)} runs; {len(outcome.refused)} left as they were"
            )
        )
