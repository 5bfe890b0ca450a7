"""The stage path of runs on the record page: every stage in order, done / current / to come,
the current one's steps with who holds them; three queries whatever the number of runs."""

from __future__ import annotations

import pytest

from orchestration.models import Run
from orchestration.selectors import stage_paths
from orchestration.services import run_cancel
from tests.factories import load, make_case, orchestration, screen_flow
from workitems.services import workitem_claim, workitem_complete

from .engine_support import launch, open_item, stage, task

pytestmark = pytest.mark.django_db


def _define() -> None:
    load(
        screen_flow("review"),
        orchestration(
            stages=[
                stage("intake", task("check", label="Check the facts"), label="Intake"),
                stage(
                    "review",
                    task("legal", label="Legal review", assignee={"group": "engineering"}),
                    task("money", label="Money"),
                    label="Review",
                ),
                stage("close", task("file"), label="Close"),
            ]
        ),
    )


def _path(run: Run) -> list[tuple[str, str]]:
    return [
        (s.label, s.state)
        for s in stage_paths([Run.objects.select_related("version").get(pk=run.pk)])[run.pk]
    ]


def test_the_path_shows_done_current_and_to_come_with_the_current_steps_and_holders(personas):
    _define()
    run = launch(record=make_case())
    assert _path(run) == [("Intake", "current"), ("Review", "to_come"), ("Close", "to_come")]
    workitem_complete(item=open_item(run, "check"), user=personas.alice, data={})
    workitem_claim(item=open_item(run, "legal"), user=personas.alice)
    [path] = stage_paths([Run.objects.select_related("version").get(pk=run.pk)]).values()
    assert [(s.label, s.state, s.state_label) for s in path] == [
        ("Intake", "done", "Done"),
        ("Review", "current", "Current"),
        ("Close", "to_come", "To come"),
    ]
    assert [(s.label, s.status_label, s.holder) for s in path[1].steps] == [
        ("Legal review", "In progress", "group engineering (held by alice)"),
        ("Money", "In progress", "alice"),
    ]
    assert path[0].steps == [] and path[2].steps == []


def test_a_canceled_run_shows_where_it_stopped_and_what_it_never_reached(personas):
    _define()
    run = launch(record=make_case())
    run_cancel(run_id=run.pk, actor=personas.admin)
    assert _path(run) == [("Intake", "canceled"), ("Review", "not_reached"), ("Close", "not_reached")]


def test_three_queries_for_any_number_of_runs(personas, django_assert_num_queries):
    _define()
    case = make_case()
    for _ in range(3):
        launch(record=case)
    runs = list(Run.objects.select_related("version"))
    with django_assert_num_queries(3):  # stage runs, the current stages' step runs, their holders
        assert len(stage_paths(runs)) == 3
    for _ in range(12):
        launch(record=case)
    runs = list(Run.objects.select_related("version"))
    with django_assert_num_queries(3):
        paths = stage_paths(runs)
    assert len(paths) == 15 and all(p[0].state == "current" for p in paths.values())


def test_the_record_page_lists_the_current_steps_only_to_those_who_monitor_runs(client, personas):
    """The stages are the definition's; the steps name other people's work and who holds it."""
    from tests.factories import RECORD_PERMS, grant

    _define()
    case = make_case()
    run = launch(record=case)
    workitem_complete(item=open_item(run, "check"), user=personas.alice, data={})
    grant(personas.bob, *RECORD_PERMS)
    client.force_login(personas.bob)
    html = client.get(f"/records/case/{case.pk}/").content.decode()
    assert f'aria-label="Stages of run {run.pk}"' in html and "Review" in html
    assert "Steps of Review" not in html and "Legal review" not in html
    grant(personas.bob, "orchestration.view_run")
    html = client.get(f"/records/case/{case.pk}/").content.decode()
    assert "Legal review" in html and "Money" in html
