"""A start condition on the record's owner, with run `changed_to_meet`: the save that hands the
record to someone launches; later saves while they still own it do not."""

from __future__ import annotations

import pytest

from orchestration.models import Run
from orchestration.services import definitions_import
from records.services import record_update

pytestmark = pytest.mark.django_db(transaction=True)


def test_changed_to_meet_compares_with_the_owner_before_the_save(demo):
    definitions_import(
        items=[
            (
                "handover.yaml",
                {
                    "kind": "screen_flow",
                    "api_name": "handover_note",
                    "screens": [{"key": "s", "fields": [{"name": "note", "type": "text"}]}],
                },
            ),
            (
                "handover.yaml",
                {
                    "kind": "orchestration",
                    "api_name": "handover",
                    "start": {
                        "type": "record",
                        "record_type": "case",
                        "on": "update",
                        "condition": "record.owner == 'erin'",
                        "run": "changed_to_meet",
                    },
                    "stages": [
                        {
                            "key": "s",
                            "steps": [
                                {
                                    "key": "t",
                                    "kind": "interactive",
                                    "flow": "handover_note",
                                    "assignee": {"expression": "record.owner"},
                                }
                            ],
                        }
                    ],
                },
            ),
        ]
    )
    case = demo.create(
        "case", "C", by=demo.frank, owner=demo.frank, severity="Low", account="A", status="New"
    )
    record_update(record=case, owner=demo.erin, actor=demo.frank)
    record_update(record=case, values={"status": "Investigating"}, actor=demo.erin)
    record_update(record=case, values={"severity": "Medium"}, actor=demo.erin)
    assert Run.objects.filter(orchestration__api_name="handover").count() == 1
