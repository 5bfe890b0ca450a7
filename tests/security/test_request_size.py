"""Oversized requests are refused with 413 from their Content-Length, before anything reads the
body: the WSGI input below fails the test if it is read at all."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from orchestration.forms import MAX_UPLOAD_BYTES
from orchestration.models import OrchestrationVersion
from orchestration.views.definitions import UPLOAD_REQUEST_BYTES
from tests.factories import grant

pytestmark = pytest.mark.django_db

UPLOAD = "/monitor/orchestrations/upload/"
BOUNDARY = "BoUnDaRy"


class UnreadableInput:
    """A wsgi.input that records any attempt to read it (and fails it)."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, *args: object) -> bytes:
        self.reads += 1
        raise AssertionError("the request body was read")

    readline = read

    def __iter__(self) -> UnreadableInput:
        return self

    def __next__(self) -> bytes:
        return self.read()


def post_declared(client: Client, url: str, length: int, **headers: str) -> tuple[object, UnreadableInput]:
    body = UnreadableInput()
    extra: dict[str, Any] = {"CONTENT_LENGTH": str(length), "wsgi.input": body}
    response = client.generic(
        "POST",
        url,
        b"",
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        headers=headers,
        **extra,
    )
    return response, body


@pytest.fixture
def importer(personas):  # type: ignore[no-untyped-def]
    return grant(personas.bob, "orchestration.view_run", "orchestration.import_definitions")


@pytest.mark.parametrize("csrf", [False, True])
def test_an_oversized_upload_is_refused_before_the_body_is_read(importer, csrf):
    """With CSRF checks on (a browser's form post: the token is in the body, which
    CsrfViewMiddleware would read) and off (the view's form would read it)."""
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(importer)
    response, body = post_declared(client, UPLOAD, 50 * 1024 * 1024)
    assert body.reads == 0
    assert response.status_code == 413
    page = response.content.decode()
    assert "The request is too large (50 MB): this page accepts definitions files up to 1 MB." in page
    assert "Nothing was read or saved." in page
    assert OrchestrationVersion.objects.count() == 0


def test_the_limit_is_the_file_limit_plus_the_form_around_it(importer):
    client = Client()
    client.force_login(importer)
    response, body = post_declared(client, UPLOAD, UPLOAD_REQUEST_BYTES + 1)
    assert (response.status_code, body.reads) == (413, 0)
    # A file of exactly the form's limit still arrives and gets the form's own message.
    content = b"#" * (MAX_UPLOAD_BYTES + 1)
    response = client.post(UPLOAD, {"file": SimpleUploadedFile("big.yaml", content)})
    assert response.status_code == 200
    assert "The file is larger than 1 MB." in response.content.decode()


def test_an_anonymous_oversized_post_is_refused_too():
    response, body = post_declared(Client(), UPLOAD, 10 * 1024 * 1024)
    assert (response.status_code, body.reads) == (413, 0)


def test_every_other_page_has_the_site_wide_limit(personas):
    client = Client()
    client.force_login(personas.alice)
    response, body = post_declared(client, "/my-work/", settings.MAX_REQUEST_BYTES + 1)
    assert (response.status_code, body.reads) == (413, 0)
    assert "accepts at most 2 MB" in response.content.decode()


def test_the_api_answers_413_in_json_without_reading(personas):
    response, body = post_declared(Client(), "/api/orchestrations/x/runs", settings.MAX_REQUEST_BYTES + 1)
    assert (response.status_code, body.reads) == (413, 0)
    assert "too large" in response.json()["errors"]["__all__"][0]


def test_upload_memory_settings_are_bounded():
    assert settings.MAX_REQUEST_BYTES == 2 * 1024 * 1024
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= settings.MAX_REQUEST_BYTES
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= settings.MAX_REQUEST_BYTES
    assert UPLOAD_REQUEST_BYTES < settings.MAX_REQUEST_BYTES
