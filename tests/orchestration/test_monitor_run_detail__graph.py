"""The run page's flow graph: an SVG image with its title and description, each step's status in
words and its link (the failed step to its error, interactive steps to their work item, others
to their card), the decision and the fault path, and the route the run took."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from orchestration.models import RunStatus
from orchestration.services import step_skip
from tests.factories import auto_flow, load, make_case, orchestration, screen_flow
from tests.orchestration.engine_support import bg, launch, open_item, stage, step, task

from .test_monitor_run_detail import failed_run  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def url(run) -> str:  # type: ignore[no-untyped-def]
    return reverse("monitor:run", args=[run.pk])


def svg(html: str) -> str:
    start = html.index("<svg")
    return html[start : html.index("</svg>", start)]


def node(html: str, stage_key: str, step_key: str) -> str:
    """A step's node: its link (or group) and everything in it."""
    graph = svg(html)
    m = re.search(rf'<(a|g)\b[^>]*data-step="{stage_key}/{step_key}"[^>]*>.*?</\1>', graph, re.S)
    assert m, f"no node for {stage_key}/{step_key}"
    return m.group(0)


def test_the_graph_is_an_image_with_a_title_and_a_description(client, personas, failed_run):  # noqa: F811
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    graph = svg(html)
    assert 'role="img"' in graph and 'aria-labelledby="run-graph-title run-graph-desc"' in graph
    assert f'<title id="run-graph-title">Flow graph of run {failed_run.pk}</title>' in graph
    desc = re.search(r'<desc id="run-graph-desc">([^<]*)</desc>', graph)
    assert desc and desc.group(1).startswith(
        "3 stages from left to right: intake (completed), work (in progress), recover (not started). "
        "Failed step: Calculate in work."
    )
    # Drawn in a box of its own that scrolls; no style attribute anywhere (the CSP).
    assert '<div class="run-graph-scroll" tabindex="0" role="region"' in html
    assert "style=" not in graph
    # The text alternative stays: the stages with their steps' cards.
    assert html.index("run-graph-scroll") < html.index('id="diagram-h"') < html.index('id="step-work-calc"')


def test_the_failed_step_is_marked_and_links_to_its_error_text(client, personas, failed_run):  # noqa: F811
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    calc = node(html, "work", "calc")
    assert calc.startswith('<a class="rg-step-link rg-step-failed" href="#error-work-calc"')
    assert "rg-state-failed" in calc and "rg-failed-mark" in calc
    # Said in words with a sign, not by colour alone.
    assert "✕ Failed · see error" in calc
    assert (
        "<title>Calculate: Failed (background, starts when the stage starts). Open its error</title>" in calc
    )
    # The link lands on the error text itself.
    error = re.search(
        r'<p class="step-error step-error-current" id="error-work-calc"[^>]*>(.*?)</p>', html, re.S
    )
    assert error and "division by zero" in error.group(1)
    # Only one step failed.
    assert svg(html).count("rg-step-failed") == 1


def test_each_step_says_its_state_and_links_to_its_card(client, personas, failed_run):  # noqa: F811
    client.force_login(personas.admin)
    html = client.get(url(failed_run)).content.decode()
    fetch = node(html, "intake", "fetch")
    assert 'href="#step-intake-fetch"' in fetch and "✓ Done" in fetch and "rg-state-done" in fetch
    assert 'id="step-intake-fetch"' in html  # where it lands
    fix = node(html, "recover", "fix")
    assert 'href="#step-recover-fix"' in fix and "○ Not started" in fix
    # Stages: the header says the status, and links to the stage's box below.
    graph = svg(html)
    assert re.search(r'<a href="#stage-work" tabindex="-1">.*?In progress · current</text>', graph, re.S)


def test_the_decision_and_the_fault_path_are_drawn_and_the_route_taken_is_marked(
    client,
    personas,
    failed_run,  # noqa: F811
):
    client.force_login(personas.admin)
    graph = svg(client.get(url(failed_run)).content.decode())
    assert graph.count('class="rg-diamond"') == 1
    decisions = re.findall(
        r'<polyline class="rg-edge rg-edge-decision([^"]*)"[^>]*data-from="intake" data-to="(\w+)"', graph
    )
    # "big deal" was taken (total is 42); otherwise goes to the end.
    assert sorted(decisions) == [("", "end"), (" rg-edge-taken", "work")]
    assert "big deal ✓" in graph and ">otherwise<" in graph
    fault = re.findall(
        r'<polyline class="rg-edge rg-edge-fault"[^>]*data-from="(\w+)" data-to="(\w+)"', graph
    )
    assert fault == [("intake", "recover")]
    assert 'marker-end="url(#rg-arrow-fault)"' in graph and ">on error<" in graph


def test_interactive_steps_link_to_their_work_item_in_the_work_guide(client, personas):
    load(
        screen_flow("review"),
        auto_flow("ok"),
        orchestration(
            stages=[
                stage(
                    "s",
                    task("first", label="First look"),
                    task("second", start={"after": ["first"]}),
                    bg("side", "ok"),
                ),
            ]
        ),
    )
    run = launch(record=make_case())
    item = open_item(run, "first")
    client.force_login(personas.admin)
    html = client.get(url(run)).content.decode()
    first = node(html, "s", "first")
    assert f'href="{reverse("workitems:guide_item", args=[item.pk])}"' in first
    assert "▶ In progress" in first and "Open its work item" in first
    # Not started yet, so no item: it links to its card, and waits (its stage is going on).
    second = node(html, "s", "second")
    assert 'href="#step-s-second"' in second and "◷ Waiting" in second
    assert "starts after first" in second
    # Sequenced: an arrow from first to second; side starts with the stage (no arrow).
    graph = svg(html)
    assert re.findall(r'rg-edge-sequence"[^>]*data-from="([^"]+)" data-to="([^"]+)"', graph) == [
        ("s/first", "s/second")
    ]


def test_a_step_an_admin_skipped_reads_skipped(client, personas):
    load(
        auto_flow("boom", outputs={"x": "1 / 0"}),
        orchestration(
            stages=[stage("work", bg("calc", "boom", max_attempts=1)), stage("next", bg("n", "boom"))]
        ),
    )
    run = launch(record=make_case())
    assert run.status == RunStatus.ERROR
    step_skip(step_run_id=step(run, "calc").pk, outputs={"x": 1}, actor=personas.admin, reason="by hand")
    client.force_login(personas.admin)
    html = client.get(url(run)).content.decode()
    assert "↷ Skipped" in node(html, "work", "calc")
    assert "rg-state-skipped" in node(html, "work", "calc")
