"""Management commands: schema, validate, import, export (round-trip), launch, API tokens."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from orchestration.models import (
    ApiToken,
    Flow,
    FlowVersion,
    Orchestration,
    OrchestrationVersion,
    Run,
    RunStatus,
)
from orchestration.services import definitions_export
from tests.factories import auto_flow, eval_flow, load, make_case, orchestration, screen_flow


def run(*args: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: Any) -> tuple[str, str]:
    """Run a command that must fail; return its message and what it printed to stderr."""
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(*args, stdout=io.StringIO(), stderr=err)
    assert exc.value.returncode == 1  # what `manage.py` exits with
    return str(exc.value), err.getvalue()


def write_yaml(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def review_process(api_name: str = "review_process", flow: str = "review") -> dict[str, Any]:
    return orchestration(
        api_name,
        stages=[
            {
                "key": "one",
                "steps": [{"key": "r", "kind": "interactive", "flow": flow, "assignee": {"user": "alice"}}],
            }
        ],
    )


# --- orchestration_schema ---------------------------------------------------------------------


def test_schema_to_stdout_and_file(tmp_path):
    out, _ = run("orchestration_schema")
    schema = json.loads(out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "orchestration" in json.dumps(schema)
    target = tmp_path / "schema.json"
    run("orchestration_schema", "--output", str(target))
    assert json.loads(target.read_text()) == schema


def test_schema_to_an_unwritable_place_fails_clearly(tmp_path):
    message, _ = fails("orchestration_schema", "--output", str(tmp_path / "missing" / "dir" / "s.json"))
    assert "cannot write" in message


# --- validate_definitions ---------------------------------------------------------------------


def test_validate_ok_with_folders_multi_document_yaml_and_json(personas, tmp_path):
    folder = tmp_path / "defs"
    folder.mkdir()
    write_yaml(folder / "flows.yaml", screen_flow("review"), auto_flow("score"))
    (folder / "process.json").write_text(json.dumps(review_process()))
    (folder / "notes.txt").write_text("not a definition")
    out, err = run("validate_definitions", str(folder))
    assert "3 documents valid" in out
    assert err == ""
    assert not Flow.objects.exists()  # validating stores nothing


def test_validate_uses_flows_already_stored(personas, tmp_path):
    load(screen_flow("review"))
    out, _ = run("validate_definitions", str(write_yaml(tmp_path / "p.yaml", review_process())))
    assert "1 documents valid" in out


def test_validate_reports_every_error_with_file_and_path(personas, tmp_path):
    bad = review_process(flow="missing_flow")
    bad["stages"][0]["steps"][0]["assignee"] = {"user": "nobody"}
    bad_file = write_yaml(tmp_path / "bad.yaml", screen_flow("review"), bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: orchestration\n  api_name: [oops\n")
    message, err = fails("validate_definitions", str(bad_file), str(broken))
    assert "3 error(s)" in message
    assert f"{bad_file}: stages[0].steps[0].flow: unknown flow 'missing_flow'" in err
    assert f"{bad_file}: stages[0].steps[0].assignee.user:" in err
    assert f"{broken}: (document): cannot parse" in err


def test_validate_a_path_that_does_not_exist(db, tmp_path):
    _, err = fails("validate_definitions", str(tmp_path / "nope.yaml"))
    assert "nope.yaml: (document): cannot read" in err


# --- import_definitions -----------------------------------------------------------------------


def test_import_creates_versions_and_skips_unchanged(personas, tmp_path):
    path = write_yaml(tmp_path / "defs.yaml", screen_flow("review"), review_process())
    out, _ = run("import_definitions", str(path))
    assert "created screen_flow review v1" in out
    assert "created orchestration review_process v1" in out
    assert OrchestrationVersion.objects.get().is_active
    out, _ = run("import_definitions", str(path))
    assert "0 created, 2 unchanged" in out
    assert FlowVersion.objects.count() == 1


def test_import_no_activate_keeps_the_active_version(personas, tmp_path):
    path = write_yaml(tmp_path / "p.yaml", screen_flow("review"), review_process())
    run("import_definitions", str(path))
    changed = review_process()
    changed["label"] = "Review, second edition"
    write_yaml(path, screen_flow("review"), changed)
    out, _ = run("import_definitions", "--no-activate", str(path))
    assert "created orchestration review_process v2 (not activated)" in out
    versions = dict(OrchestrationVersion.objects.values_list("number", "is_active"))
    assert versions == {1: True, 2: False}


def test_import_invalid_stores_nothing(personas, tmp_path):
    good = write_yaml(tmp_path / "a_good.yaml", screen_flow("review"))
    bad = write_yaml(tmp_path / "b_bad.yaml", review_process(flow="missing"))
    message, err = fails("import_definitions", str(good), str(bad))
    assert "nothing was imported" in message
    assert f"{bad}: stages[0].steps[0].flow: unknown flow 'missing'" in err
    assert not Flow.objects.exists()
    assert not Orchestration.objects.exists()


def _padded(path: Path, size: int) -> Path:
    """A valid definitions file of about `size` bytes (a comment pads it)."""
    text = yaml.safe_dump_all([screen_flow("review"), review_process()], sort_keys=False)
    path.write_text(text + "#" * max(0, size - len(text) - 1) + "\n")
    return path


@pytest.mark.parametrize("command", ["validate_definitions", "import_definitions"])
def test_the_commands_refuse_a_file_over_the_upload_pages_limit(personas, tmp_path, command):
    big = _padded(tmp_path / "huge.yaml", 5 * 1024 * 1024)
    message, err = fails(command, str(big))
    assert "error(s)" in message
    assert f"{big}: (document): the file is 5 MB, larger than the 1 MB limit" in err
    assert "(ORCHESTRATION_DEFINITION_MAX_BYTES)" in err
    assert not Flow.objects.exists() and not Orchestration.objects.exists()


def test_the_limit_is_a_setting_shared_with_the_upload_page(personas, tmp_path, settings, client):
    settings.ORCHESTRATION_DEFINITION_MAX_BYTES = 4096
    small, large = _padded(tmp_path / "a.yaml", 3000), _padded(tmp_path / "b.yaml", 6000)
    out, _ = run("validate_definitions", str(small))
    assert "2 documents valid" in out
    _message, err = fails("import_definitions", str(large))
    assert "the file is 5.9 KB, larger than the 4 KB limit" in err
    assert not Flow.objects.exists()
    # The upload page says the same limit and refuses the same file.
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(personas.admin)
    page = client.get("/monitor/orchestrations/upload/").content.decode()
    assert "up to 4 KB" in page
    response = client.post(
        "/monitor/orchestrations/upload/", {"file": SimpleUploadedFile("b.yaml", large.read_bytes())}
    )
    assert "The file is larger than 4 KB." in response.content.decode()
    assert not Flow.objects.exists()


def test_a_tab_in_the_yaml_is_reported_with_the_file_name_and_what_to_do(db, tmp_path):
    path = tmp_path / "tabbed.yaml"
    path.write_text("kind: screen_flow\napi_name: x\nscreens:\n\t- key: a\n")
    _message, err = fails("validate_definitions", str(path))
    assert "<unicode string>" not in err
    assert f'in "{path}", line 4, column 1' in err
    assert "YAML indents with spaces only: replace the tab with spaces" in err


def test_manage_py_help_lists_launch_orchestration_with_the_other_orchestration_commands():
    from django.core.management import get_commands

    assert get_commands()["launch_orchestration"] == "orchestration"
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["manage.py", "help"])
    section = utility.main_help_text().split("[orchestration]", 1)[1].split("[", 1)[0]
    assert "launch_orchestration" in section and "import_definitions" in section
    records = utility.main_help_text().split("[records]", 1)[1].split("[", 1)[0]
    assert "launch_orchestration" not in records and "import_record_types" in records


def test_sending_a_task_on_the_default_broker_logs_no_hostname_warning(caplog):
    from django.conf import settings as django_settings

    from config.celery import app

    assert django_settings.CELERY_BROKER_URL.startswith("filesystem://localhost") or (
        django_settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    )
    with caplog.at_level("WARNING", logger="kombu.connection"), app.connection_for_write() as connection:
        connection.info()
    assert not [r for r in caplog.records if "No hostname was supplied" in r.getMessage()]


# --- export_definitions -----------------------------------------------------------------------


def rich_definitions() -> list[dict[str, Any]]:
    """Definitions using most of the format, so the round-trip covers it."""
    http = {
        "type": "http",
        "method": "POST",
        "url": "'https://example.com/hook'",
        "json": {"id": "record.id"},
        "timeout": 10,
        "output": "response",
    }
    return [
        screen_flow("review", inputs=[{"name": "hint", "type": "text", "default": "'check it'"}]),
        auto_flow("notify", outputs={"response": "none"}, actions=[http]),
        eval_flow("is_big", "record.amount is not none and record.amount > 1000"),
        orchestration(
            "rich",
            variables=[{"name": "score", "type": "number", "default": "0"}],
            stages=[
                {
                    "key": "triage",
                    "label": "Triage",
                    "steps": [
                        {
                            "key": "look",
                            "kind": "interactive",
                            "flow": "review",
                            "inputs": {"hint": "'look closely'"},
                            "assignee": {"expression": "'queue:triage'"},
                            "email": {"subject": "Review {{ record.name }}"},
                            "due_in_hours": 24,
                        },
                        {
                            "key": "ping",
                            "kind": "background",
                            "flow": "notify",
                            "start": {"after": ["look"]},
                            "max_attempts": 5,
                        },
                    ],
                    "exit": {"evaluation_flow": "is_big"},
                    "next": {
                        "outcomes": [{"label": "Big", "when": "vars.score > 10", "goto": "approve"}],
                        "default": "end",
                    },
                    "fault_path": "approve",
                },
                {
                    "key": "approve",
                    "steps": [
                        {
                            "key": "ok",
                            "kind": "interactive",
                            "flow": "review",
                            "assignee": {"group": "support"},
                        }
                    ],
                    "next": "end",
                },
            ],
        ),
    ]


def test_export_then_import_creates_nothing_new(personas, tmp_path):
    load(*rich_definitions())
    out, _ = run("export_definitions", "--output", str(tmp_path / "out"))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["is_big.yaml", "notify.yaml", "review.yaml", "rich.yaml"]
    assert "4 definitions exported" in out
    rich = (tmp_path / "out" / "rich.yaml").read_text()
    assert rich.startswith("kind: orchestration\napi_name: rich\n")
    # Defaults are left out: the file reads like something a person wrote.
    assert "max_attempts: 5" in rich and "max_attempts: 3" not in rich
    before = (OrchestrationVersion.objects.count(), FlowVersion.objects.count())
    out, _ = run("import_definitions", str(tmp_path / "out"))
    assert "0 created, 4 unchanged" in out
    assert (OrchestrationVersion.objects.count(), FlowVersion.objects.count()) == before


def test_export_to_stdout_by_name_and_unknown_names(personas):
    load(*rich_definitions())
    out, _ = run("export_definitions", "rich", "review")
    docs = list(yaml.safe_load_all(out))
    assert [(d["kind"], d["api_name"]) for d in docs] == [
        ("screen_flow", "review"),
        ("orchestration", "rich"),
    ]
    message, _ = fails("export_definitions", "rich", "ghost")
    assert "ghost" in message and "rich" not in message


def test_export_keeps_a_flow_and_an_orchestration_of_the_same_name_apart(personas, tmp_path):
    load(screen_flow("review"), review_process(api_name="review"))
    run("export_definitions", "--output", str(tmp_path))
    docs = list(yaml.safe_load_all((tmp_path / "review.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["screen_flow", "orchestration"]
    out, _ = run("import_definitions", str(tmp_path))
    assert "0 created, 2 unchanged" in out


def test_export_service_round_trips_the_stored_documents(personas):
    load(*rich_definitions())
    from orchestration.services import definitions_import

    report = definitions_import(items=[(f"{n}.yaml", d) for n, d in definitions_export()])
    assert report.created == []


def test_export_with_nothing_active_fails(db):
    message, _ = fails("export_definitions")
    assert "nothing to export" in message


# --- launch_orchestration ---------------------------------------------------------------------

EXPENSE = orchestration(
    "expense",
    start={
        "type": "autolaunched",
        "inputs": [
            {"name": "amount", "type": "number", "required": True},
            {"name": "urgent", "type": "boolean"},
            {"name": "tags", "type": "multi_choice"},
            {"name": "spent_on", "type": "date"},
        ],
    },
    stages=[{"key": "book", "steps": [{"key": "b", "kind": "background", "flow": "score"}]}],
)


@pytest.mark.django_db(transaction=True)
def test_launch_with_typed_inputs(personas):
    load(auto_flow("score"), EXPENSE)
    out, _ = run(
        "launch_orchestration",
        "expense",
        "--input",
        "amount=42",
        "--input",
        "urgent=yes",
        "--input",
        'tags=["travel", "food"]',
        "--input",
        "spent_on=2026-03-01",
    )
    launched = Run.objects.get()
    assert out.strip() == f"run {launched.pk}: completed"
    assert launched.inputs == {
        "amount": 42,
        "urgent": True,
        "tags": ["travel", "food"],
        "spent_on": "2026-03-01",
    }
    assert launched.started_by is None


@pytest.mark.django_db(transaction=True)
def test_launch_on_a_record_as_a_user(personas):
    load(auto_flow("score"), screen_flow("review"), review_process())
    case = make_case("Case 9")
    out, _ = run("launch_orchestration", "review_process", "--record", str(case.pk), "--as", "admin")
    launched = Run.objects.get()
    assert out.strip() == f"run {launched.pk}: in_progress, stage one"
    assert launched.record_id == case.pk
    assert launched.started_by == personas.admin


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["expense", "--input", "amount=lots"], "cannot launch: amount: expected a value of type number"),
        (["expense"], "cannot launch: amount: this input is required"),
        (
            ["expense", "--input", "amount=1", "--input", "colour=red"],
            "'colour' is not an input of 'expense'",
        ),
        (["expense", "--input", "amount"], "write it as key=value"),
        (["expense", "--input", "tags=[oops"], "tags: not valid JSON"),
        (["ghost"], "cannot launch: orchestration 'ghost' does not exist"),
        (["review_process"], "runs on a case record: give one"),
        (["review_process", "--record", "424242"], "no record with id 424242"),
        (["review_process", "--record", "99999999999999999999999"], "no record with id"),
        (["expense", "--input", "amount=1", "--as", "nobody"], "no user 'nobody'"),
        (
            ["expense", "--input", "amount=1", "--as", "alice"],
            "cannot launch as alice: you need the permission",
        ),
    ],
)
def test_launch_errors(personas, args, fragment):
    load(auto_flow("score"), screen_flow("review"), EXPENSE, review_process())
    message, _ = fails("launch_orchestration", *args)
    assert fragment in message
    assert not Run.objects.exists()


# --- create_api_token -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_create_api_token_then_use_it(personas):
    load(auto_flow("score"), EXPENSE)
    out, err = run("create_api_token", "admin", "--name", "ci")
    raw = out.strip()
    assert raw.startswith("fo_")
    assert "shown once" in err
    token = ApiToken.objects.get()
    assert (token.name, token.user) == ("ci", personas.admin)
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {token.name, token.digest}
    response = Client().post(
        "/api/orchestrations/expense/runs",
        {"inputs": {"amount": 7}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 201
    assert response.json()["started_by"] == "admin"
    assert Run.objects.get().status == RunStatus.COMPLETED


def test_create_api_token_for_unknown_or_inactive_users(personas):
    message, _ = fails("create_api_token", "nobody")
    assert "no user 'nobody'" in message
    personas.bob.is_active = False
    personas.bob.save()
    message, _ = fails("create_api_token", "bob")
    assert "inactive" in message
    assert not ApiToken.objects.exists()
