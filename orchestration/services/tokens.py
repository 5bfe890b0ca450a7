"""API tokens: created hashed, shown once, revocable, expiring."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from ..models import (
    ApiToken,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractUser, AnonymousUser

    Actor = AbstractUser | AnonymousUser | None


class TokenRefused(Exception):
    """A bearer token that does not authenticate; the message says why (shown to the caller)."""


def api_token_create(
    *, user: Any, name: str, days: int | None = None, never_expires: bool = False
) -> tuple[ApiToken, str]:
    """Create a bearer token for `user`, valid for `days` (default: settings.API_TOKEN_DAYS), or
    without end with `never_expires`. Returns the token and its raw value, which is shown once
    and never stored (only its SHA-256 is, with a short prefix to recognise it by)."""
    if days is not None and days < 1:
        raise ValueError("a token lives at least one day (or pass never_expires)")
    raw = ApiToken.new_raw()
    now = timezone.now()
    lifetime = None if never_expires else dt.timedelta(days=days or settings.API_TOKEN_DAYS)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        digest=ApiToken.digest_of(raw),
        prefix=raw[: ApiToken.PREFIX_LENGTH],
        expires_at=now + lifetime if lifetime else None,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke `token` from now on. False when it was revoked already (the first revocation's
    time is kept: a conditional UPDATE, so two revocations at once record one)."""
    now = timezone.now()
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if changed:
        token.revoked_at = now
    return bool(changed)


# An API client calls many times a minute: recording every use would write on every read.
TOKEN_TOUCH_INTERVAL = dt.timedelta(minutes=1)


def api_token_authenticate(*, raw: str) -> Any:
    """The active user a raw bearer token belongs to. Raises TokenRefused saying why not
    (unknown, revoked, expired, inactive user). Records when the token was last used, at most
    once a minute."""
    token = ApiToken.objects.select_related("user").filter(digest=ApiToken.digest_of(raw)).first()
    if token is None:
        raise TokenRefused("the token is not valid (unknown: check that it was copied whole)")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(f"the token '{token.name}' was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC")
    if token.is_expired(now):
        raise TokenRefused(
            f"the token '{token.name}' expired on {token.expires_at:%Y-%m-%d %H:%M} UTC: create a new one"
        )
    if not token.user.is_active:
        raise TokenRefused("the token's user is inactive")
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
