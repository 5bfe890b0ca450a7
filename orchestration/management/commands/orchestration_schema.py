"""Write the JSON Schema of the definition format, for editor autocompletion and CI checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.definitions import json_schema


class Command(BaseCommand):
    help = "Print (or write to --output) the JSON Schema of orchestration and flow definition documents."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout.")

    def handle(self, *args: Any, output: str | None = None, **options: Any) -> None:
        text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc}") from exc
        self.stderr.write(f"JSON Schema written to {output}")
