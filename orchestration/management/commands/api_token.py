"""API tokens from the command line: create (prints the raw token once), list, revoke."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from orchestration.models import ApiToken
from orchestration.services import api_token_create, api_token_revoke


def active_user(username: str) -> Any:
    User = get_user_model()
    user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
    if user is None:
        raise CommandError(f"no user '{username}'")
    if not user.is_active:
        raise CommandError(f"user '{username}' is inactive: its tokens would be refused")
    return user


def add_lifetime_arguments(parser: CommandParser) -> None:
    lifetime = parser.add_mutually_exclusive_group()
    lifetime.add_argument(
        "--days",
        type=int,
        help=f"Days until the token expires (default: API_TOKEN_DAYS, now {settings.API_TOKEN_DAYS}).",
    )
    lifetime.add_argument(
        "--never-expires", action="store_true", help="No expiry: the token works until revoked."
    )


def create_and_print(command: BaseCommand, *, username: str, name: str, options: dict[str, Any]) -> None:
    user = active_user(username)
    days = options.get("days")
    if days is not None and days < 1:
        raise CommandError("--days must be 1 or more (use --never-expires for a token without expiry)")
    token, raw = api_token_create(user=user, name=name, days=days, never_expires=options["never_expires"])
    until = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
    # The raw token alone on stdout, so `TOKEN=$(manage.py api_token create …)` captures it.
    command.stderr.write(
        f"Token '{token.name}' ({token.prefix}…) for {username}, {until} (shown once, store it now):"
    )
    command.stdout.write(raw)


def when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


class Command(BaseCommand):
    help = (
        "Manage API tokens. `create USERNAME --name NAME [--days N | --never-expires]` prints the token "
        "once (only its SHA-256 is stored); `list [--user USERNAME]` shows them without their value; "
        "`revoke ID|PREFIX` stops one from working."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        create = sub.add_parser("create", help="Create a token and print it once.")
        create.add_argument("username")
        create.add_argument("--name", required=True, help="What the token is for.")
        add_lifetime_arguments(create)
        listing = sub.add_parser("list", help="List tokens (never their value).")
        listing.add_argument("--user", dest="username", help="Only this user's tokens.")
        revoke = sub.add_parser("revoke", help="Revoke a token by its id or prefix.")
        revoke.add_argument("token", help="The id (from `list`) or the prefix (fo_…).")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            create_and_print(self, username=options["username"], name=options["name"], options=options)
        elif action == "list":
            self.list_tokens(options.get("username"))
        else:
            self.revoke(options["token"])

    def list_tokens(self, username: str | None) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "-created_at")
        if username:
            tokens = tokens.filter(user__username=username)
        rows = [
            (
                str(t.pk),
                t.user.get_username(),
                t.name,
                f"{t.prefix}…" if t.prefix else "-",
                when(t.created_at),
                when(t.last_used_at),
                when(t.expires_at) if t.expires_at else "never",
                when(t.revoked_at),
                t.state,
            )
            for t in tokens
        ]
        if not rows:
            self.stderr.write("no tokens")
            return
        header = ("id", "user", "name", "prefix", "created", "last used", "expires", "revoked", "state")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    def revoke(self, ref: str) -> None:
        match = Q(prefix=ref) if not ref.isdigit() else Q(pk=int(ref))
        if not ref.isdigit() and len(ref) < ApiToken.PREFIX_LENGTH:
            raise CommandError(
                f"give a token id or its whole prefix ({ApiToken.PREFIX_LENGTH} characters, fo_…)"
            )
        tokens = list(ApiToken.objects.select_related("user").filter(match))
        if not tokens:
            raise CommandError(f"no token '{ref}' (see `manage.py api_token list`)")
        if len(tokens) > 1:
            ids = ", ".join(str(t.pk) for t in tokens)
            raise CommandError(f"the prefix '{ref}' matches several tokens ({ids}): revoke by id")
        token = tokens[0]
        if not api_token_revoke(token=token):
            self.stdout.write(f"token {token.pk} '{token.name}' of {token.user} was already revoked")
            return
        self.stdout.write(f"revoked token {token.pk} '{token.name}' of {token.user}")
