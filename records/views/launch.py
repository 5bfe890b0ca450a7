"""The "Launch" buttons of the runs panel: start an autolaunched orchestration on this record."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from orchestration.services import LaunchError, run_launch

from .. import selectors
from .pages import _record


def _launch_error_text(exc: LaunchError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {', '.join(errors)}" for name, errors in exc.message_dict.items())
    return " ".join(exc.messages)


@login_required
@permission_required("records.view_record", raise_exception=True)
@require_POST
def record_launch(request: HttpRequest, type_name: str, pk: int) -> HttpResponse:
    record = _record(type_name, pk)
    api_name = request.POST.get("orchestration", "")
    # Only what the page offers can be launched here: an orchestration for another record type,
    # or one that needs inputs, has no business being started from this button.
    offered = {
        v.orchestration.api_name: v
        for v in selectors.launchable_orchestrations(record_type=record.record_type)
    }
    version = offered.get(api_name)
    if version is None:
        messages.error(request, f"“{api_name}” cannot be launched from this record.")
        return redirect(record)
    label = version.orchestration.label or api_name
    try:
        run = run_launch(orchestration=api_name, record=record, actor=request.user)
    except PermissionDenied as exc:
        messages.error(request, f"You cannot launch {label}: {exc}")
    except LaunchError as exc:
        messages.error(request, f"{label} could not be launched: {_launch_error_text(exc)}")
    else:
        messages.success(request, f"Launched {label} (run {run.pk}, {run.get_status_display().lower()}).")
    # Post/Redirect/Get: reloading the record page never launches a second run.
    return redirect(record)
