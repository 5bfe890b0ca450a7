"""The development Outbox: the emails Django's file backend wrote, read back for a web page.

With `make run` (EMAIL_URL unset) the default mailer is
`django.core.mail.backends.filebased.EmailBackend`: it writes one `.log` file per connection,
each holding one or more raw messages followed by a line of 79 dashes. This module finds that
folder, splits the files and parses each message with Python's `email` package.

It is a development aid: the page is shown only when DEBUG is on or to staff, and only while the
default mailer really is the file backend (otherwise there is nothing to read: 404).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from django.conf import settings

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
# The backend writes "\n" + 79 dashes + "\n" after each message. Splitting only where a header
# line follows (or the file ends) keeps a body that itself contains such a line in one piece.
SEPARATOR = re.compile(rb"\n-{79}\n(?=[A-Za-z][A-Za-z0-9-]*:|\Z)")
FILE_NAME = re.compile(r"^[\w.-]+\.log$")
LINK = re.compile(r"https?://[^\s<>\"']+")
MAX_FILES = 500  # newest files only: a long-running dev server's outbox never makes the page slow


def outbox_dir() -> Path | None:
    """The folder the default mailer writes to, or None when it is not the file backend."""
    config = getattr(settings, "MAILERS", {}).get("default", {})
    if config.get("BACKEND") != FILE_BACKEND:
        return None
    path = config.get("OPTIONS", {}).get("file_path") or settings.EMAIL_OUTBOX_DIR
    return Path(path)


def outbox_enabled(user: Any) -> bool:
    """Whether this person may see the Outbox: staff, with the file backend in use. Never anyone
    else, even in development: it holds everybody's emails (record names, links to items)."""
    if outbox_dir() is None:
        return False
    return bool(user.is_authenticated and user.is_staff)


@dataclass(frozen=True)
class OutboxMessage:
    file: str  # the .log file's name
    index: int  # position of the message in that file
    date: datetime | None
    sender: str
    to: str
    subject: str
    text: str
    html: str
    written: float = 0.0  # the file's modification time: orders messages sent in the same second

    @property
    def links(self) -> list[str]:
        """The web addresses in the text version, in order, without repeats."""
        return list(dict.fromkeys(LINK.findall(self.text)))

    @property
    def sort_key(self) -> tuple[datetime, float, int]:
        return (self.date or datetime.min.replace(tzinfo=UTC), self.written, self.index)


def _parse(raw: bytes, file: str, index: int, written: float = 0.0) -> OutboxMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    text_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    return OutboxMessage(
        file=file,
        index=index,
        date=date,
        sender=str(msg["From"] or ""),
        to=str(msg["To"] or ""),
        subject=str(msg["Subject"] or ""),
        text=text_part.get_content() if text_part is not None else "",  # type: ignore[attr-defined]
        html=html_part.get_content() if html_part is not None else "",  # type: ignore[attr-defined]
        written=written,
    )


def _split(data: bytes) -> list[bytes]:
    return [chunk for chunk in SEPARATOR.split(data) if chunk.strip()]


def outbox_messages(folder: Path) -> list[OutboxMessage]:
    """Every message in the folder, newest first."""
    if not folder.is_dir():
        return []
    stamped = sorted(((p.stat().st_mtime, p) for p in folder.glob("*.log")), reverse=True)[:MAX_FILES]
    messages = [
        _parse(raw, path.name, i, written)
        for written, path in stamped
        for i, raw in enumerate(_split(path.read_bytes()))
    ]
    return sorted(messages, key=lambda m: m.sort_key, reverse=True)


def outbox_message(folder: Path, file: str, index: int) -> OutboxMessage | None:
    """One message, by file name and position; None for a name that is not an outbox file of
    this folder (the name comes from a URL: no path separators, no `..`)."""
    if not FILE_NAME.match(file):
        return None
    path = folder / file
    if not path.is_file() or path.resolve().parent != folder.resolve():
        return None
    chunks = _split(path.read_bytes())
    if not 0 <= index < len(chunks):
        return None
    return _parse(chunks[index], file, index)
