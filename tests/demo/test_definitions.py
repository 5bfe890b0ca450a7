from __future__ import annotations

import pytest

from demo.services import DEFINITIONS_DIR, DemoReport, demo_people_ensure, demo_record_types_ensure
from orchestration.validation import load_paths, load_text, validate_documents

pytestmark = pytest.mark.django_db(transaction=True)

FILES = sorted(DEFINITIONS_DIR.glob("*.yaml"))


@pytest.fixture
def people_and_types():
    # Validation checks that named users, groups, queues and record types exist.
    report = DemoReport()
    demo_people_ensure(report=report)
    demo_record_types_ensure(report=report)


def test_there_is_one_file_per_orchestration():
    assert [f.stem for f in FILES] == [
        "case_escalation",
        "customer_follow_up",
        "employee_onboarding",
        "loan_approval",
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_demo_file_validates_on_its_own(path, people_and_types):
    items, errors = load_paths([path])
    assert errors == []
    result = validate_documents(items)
    assert [str(e) for e in result.errors] == []
    kinds = [p.doc.kind for p in result.documents]
    assert kinds[-1] == "orchestration" and kinds.count("orchestration") == 1


def test_a_demo_file_with_a_mistake_names_the_file_and_the_path(people_and_types):
    path = DEFINITIONS_DIR / "loan_approval.yaml"
    text = path.read_text().replace("assignee: {user: henry}", "assignee: {user: nobody}")
    items, _ = load_text(text, "loan_approval.yaml")
    result = validate_documents([("loan_approval.yaml", d) for d in items])
    assert [str(e) for e in result.errors] == [
        "loan_approval.yaml: stages[1].steps[0].assignee.user: no user 'nobody'"
    ]


def test_on_is_a_key_not_a_boolean():
    # YAML 1.1 would read `on:` as True; definitions are read as YAML 1.2.
    docs, errors = load_text(
        "start: {type: record, record_type: case, on: update}\nflag: yes\nok: true", "x.yaml"
    )
    assert errors == []
    assert docs == [
        {"start": {"type": "record", "record_type": "case", "on": "update"}, "flag": "yes", "ok": True}
    ]
