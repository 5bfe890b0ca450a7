"""Small readers shared by the demo scenario tests."""

from __future__ import annotations

from orchestration.models import Run, StageRun
from records.models import Record
from workitems.models import WorkItem, WorkItemStatus


def open_items(run: Run) -> dict[str, WorkItem]:
    """The run's open work items by step key."""
    items = WorkItem.objects.filter(run=run, status=WorkItemStatus.ASSIGNED).select_related(
        "step_run", "assignee_user", "assignee_group", "assignee_queue"
    )
    return {i.step_run.key: i for i in items}


def stage_path(run: Run) -> list[tuple[str, str]]:
    """(stage key, status) of every stage the run entered, in order."""
    return list(StageRun.objects.filter(run=run).order_by("id").values_list("key", "status"))


def run_of(record: Record, orchestration: str) -> Run:
    return Run.objects.get(orchestration__api_name=orchestration, record_id=record.pk)
