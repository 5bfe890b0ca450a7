from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from ..models import Record, RecordType


@login_required
def record_list(request: HttpRequest, type_name: str) -> HttpResponse:
    rt = get_object_or_404(RecordType, api_name=type_name)
    return render(request, "records/list.html", {"record_type": rt, "records": rt.records.all()[:50]})


@login_required
def record_detail(request: HttpRequest, type_name: str, pk: int) -> HttpResponse:
    record = get_object_or_404(
        Record.objects.select_related("record_type"), pk=pk, record_type__api_name=type_name
    )
    return render(request, "records/detail.html", {"record": record})
