from __future__ import annotations

import pytest

from orchestration.models import RunStatus
from orchestration.services import run_launch
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from workitems.models import WorkItem
from workitems.services import workitem_complete

pytestmark = pytest.mark.django_db(transaction=True)


def test_background_then_interactive(personas):
    load(
        auto_flow("score", outputs={"score": "42"}),
        screen_flow("review"),
        orchestration(
            variables=[{"name": "score", "type": "number"}],
            stages=[
                {
                    "key": "one",
                    "steps": [
                        {"key": "s", "kind": "background", "flow": "score", "outputs": {"score": "score"}}
                    ],
                },
                {
                    "key": "two",
                    "steps": [
                        {"key": "r", "kind": "interactive", "flow": "review", "assignee": {"user": "alice"}}
                    ],
                },
            ],
        ),
    )
    case = make_case()
    run = run_launch(orchestration="proc", record=case)
    run.refresh_from_db()
    assert run.variables["score"] == 42
    assert run.current_stage == "two"
    item = WorkItem.objects.get(run=run)
    workitem_complete(item=item, user=personas.alice, data={"approved": "true", "comment": "ok"})
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.step_outputs["r"] == {"approved": True, "comment": "ok"}
