"""The run detail page runs a fixed number of queries, whatever the number of stages, steps,
work items and events of the run (events are capped at the latest RUN_DETAIL_EVENTS)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orchestration.models import RunEvent
from orchestration.services import PERM_CHANGE_VARIABLES
from tests.factories import UserFactory, auto_flow, grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, launch, stage, task

pytestmark = pytest.mark.django_db(transaction=True)

# session, user, the viewer's permissions (user, group), run (+ version, orchestration,
# started_by), stage runs, step runs (+ flow versions), work items (+ assignees), events
# (+ actors), the run's outbox emails (flow and assignment emails, shown on their steps), the
# record link, My Work's count in the navigation bar, and the flow graph's links to the work
# items (their ids: one query for every step of the run; +1 with the graph, knowingly).
RUN_DETAIL_QUERIES = 13


def make_run(name: str, width: int):  # type: ignore[no-untyped-def]
    load(
        auto_flow(f"{name}_ok"),
        screen_flow(f"{name}_form"),
        orchestration(
            name,
            stages=[
                stage("prep", *[bg(f"b{i}", f"{name}_ok") for i in range(width)]),
                stage("review", *[task(f"t{i}", f"{name}_form", user="alice") for i in range(width)]),
            ],
        ),
    )
    return launch(name, record=make_case(f"Case {name}"))


def test_query_count_does_not_grow_with_steps_or_events(client, personas, django_assert_num_queries):
    operator = grant(
        UserFactory(username="operator"),
        "orchestration.view_run",
        "orchestration.cancel_run",
        "orchestration.suspend_run",
        "orchestration.retry_step",
        "orchestration.skip_step",
    )
    small = make_run("small", 1)
    big = make_run("big", 6)
    RunEvent.objects.bulk_create(
        [RunEvent(run=big, name="test.noise", actor=personas.admin, payload={"i": i}) for i in range(300)]
    )
    client.force_login(operator)
    for run in (small, big):
        with django_assert_num_queries(RUN_DETAIL_QUERIES):
            response = client.get(reverse("monitor:run", args=[run.pk]))
        assert response.status_code == 200
    html = response.content.decode()
    assert html.count("step-assignee") == 6
    assert html.count("Email sent") == 6  # each task's assignment email, from the one outbox query
    assert html.count('class="event-name"') == 200
    assert "the latest 200 shown" in html


def test_the_variables_forms_read_the_people_once_for_every_user_variable(
    client, personas, django_assert_num_queries
):
    operator = grant(UserFactory(username="operator"), "orchestration.view_run", PERM_CHANGE_VARIABLES)
    runs = []
    for name, users in (("one", 1), ("three", 3)):
        variables = [{"name": f"person{i}", "type": "user"} for i in range(users)]
        load(
            auto_flow(f"{name}_ok"),
            orchestration(
                name,
                variables=[*variables, {"name": "total", "type": "number"}],
                stages=[stage("prep", task("t", f"{name}_form")), stage("end", bg("b", f"{name}_ok"))],
            ),
            screen_flow(f"{name}_form"),
        )
        runs.append(launch(name, record=make_case(f"Case {name}")))
    client.force_login(operator)
    for run, users in zip(runs, (1, 3), strict=True):
        # One more than a viewer without the permission: the active users, for all the forms.
        with django_assert_num_queries(RUN_DETAIL_QUERIES + 1):
            response = client.get(reverse("monitor:run", args=[run.pk]))
        html = response.content.decode()
        assert html.count('class="variable-edit"') == users + 1
        # Every user field lists the same people (the personas and the operator).
        assert html.count(f'<option value="{personas.alice.pk}">alice</option>') == users
