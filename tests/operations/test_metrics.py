"""/metrics: who may read it, and that the figures are the database's and the workers' own."""

from __future__ import annotations

import re

import pytest

from orchestration import metrics
from orchestration.registry import register_flow
from tests.factories import grant, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, launch, stage, task

TOKEN = "s3cret-metrics-token"


@register_flow("metrics_explodes")
def _explodes(ctx):  # type: ignore[no-untyped-def]
    raise RuntimeError("down")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(p for p in (m.group(2) or "").split(",") if p))
        if got == want:
            return float(m.group(3))
    return 0.0


@pytest.fixture(autouse=True)
def _fresh_gauges(settings):
    settings.METRICS_TOKEN = TOKEN
    metrics.reset_cache()
    yield
    metrics.reset_cache()


def scrape(client) -> str:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.mark.django_db
def test_metrics_need_the_token_or_a_person_who_may_view_runs(client, personas):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    client.force_login(personas.alice)  # an end user
    assert client.get("/metrics").status_code == 403
    grant(personas.bob, "orchestration.view_run")
    client.force_login(personas.bob)
    assert client.get("/metrics").status_code == 200
    client.logout()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_gauges_count_runs_items_and_failed_steps(client, personas):
    load(
        screen_flow("review"),
        {
            "kind": "autolaunched_flow",
            "api_name": "boom",
            "outputs": [],
            "actions": [{"type": "call", "name": "metrics_explodes"}],
        },
        orchestration("people", stages=[stage("s", task("t", "review", user="alice"))]),
        orchestration("robots", stages=[stage("s", bg("b", "boom", max_attempts=1))]),
    )
    for i in range(3):
        launch("people", record=make_case(f"Case {i}"))
    before = scrape(client)
    attempts_before = sample(before, "orchestration_background_step_attempts_total", outcome="error")
    launch("robots", record=make_case("Robot case"))
    metrics.reset_cache()
    text = scrape(client)
    assert sample(text, "orchestration_runs", orchestration="people", status="in_progress") == 3
    assert sample(text, "orchestration_runs", orchestration="robots", status="error") == 1
    assert sample(text, "workitems_open", due="any") == 3
    assert sample(text, "workitems_open", due="overdue") == 0
    assert sample(text, "orchestration_steps_failed") == 1
    assert sample(text, "orchestration_background_steps", state="queued") == 0
    # Observed by the task (in this process: eager Celery) and counted once.
    assert (
        sample(text, "orchestration_background_step_attempts_total", outcome="error") == attempts_before + 1
    )
    assert sample(text, "orchestration_background_step_duration_seconds_count", outcome="error") >= 1


@pytest.mark.django_db
def test_a_second_scrape_within_the_cache_time_reads_nothing(client, personas, django_assert_num_queries):
    scrape(client)  # fills the cache
    with django_assert_num_queries(0):
        client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    metrics.reset_cache()
    with django_assert_num_queries(5):  # runs; failed steps; background steps; open and overdue items
        client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
