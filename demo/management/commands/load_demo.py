"""`manage.py load_demo [--no-samples]`: demo users, groups, queues, record types, definitions
and sample records. Idempotent: `make run` calls it on every start."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.services import PASSWORD, demo_load
from orchestration.services import DefinitionsInvalid


class Command(BaseCommand):
    help = "Load the demo (users with password 'demo', queues, record types, definitions, samples)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-samples",
            action="store_true",
            help="Do not create the sample records (which launch the demo orchestrations).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = demo_load(samples=not options["no_samples"])
        except DefinitionsInvalid as exc:
            raise CommandError(f"the demo definitions are invalid:\n{exc}") from exc
        for line in report.lines():
            self.stdout.write(line)
        from orchestration.rollup import refresh

        summed = refresh()  # the Analytics page at once, without waiting for beat's first refresh
        self.stdout.write(f"Analytics: {summed.rebuilt} day(s) of runs summed.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready. Log in as admin, alice, bob, carol, dave, erin, frank, grace or henry "
                f"(password {PASSWORD!r})."
            )
        )
