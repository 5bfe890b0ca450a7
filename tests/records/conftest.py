from __future__ import annotations

import re

import pytest

from tests.factories import RECORD_PERMS, UserFactory, grant


@pytest.fixture
def clerk(personas):  # type: ignore[no-untyped-def]
    """alice, allowed to view, create and edit records."""
    return grant(personas.alice, *RECORD_PERMS)


@pytest.fixture
def clerk_client(client, clerk):  # type: ignore[no-untyped-def]
    client.force_login(clerk)
    return client


@pytest.fixture
def nobody(db):  # type: ignore[no-untyped-def]
    """A logged-in user with no permissions at all."""
    return UserFactory(username="nobody")


def tag(html: str, name: str, element: str = "input") -> str:
    """The opening tag of the form control called `name` (fails the test when absent)."""
    match = re.search(rf'<{element}\b[^>]*\bname="{re.escape(name)}"[^>]*>', html)
    assert match, f"no <{element} name={name!r}> in the page"
    return match.group(0)


def field_error(html: str, name: str) -> str:
    """The text of the error shown under field `name` (crispy-bootstrap5 markup)."""
    match = re.search(rf'id="error_\d+_id_{re.escape(name)}"[^>]*>\s*<strong>(.*?)</strong>', html, re.S)
    return match.group(1) if match else ""


def post_edit(client, record, data, **kwargs):  # type: ignore[no-untyped-def]
    """Open the edit page and submit it with `data`, as a browser would (with the page's version)."""
    url = f"/records/{record.record_type.api_name}/{record.pk}/edit/"
    form = client.get(url).content.decode()
    version = re.search(r'name="version" value="([^"]+)"', form)
    assert version, "the edit form carries the version it was loaded at"
    return client.post(url, {**data, "version": version.group(1)}, **kwargs)
