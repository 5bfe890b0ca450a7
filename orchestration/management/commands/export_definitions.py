"""Export the active version of each definition as YAML: importing the files again creates no
new version, so definitions edited in the UI can be brought back into version control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.services import definitions_export, definitions_yaml


class Command(BaseCommand):
    help = (
        "Write the active version of each flow and orchestration (or of the NAMEs given) as YAML: "
        "to stdout, or one <api_name>.yaml per definition into --output DIR."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="api names (default: all).")
        parser.add_argument("--output", "-o", metavar="DIR", help="Folder to write the files into.")

    def handle(self, *args: Any, names: list[str], output: str | None = None, **options: Any) -> None:
        try:
            exported = definitions_export(names=names or None)
        except LookupError as exc:
            raise CommandError(str(exc.args[0])) from exc
        if not exported:
            raise CommandError("nothing to export: no definition has an active version")
        if not output:
            self.stdout.write(definitions_yaml([doc for _, doc in exported]), ending="")
            return
        # A flow and an orchestration may share an api name: they then share the file, as two
        # YAML documents (flow first, as the importer wants it anyway).
        by_name: dict[str, list[dict[str, Any]]] = {}
        for name, doc in exported:
            by_name.setdefault(name, []).append(doc)
        folder = Path(output)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, docs in by_name.items():
                path = folder / f"{name}.yaml"
                path.write_text(definitions_yaml(docs), encoding="utf-8")
                self.stdout.write(f"wrote {path}")
        except OSError as exc:
            raise CommandError(f"cannot write into {output}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"{len(exported)} definitions exported to {folder}"))
