from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from records.models import Record, RecordType
from records.services import record_create


@pytest.fixture
def demo(transactional_db: Any) -> SimpleNamespace:
    """The demo loaded without its sample records: the demo users by name (demo.alice …),
    record types by api name, and small helpers."""
    from demo.services import USERS, demo_load

    demo_load(samples=False)
    users = get_user_model().objects.in_bulk([u.username for u in USERS], field_name="username")
    types = {rt.api_name: rt for rt in RecordType.objects.all()}

    def create(type_: str, name: str, *, by: Any, owner: Any = None, **values: Any) -> Record:
        """Create a record as a demo user would (the actor needs records.add_record)."""
        return record_create(record_type=types[type_], name=name, values=values, owner=owner, actor=by)

    return SimpleNamespace(**users, types=types, create=create)
