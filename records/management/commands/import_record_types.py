"""Create or update record types from a YAML file (a list of types, each with its fields).

    - api_name: equipment_request
      label: Equipment request
      fields:
        - {name: item, type: choice, required: true, choices: [Laptop, Monitor, Phone]}
        - {name: cost, type: decimal, required: true}

Field types: text, long_text, number, decimal, date, datetime, boolean, choice (needs choices),
email, user. Re-running updates the types in place (records keep their values); all types in the
file are checked before any is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from orchestration.loading import too_large
from records.models import RecordType
from records.services import record_type_upsert, record_type_validate_fields


def _types(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    big = too_large(path.stat().st_size)
    if big:
        raise CommandError(f"{path}: {big}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(loaded, list) or not all(isinstance(t, dict) for t in loaded):
        raise CommandError(f"{path}: expected a list of record types (- api_name: …, label: …, fields: […])")
    return loaded


class Command(BaseCommand):
    help = "Create or update record types (and their fields) from a YAML file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="FILE")

    def handle(self, *args: Any, path: str, **options: Any) -> None:
        types = _types(Path(path))
        errors = []
        for i, spec in enumerate(types):
            where = f"{path}: [{i}] {spec.get('api_name') or '(no api_name)'}"
            if not spec.get("api_name") or not spec.get("label"):
                errors.append(f"{where}: api_name and label are required")
                continue
            try:
                record_type_validate_fields(spec.get("fields") or [])
            except ValidationError as exc:
                errors.extend(f"{where}: {m}" for m in exc.messages)
        if errors:
            for line in errors:
                self.stderr.write(line)
            raise CommandError(f"{len(errors)} error(s): nothing was stored")
        existing = set(RecordType.objects.values_list("api_name", flat=True))
        with transaction.atomic():
            for spec in types:
                rt = record_type_upsert(
                    api_name=spec["api_name"],
                    label=spec["label"],
                    fields=spec.get("fields") or [],
                    label_plural=spec.get("label_plural", ""),
                )
                verb = "updated" if rt.api_name in existing else "created"
                n = len(rt.fields)
                self.stdout.write(f"{verb} record type {rt.api_name} ({rt.label}, {n} field{'s' * (n != 1)})")
