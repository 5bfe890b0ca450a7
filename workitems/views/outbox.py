"""The development Outbox: the emails `make run` wrote to var/outbox/, listed so a newcomer can
read them and click through. See workitems/outbox.py for when it is available."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET

from ..outbox import outbox_dir, outbox_enabled, outbox_message, outbox_messages

PAGE_SIZE = 200


def _outbox(request: HttpRequest) -> Path:
    """The outbox folder when this person may see it; 404 otherwise, so a production site does
    not even reveal that the page exists."""
    folder = outbox_dir()
    if folder is None or not outbox_enabled(request.user):
        raise Http404("the outbox is only available in development")
    return folder


@require_GET
def outbox_list(request: HttpRequest) -> HttpResponse:
    folder = _outbox(request)
    # Not "messages": that name is the messages framework's, shown at the top of every page.
    emails = outbox_messages(folder)
    return render(
        request,
        "workitems/outbox.html",
        {"folder": folder, "emails": emails[:PAGE_SIZE], "total": len(emails)},
    )


# The HTML version is shown in a sandboxed iframe (srcdoc, no scripts), which inherits this page's
# Content-Security-Policy: emails carry inline styles (mail clients ignore stylesheets), so this
# development page alone allows inline styles.
OUTBOX_CSP: dict[str, Any] = {**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]}


@csp_override(OUTBOX_CSP)
@require_GET
def outbox_message_view(request: HttpRequest, name: str, index: int) -> HttpResponse:
    folder = _outbox(request)
    email = outbox_message(folder, name, index)
    if email is None:
        raise Http404("no such message in the outbox")
    return render(request, "workitems/outbox_message.html", {"email": email})
