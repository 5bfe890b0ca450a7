"""Every event name there is: listed once (orchestration/events.py and workitems/events.py), each
in docs/architecture.md's table with the same meaning, and nothing else can be written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestration import events, transitions
from orchestration.models import RunEvent

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def documented() -> dict[str, str]:
    section = DOC.read_text().split("## Events", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z_.]+)` \| (.+) \|$", section, re.M))


def test_the_docs_list_every_event_with_its_meaning_and_no_other() -> None:
    assert documented() == events.EVENTS
    assert "orchestration.step.retry_scheduled" in documented()
    assert {n for n in documented() if n.startswith("workitems.")} >= {
        "workitems.item.reassigned",
        "workitems.item.claimed",
        "workitems.item.released",
    }


def test_every_status_change_of_the_state_machine_has_its_event_listed() -> None:
    for table in (transitions.RUN, transitions.STAGE, transitions.STEP):
        for name in filter(None, table.values()):
            assert f"orchestration.{name}" in events.EVENTS


@pytest.mark.django_db
def test_an_unlisted_event_is_refused_before_it_is_written(personas, settings) -> None:  # type: ignore[no-untyped-def]
    from orchestration.services.common import run_event_add
    from tests.factories import auto_flow, load, make_case, orchestration
    from tests.orchestration.engine_support import bg, launch, stage

    load(auto_flow("noop"), orchestration("p", stages=[stage("s", bg("a", "noop"))]))
    run = launch("p", record=make_case("Case 1"))
    before = RunEvent.objects.filter(run=run).count()
    with pytest.raises(ValueError, match=r"the event 'orchestration\.run\.teleported' is not listed"):
        run_event_add(run=run, name="orchestration.run.teleported", actor_id=None)
    settings.ORCHESTRATION_STRICT_EVENTS = False  # production: logged, never stops the run
    run_event_add(run=run, name="orchestration.run.teleported", actor_id=None)
    assert RunEvent.objects.filter(run=run).count() == before + 1
