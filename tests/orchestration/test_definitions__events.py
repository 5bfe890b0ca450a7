"""The definitions' audit log: one `definitions.version.activated` event per orchestration
version that becomes active (by import or by activating it), with what it changes against the
version active before; `definitions.flow.activated` for flows; none when nothing is activated."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.models import DefinitionEvent, OrchestrationVersion
from orchestration.services import definitions_import, version_activate
from tests.factories import auto_flow, grant, orchestration

from .engine_support import bg, stage

pytestmark = pytest.mark.django_db

ACTIVATED = "definitions.version.activated"
FLOW_ACTIVATED = "definitions.flow.activated"


def _v1() -> dict[str, Any]:
    return orchestration("proc", stages=[stage("only", bg("b", "noop"))])


def _v2() -> dict[str, Any]:
    return orchestration(
        "proc", stages=[stage("only", bg("b", "noop", max_attempts=5)), stage("more", bg("c", "noop"))]
    )


def _import(*docs: dict[str, Any], actor: Any = None, activate: bool = True) -> Any:
    return definitions_import(
        items=[(f"d{i}.yaml", d) for i, d in enumerate(docs)], actor=actor, activate=activate
    )


def _events(name: str = ACTIVATED) -> list[tuple[int | None, Any, Any]]:
    return [
        (e.version_number, e.payload.get("from"), e.payload.get("to"))
        for e in DefinitionEvent.objects.filter(name=name).order_by("id")
    ]


def _version(number: int) -> OrchestrationVersion:
    return OrchestrationVersion.objects.get(orchestration__api_name="proc", number=number)


def test_each_activation_by_import_writes_one_event_with_the_diff(personas):
    bob = grant(personas.bob, "orchestration.import_definitions")
    _import(auto_flow("noop"), _v1(), actor=bob)
    (first,) = DefinitionEvent.objects.filter(name=ACTIVATED)
    assert (first.orchestration.api_name, first.version_number, first.actor_id) == ("proc", 1, bob.pk)
    assert first.payload == {"from": None, "to": 1}  # nothing was active: nothing to compare with

    _import(auto_flow("noop"), _v1(), actor=bob)  # unchanged and active already
    assert _events() == [(1, None, 1)]

    _import(auto_flow("noop"), _v2(), actor=bob)
    assert _events() == [(1, None, 1), (2, 1, 2)]
    latest = DefinitionEvent.objects.filter(name=ACTIVATED).first()  # newest first
    assert latest is not None and latest.payload["changes"] == {
        "stages": {"added": ["more"], "removed": [], "renamed": []},
        "steps": {"added": ["more/c"], "removed": [], "renamed": [], "moved": []},
        "changed": ["stages[only].steps[b].max_attempts"],
    }


def test_activating_writes_one_event_and_an_active_version_none(personas):
    bob = grant(personas.bob, "orchestration.import_definitions")
    _import(auto_flow("noop"), _v1())
    _import(_v2(), activate=False)  # imported, not activated: no event
    assert _events() == [(1, None, 1)]

    version_activate(version=_version(2), actor=bob)
    version_activate(version=_version(2), actor=bob)  # active already
    assert _events() == [(1, None, 1), (2, 1, 2)]
    assert DefinitionEvent.objects.filter(name=ACTIVATED).first().actor_id == bob.pk  # type: ignore[union-attr]

    # Back to v1: the diff runs the other way.
    version_activate(version=_version(1), actor=bob)
    assert _events() == [(1, None, 1), (2, 1, 2), (1, 2, 1)]
    back = DefinitionEvent.objects.filter(name=ACTIVATED).first()
    assert back is not None and back.payload["changes"]["stages"]["removed"] == ["more"]

    # Importing the latest document again re-activates it: one more event.
    _import(_v2())
    assert _events()[-1] == (2, 1, 2)
    assert len(_events()) == 4


def test_flows_get_their_own_event_without_a_diff(personas):
    _import(auto_flow("noop"), auto_flow("other"))
    assert sorted(_events(FLOW_ACTIVATED)) == [(1, None, 1), (1, None, 1)]
    _import(auto_flow("noop"))  # unchanged
    assert len(_events(FLOW_ACTIVATED)) == 2
    _import(auto_flow("noop", outputs={"done": "false"}))
    event = DefinitionEvent.objects.filter(name=FLOW_ACTIVATED).first()
    assert event is not None and event.flow is not None and event.flow.api_name == "noop"
    assert (event.version_number, event.payload) == (2, {"from": 1, "to": 2})
    assert event.orchestration_id is None


def test_a_refused_activation_writes_nothing(personas):
    _import(auto_flow("noop"), _v1())
    _import(_v2(), activate=False)
    with pytest.raises(Exception, match="import_definitions"):
        version_activate(version=_version(2), actor=personas.alice)
    assert _events() == [(1, None, 1)]
