"""Bring the Analytics page's rollups up to date now (orchestration/rollup.py), as beat does
every minute; `--rebuild` recomputes every partition (after changing TIME_ZONE, or restoring a
backup)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orchestration.rollup import refresh


class Command(BaseCommand):
    help = "Bring the Analytics rollups up to date (--rebuild: recompute every partition)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Recompute every partition.")

    def handle(self, *args: Any, **options: Any) -> None:
        t0 = time.monotonic()
        report = refresh(rebuild=options["rebuild"])
        self.stdout.write(
            f"{report.marked} day(s) of runs marked, {report.rebuilt} rebuilt and {report.months} month(s) "
            f"summed ({report.rows} rows)"
            f" in {time.monotonic() - t0:.1f} s."
        )
