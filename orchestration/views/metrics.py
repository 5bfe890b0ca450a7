"""GET /metrics: Prometheus text exposition (orchestration/metrics.py says what is in it)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from .. import metrics


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    header = request.headers.get("Authorization", "")
    bearer = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
    if not metrics.authorized(bearer=bearer, user=request.user):
        response = HttpResponse(
            "Metrics need METRICS_TOKEN as a bearer token, or signing in as someone who may view runs.\n",
            status=401 if not request.user.is_authenticated and bearer is None else 403,
            content_type="text/plain; charset=utf-8",
        )
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
