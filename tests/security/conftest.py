from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.db import transaction

from .support import build_scenario


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One worker per module: each module builds its scenario once, not once per worker.
    for item in items:
        if "tests/security/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group(f"security-{item.path.stem}"))


@pytest.fixture(scope="module")
def scenario(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[SimpleNamespace]:  # type: ignore[no-untyped-def]
    """The scenario, built once per module inside a transaction that is rolled back when the
    module is done. Each test runs inside it in a savepoint of its own (pytest-django's
    django_db), as Django's TestCase.setUpTestData does."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_scenario(tmp_path_factory.mktemp("outbox"))
        transaction.set_rollback(True)
