"""Serve /metrics for a host that runs only Celery workers (they have no web server of their own)."""

from __future__ import annotations

import os
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Serve the Prometheus metrics of this host's worker processes (PROMETHEUS_MULTIPROC_DIR) "
        "on --port, without authentication: bind it to an address only Prometheus reaches."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--address", default="127.0.0.1")
        parser.add_argument(
            "--with-database",
            action="store_true",
            help="also the gauges read from the database (one host in the deployment is enough)",
        )

    def handle(self, *args: Any, port: int, address: str, with_database: bool, **options: Any) -> None:
        from prometheus_client import start_http_server

        from orchestration import metrics

        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            raise CommandError(
                "PROMETHEUS_MULTIPROC_DIR is not set: the workers' samples are in their own processes. "
                "Set it (the same folder) for the workers and for this command."
            )
        start_http_server(port, addr=address, registry=metrics.registry(database=with_database))
        self.stdout.write(f"serving metrics on http://{address}:{port}/metrics")
        while True:
            time.sleep(3600)
