"""Create a bearer token for the JSON API and print it once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.services import api_token_create


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print it. Only its SHA-256 is stored: copy it now, it "
        "cannot be shown again. The token acts with USERNAME's permissions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for (shown in the admin).")

    def handle(self, *args: Any, username: str, name: str = "", **options: Any) -> None:
        User = get_user_model()
        user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"no user '{username}'")
        if not user.is_active:
            raise CommandError(f"user '{username}' is inactive: its tokens would be refused")
        token, raw = api_token_create(user=user, name=name or "command line")
        self.stderr.write(f"Token '{token.name}' for {username} (shown once, store it now):")
        self.stdout.write(raw)
