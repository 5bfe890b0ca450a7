"""Work item gauges for /metrics (registered in apps.py; orchestration/metrics.py reads them)."""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import WorkItem, WorkItemStatus


def work_items() -> Iterator[Metric]:
    open_items = WorkItem.objects.filter(status=WorkItemStatus.ASSIGNED)
    family = GaugeMetricFamily(
        "workitems_open", "Open (assigned) work items, and those past their due date.", labels=["due"]
    )
    # Both read the partial indexes on open items (wi_open_id, wi_open_due).
    total = open_items.count()
    overdue = open_items.filter(due_at__lt=timezone.now()).count()
    family.add_metric(["any"], total)
    family.add_metric(["overdue"], overdue)
    yield family
