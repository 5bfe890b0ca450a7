"""Runs by id and the list of orchestrations (the API, every page), API tokens of a user."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import (
    Prefetch,
    QuerySet,
)

from ..models import (
    ApiToken,
    Orchestration,
    OrchestrationVersion,
    Run,
    StageRun,
    StepRun,
)

# Ids come from URLs and query strings: anything beyond a bigint cannot exist, and PostgreSQL
# would reject it with an error instead of "no such row".
MAX_ID = 2**63 - 1
MAX_RUN_PAGE = 200


def _runs() -> QuerySet[Run]:
    return Run.objects.select_related("orchestration", "version", "record_type", "started_by")


def run_detail(run_id: int) -> Run | None:
    """A run with its stage runs and their step runs (three queries), or None."""
    if not 0 < run_id <= MAX_ID:
        return None
    steps = Prefetch("step_runs", queryset=StepRun.objects.order_by("id"))
    stages = Prefetch("stage_runs", queryset=StageRun.objects.order_by("id").prefetch_related(steps))
    return _runs().prefetch_related(stages).filter(pk=run_id).first()


def run_list(
    *,
    orchestration: str | None = None,
    status: str | None = None,
    record_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> tuple[list[Run], bool]:
    """Runs, newest first, filtered; keyset-paginated on id (pass the last id seen as
    `after_id`). Returns the page and whether more runs follow. One query."""
    qs = _runs().order_by("-id")
    if orchestration:
        qs = qs.filter(orchestration__api_name=orchestration)
    if status:
        qs = qs.filter(status=status)
    if record_id is not None:
        qs = qs.filter(record_id=record_id)
    if after_id is not None:
        qs = qs.filter(id__lt=after_id)
    limit = max(1, min(limit, MAX_RUN_PAGE))
    # One row more than asked says whether there is a next page without a COUNT.
    rows = list(qs[: limit + 1])
    return rows[:limit], len(rows) > limit


def orchestration_list() -> list[Orchestration]:
    """Orchestrations with `active_versions` (a list of zero or one version). Two queries."""
    active = Prefetch(
        "versions", queryset=OrchestrationVersion.objects.filter(is_active=True), to_attr="active_versions"
    )
    return list(Orchestration.objects.order_by("api_name").prefetch_related(active))


def active_version(api_name: str) -> OrchestrationVersion | None:
    return (
        OrchestrationVersion.objects.select_related("orchestration")
        .filter(orchestration__api_name=api_name, is_active=True)
        .first()
    )


def api_tokens_of(user: Any) -> QuerySet[ApiToken]:
    """A user's API tokens, newest first: active, expired and revoked alike."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


def stage_labels(version_ids: Iterable[int]) -> dict[tuple[int, str], str]:
    """{(version id, stage key): the stage's label (its key when it has none)} for these
    versions: one query (none for no versions); the documents are parsed once per process
    (engine.orchestration_doc). The runs page, My Work and the Work Items page use it."""
    from .. import engine

    wanted = set(version_ids)
    labels: dict[tuple[int, str], str] = {}
    if not wanted:
        return labels
    for version in OrchestrationVersion.objects.filter(pk__in=wanted).only("pk", "checksum", "document"):
        for stage in engine.orchestration_doc(version).stages:
            labels[(version.pk, stage.key)] = stage.label or stage.key
    return labels
