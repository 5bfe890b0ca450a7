"""The picker's matches (GET /people/pick/?q=…&kinds=user,group,queue&list=<id>): the options of
a listbox, drawn into the page by htmx as someone types (static/picker.js moves between them).

Everyone logged in may look people up (choosing a delegate for their out of office needs it, as a
colleague's name in any directory); groups and queues are listed for those who manage work
(`workitems.view_workitem` or `workitems.reassign_workitem`) only: others get people alone."""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import picker

# The text input sends its value under its own name, and that name as `field` (_picker.html).
QUERY_NAMES = ("q", "target", "who")
LIST_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,60}$")


@login_required
@require_GET
def pick(request: HttpRequest) -> HttpResponse:
    user = request.user
    manager = user.has_perm("workitems.view_workitem") or user.has_perm("workitems.reassign_workitem")
    field = request.GET.get("field", "")
    names = (field, *QUERY_NAMES) if field else QUERY_NAMES
    q = next((request.GET[n] for n in names if request.GET.get(n, "").strip()), "")
    list_id = request.GET.get("list", "")
    if not LIST_ID.match(list_id):
        list_id = "picker-list"
    kinds = picker.parse_kinds(request.GET.get("kinds", "")) if manager else ("user",)
    return render(
        request,
        "workitems/_picker_options.html",
        {
            "choices": picker.search(q, kinds=kinds),
            "q": q.strip()[: picker.MAX_QUERY],
            "list_id": list_id,
            "too_long": len(q.strip()) > picker.MAX_QUERY,
        },
    )
