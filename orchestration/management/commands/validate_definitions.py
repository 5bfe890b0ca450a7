"""Validate definition files without storing anything (for CI and editors)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.services import known_flows
from orchestration.validation import load_paths, validate_documents


class Command(BaseCommand):
    help = (
        "Validate orchestration and flow definitions (files or folders of .yaml/.yml/.json) together, "
        "against the flows already stored. Prints every error as 'file: path: message'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def handle(self, *args: Any, paths: list[str], **options: Any) -> None:
        items, errors = load_paths(paths)
        if not items and not errors:
            raise CommandError("no definition documents found in " + ", ".join(paths))
        # Parse errors do not stop the check: the readable documents still get validated, so
        # one run reports everything there is to fix.
        result = validate_documents(items, known_flows=known_flows())
        errors = [*errors, *result.errors]
        if errors:
            for error in errors:
                self.stderr.write(str(error))
            raise CommandError(f"{len(errors)} error(s) in {len(items)} document(s)")
        self.stdout.write(self.style.SUCCESS(f"{len(items)} documents valid"))
