"""How people are named on pages, in messages and in emails: by their full name where they have
one, else by their username. Pickers and the records of who did what add the username in
brackets, so two people with the same name can be told apart."""

from __future__ import annotations

from typing import Any


def person_name(user: Any, *, default: str = "") -> str:
    """ "Dana Whitfield", or "dana" for someone without a name; `default` for no one."""
    if user is None:
        return default
    full = (user.get_full_name() if hasattr(user, "get_full_name") else "").strip()
    return full or str(user.get_username())


def person_label(user: Any) -> str:
    """ "Dana Whitfield (dana)": a name with the username that tells namesakes apart."""
    name = person_name(user)
    username = str(user.get_username())
    return name if name == username else f"{name} ({username})"
