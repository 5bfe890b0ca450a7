"""bench/migration.py, small: its data (open runs copied from one launched through the engine)
is what the migration service moves, and what it reports adds up: every run previewed as
movable, migrated batch by batch with an event each, a fixed number of statements per run."""

from __future__ import annotations

from typing import Any

import pytest

from bench import migration as bench
from orchestration.models import Run, StepRun
from orchestration.services import migration

pytestmark = pytest.mark.django_db

RUNS = 25


def test_the_benchmark_moves_every_run_and_counts_its_statements(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(migration, "BATCH", 10)  # three batches: 10, 10 and 5
    bench.setup(RUNS)
    assert Run.objects.filter(version__number=1, status="in_progress").count() == RUNS
    figures = bench.measure()
    assert (figures["runs"], figures["movable"], figures["migrated"], figures["refused"]) == (
        RUNS,
        RUNS,
        RUNS,
        0,
    )
    assert (figures["on_target"], figures["events"]) == (RUNS, RUNS)
    assert figures["preview_batches"] == 3
    # The preview reads each batch in a fixed number of statements (runs, stage runs, step runs),
    # after the ids and the target's document.
    assert figures["preview_statements"] <= 2 + 3 * figures["preview_batches"]
    # The apply: the same statements for each run of a batch.
    full, _, last = figures["apply_statements_per_batch"]
    assert full % 10 == 0 and last == full // 2
    assert set(StepRun.objects.values_list("key", flat=True)) == {"verify"}
    out = capsys.readouterr().out
    assert f"preview: {RUNS} open runs, {RUNS} can move, 0 refused" in out
    assert f"apply: {RUNS} migrated, 0 refused" in out
    assert f"check: {RUNS} runs on v2, {RUNS} orchestration.run.migrated events" in out
