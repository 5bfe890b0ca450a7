"""Create a bearer token for the JSON API and print it once (the same as `api_token create`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from .api_token import add_lifetime_arguments, create_and_print


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print it. Only its SHA-256 is stored: copy it now, it "
        "cannot be shown again. The token acts with USERNAME's permissions. Same as "
        "`api_token create`; `api_token list` and `api_token revoke` manage tokens."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for (shown in lists).")
        add_lifetime_arguments(parser)

    def handle(self, *args: Any, username: str, name: str = "", **options: Any) -> None:
        create_and_print(self, username=username, name=name or "command line", options=options)
