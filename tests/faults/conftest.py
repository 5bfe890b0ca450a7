"""Fault tests: real PostgreSQL, Redis and `celery worker` subprocesses, with crashes and outages.

They run serially in one xdist group ("faults"): they start and stop servers and workers of
their own and must not compete with each other for the two cores."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.xdist_group("faults"))
