"""Import definition files: each changed document becomes a new version (all or nothing)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.services import DefinitionsInvalid, definitions_import_paths


class Command(BaseCommand):
    help = (
        "Validate and import orchestration and flow definitions (files or folders). Changed documents "
        "become new versions, activated unless --no-activate; nothing is stored if anything is invalid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument(
            "--no-activate",
            action="store_true",
            help="Store new versions without making them active (running and new runs keep the old one).",
        )

    def handle(self, *args: Any, paths: list[str], no_activate: bool = False, **options: Any) -> None:
        try:
            report = definitions_import_paths(paths=paths, activate=not no_activate)
        except DefinitionsInvalid as exc:
            for error in exc.errors:
                self.stderr.write(str(error))
            raise CommandError(f"{len(exc.errors)} error(s): nothing was imported") from exc
        suffix = " (not activated)" if no_activate else ""
        for line in report.created:
            self.stdout.write(f"created {line}{suffix}")
        for line in report.unchanged:
            self.stdout.write(f"unchanged {line}")
        self.stdout.write(
            self.style.SUCCESS(f"{len(report.created)} created, {len(report.unchanged)} unchanged")
        )
