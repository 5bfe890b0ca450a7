"""A clock the test moves: django.utils.timezone.now() answers what the test says, for the whole
process (the engine, the services and the pages all read the time through it)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: dt.datetime) -> None:
        self.now = start
        monkeypatch.setattr(timezone, "now", lambda: self.now)

    def at(self, t: dt.datetime) -> dt.datetime:
        self.now = t
        return t
