"""The `update_record` flow action applies once per idempotency key: a step re-run after a
crash (its update committed, its result not) writes no second history entry and launches the
record-triggered orchestrations once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orchestration.models import Run
from orchestration.registry import FlowContext
from records.integration import update_record_action
from records.models import FieldChange
from records.services import record_update
from tests.factories import auto_flow, case_type, load, make_case, orchestration

pytestmark = pytest.mark.django_db(transaction=True)


class Action:
    values = {"amount": "record.amount + 1", "status": "'charged'"}


def context(record_id: int, amount: Decimal, key: str) -> FlowContext:
    return FlowContext(
        run_id=None,
        step_key="bill",
        record_model="records.record",
        record_id=record_id,
        record={"amount": amount},  # what the flow saw when it started: before the update
        inputs={},
        vars={},
        steps={},
        outputs={},
        idempotency_key=key,
    )


def watched() -> None:
    case_type()
    load(
        auto_flow("noop"),
        orchestration(
            "watch",
            start={"type": "record", "record_type": "case", "on": "update"},
            stages=[{"key": "w", "steps": [{"key": "x", "kind": "background", "flow": "noop"}]}],
        ),
    )


def test_the_same_action_run_again_changes_nothing(personas):
    watched()
    case = make_case("Case", amount="10")
    for _ in range(2):  # the killed attempt, then the retry: both saw amount 10
        update_record_action(Action(), context(case.pk, Decimal("10"), "step:7"))
    case.refresh_from_db()
    assert Decimal(str(case.data["amount"])) == Decimal("11")
    history = FieldChange.objects.filter(record=case).exclude(field="severity").order_by("field")
    assert list(history.values_list("field", "effect_key")) == [
        ("amount", "step:7:a0"),
        ("status", "step:7:a0"),
    ]
    assert Run.objects.filter(orchestration__api_name="watch").count() == 1


def test_another_step_run_or_action_is_another_update(personas):
    watched()
    case = make_case("Case", amount="10")
    update_record_action(Action(), context(case.pk, Decimal("10"), "step:7"))
    update_record_action(Action(), context(case.pk, Decimal("11"), "step:8"))
    case.refresh_from_db()
    assert Decimal(str(case.data["amount"])) == Decimal("12")
    assert FieldChange.objects.filter(record=case, field="amount").count() == 2
    assert Run.objects.filter(orchestration__api_name="watch").count() == 2


def test_a_person_editing_is_not_keyed(personas):
    case = make_case("Case", amount="10")
    record_update(record=case, values={"amount": "11"})
    record_update(record=case, values={"amount": "12"})
    assert list(
        FieldChange.objects.filter(record=case, field="amount").values_list("effect_key", flat=True)
    ) == [
        "",
        "",
    ]
