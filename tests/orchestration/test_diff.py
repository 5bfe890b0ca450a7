"""The structural diff of two orchestration documents and the YAML line diff
(orchestration/diff.py), on documents alone: no database."""

from __future__ import annotations

import copy
from typing import Any

from orchestration.diff import orchestration_diff, summary_text, yaml_diff
from tests.factories import orchestration

from .engine_support import bg, stage, task


def _base() -> dict[str, Any]:
    return orchestration(
        "loan",
        stages=[
            stage("intake", task("check", label="Check the file"), bg("score", "scoring")),
            stage("review", task("approve", label="Approve"), task("sign", label="Sign")),
            stage("payout", bg("pay", "payment")),
        ],
        variables=[{"name": "total", "type": "number"}],
    )


def _paths(diff: Any, kind: str = "changed") -> list[str]:
    return [c.path for c in diff.changes if c.kind == kind]


def test_the_same_document_has_no_changes_even_with_defaults_written_out():
    old = _base()
    new = copy.deepcopy(old)
    new["stages"][0]["steps"][1]["max_attempts"] = 3  # the default, written out
    new["stages"][0]["exit"] = {}
    diff = orchestration_diff(old, new)
    assert diff.is_empty and diff.changes == []
    assert summary_text(diff.summary()) == "no changes"


def test_stages_added_removed_and_changed_properties():
    old = _base()
    new = copy.deepcopy(old)
    new["stages"].pop(2)  # payout removed
    new["stages"].append(stage("archive", bg("store", "archiver")))
    new["stages"][0]["fault_path"] = "review"
    new["stages"][1]["next"] = {"outcomes": [{"when": "vars.total > 5", "goto": "archive"}], "default": "end"}
    new["stages"][1]["exit"] = {"condition": "vars.total > 0"}
    diff = orchestration_diff(old, new)
    assert diff.stages_added == ["archive"]
    assert diff.stages_removed == ["payout"]
    assert diff.stages_renamed == []
    assert diff.steps_added == [("archive", "store")]
    assert diff.steps_removed == [("payout", "pay")]
    changed = {c.path: (c.old, c.new) for c in diff.changes if c.kind == "changed"}
    assert changed["stages[intake].fault_path"] == (None, "review")
    assert changed["stages[review].exit.condition"] == (None, "vars.total > 0")
    # A decision instead of the following stage: the whole `next`, old and new.
    assert changed["stages[review].next"] == (
        None,
        {"outcomes": [{"label": "", "when": "vars.total > 5", "goto": "archive"}], "default": "end"},
    )


def test_a_stage_with_a_new_key_and_mostly_the_same_steps_is_a_rename():
    old = _base()
    new = copy.deepcopy(old)
    new["stages"][1]["key"] = "approval"
    new["stages"][1]["label"] = "Approval"
    new["stages"][1]["steps"].append(task("witness"))  # 2 of 3 step keys shared: still a rename
    diff = orchestration_diff(old, new)
    assert diff.stages_renamed == [("review", "approval")]
    assert diff.stages_added == [] and diff.stages_removed == []
    assert diff.steps_added == [("approval", "witness")]
    assert diff.steps_moved == []  # approve and sign stay in the (renamed) stage
    assert _paths(diff) == ["stages[approval].label"]
    assert diff.summary()["stages"]["renamed"] == [["review", "approval"]]


def test_a_new_key_with_other_steps_is_a_removed_and_an_added_stage():
    old = _base()
    new = copy.deepcopy(old)
    new["stages"][2] = stage("settle", bg("transfer", "payment"), bg("notify", "mailer"))
    diff = orchestration_diff(old, new)
    assert diff.stages_renamed == []
    assert (diff.stages_added, diff.stages_removed) == (["settle"], ["payout"])
    # `pay` and `transfer` do the same thing, but in stages that are not the same one.
    assert diff.steps_renamed == []


def test_steps_renamed_moved_and_every_changed_field():
    old = _base()
    new = copy.deepcopy(old)
    intake, review = new["stages"][0], new["stages"][1]
    intake["steps"][0]["key"] = "verify"  # same kind, flow and label: renamed
    intake["steps"][0]["assignee"] = {"group": "support"}
    sign = review["steps"].pop(1)
    intake["steps"].append(sign)  # moved from review to intake
    review["steps"][0]["start"] = {"condition": "vars.total > 1"}
    review["steps"][0]["sla"] = {"due": "2d"}
    intake["steps"][1]["max_attempts"] = 5
    diff = orchestration_diff(old, new)
    assert diff.steps_renamed == [("intake", "check", "verify")]
    assert diff.steps_moved == [("sign", "review", "intake")]
    assert (diff.steps_added, diff.steps_removed) == ([], [])
    changed = {c.path: (c.old, c.new) for c in diff.changes if c.kind == "changed"}
    assert changed["stages[intake].steps[verify].assignee.user"] == ("alice", None)
    assert changed["stages[intake].steps[verify].assignee.group"] == (None, "support")
    assert changed["stages[intake].steps[score].max_attempts"] == (3, 5)
    assert changed["stages[review].steps[approve].start.condition"] == (None, "vars.total > 1")
    assert changed["stages[review].steps[approve].sla"][1]["due"] == "2d"
    summary = diff.summary()
    assert summary["steps"] == {
        "added": [],
        "removed": [],
        "renamed": [["intake/check", "intake/verify"]],
        "moved": [["sign", "review", "intake"]],
    }
    assert "stages[intake].steps[score].max_attempts" in summary["changed"]
    assert summary_text(summary).startswith(
        "steps renamed intake/check→intake/verify; steps moved sign review→intake"
    )


def test_settings_start_and_variables_by_name():
    old = _base()
    new = copy.deepcopy(old)
    new["label"] = "Loans"
    new["start"] = {"type": "record", "record_type": "case", "on": "create"}
    new["variables"] = [{"name": "total", "type": "decimal"}, {"name": "note"}]
    diff = orchestration_diff(old, new)
    groups = {g.element: g for g in diff.groups()}
    assert [g.title for g in diff.groups()][:3] == ["Settings", "Start", "Variables"]
    assert [(c.path, c.old, c.new) for c in groups["settings"].changes] == [("label", "", "Loans")]
    # Another type of start is compared whole.
    (start,) = groups["start"].changes
    assert start.path == "start" and start.old["type"] == "autolaunched" and start.new["on"] == "create"
    variables = [(c.kind, c.path) for c in groups["variables"].changes]
    assert variables == [("changed", "variables[total].type"), ("added", "variables[note]")]


def test_the_yaml_diff_marks_added_and_removed_lines():
    lines = yaml_diff("a: 1\nb: 2\nc: 3\n", "a: 1\nb: 20\nc: 3\nd: 4\n", old_name="v1", new_name="v2")
    assert [(line.kind, line.text) for line in lines] == [
        ("file", "--- v1"),
        ("file", "+++ v2"),
        ("hunk", "@@ -1,3 +1,4 @@"),
        ("same", "a: 1"),
        ("del", "b: 2"),
        ("add", "b: 20"),
        ("same", "c: 3"),
        ("add", "d: 4"),
    ]
    assert yaml_diff("a: 1\n", "a: 1\n", old_name="v1", new_name="v2") == []
