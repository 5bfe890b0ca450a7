"""The flow graph's layout (orchestration/views/run_graph.py), on definitions alone: where the
stages, steps, diamonds and arrows go. No database; the page that draws it is
test_monitor_run_detail__graph.py."""

from __future__ import annotations

from typing import Any

from orchestration.definitions import Orchestration
from orchestration.views import run_graph
from orchestration.views.run_graph import GAP, STAGE_W, StageState, StepState, layout, step_depths
from tests.factories import orchestration
from tests.orchestration.engine_support import bg, stage, task


def doc(*stages: dict[str, Any]) -> Orchestration:
    return Orchestration.model_validate(orchestration(stages=list(stages)))


def test_stages_are_columns_left_to_right_in_definition_order_between_start_and_end():
    g = layout(doc(stage("intake", bg("a", "f")), stage("work", bg("b", "f")), stage("close", bg("c", "f"))))
    xs = [s.x for s in g.stages]
    assert [s.key for s in g.stages] == ["intake", "work", "close"]
    assert xs == sorted(xs) and xs[1] - xs[0] == xs[2] - xs[1] == STAGE_W + GAP
    assert len({s.y for s in g.stages}) == 1 and len({s.h for s in g.stages}) == 1
    assert g.start[0] < xs[0] and g.end[0] > g.stages[-1].right
    assert g.width >= g.end[0] + g.r
    # One route into each stage and one out of the last, all at the height of the headers.
    routes = [(e.source, e.target) for e in g.edges_of("route")]
    assert routes == [("start", "intake"), ("intake", "work"), ("work", "close"), ("close", "end")]
    assert {y for e in g.edges_of("route") for _, y in e.points} == {g.start[1]}
    assert g.edges_of("route")[1].points == [(g.stages[0].right, g.start[1]), (g.stages[1].x, g.start[1])]
    # No decisions, no fault paths, no lanes over or under the stages.
    assert not g.diamonds and not g.edges_of("fault") and not g.edges_of("decision")


def test_four_stages_fit_a_1280_pixel_screen():
    g = layout(doc(*(stage(f"s{i}", bg("a", "f")) for i in range(4))))
    assert g.width <= 1240  # the page's container at 1280 px, less its padding


def test_parallel_steps_are_stacked_in_their_stage_in_definition_order():
    g = layout(doc(stage("s", bg("a", "f"), bg("b", "f"), task("c"))))
    a, b, c = (g.step("s", k) for k in "abc")
    assert (a.row, b.row, c.row) == (0, 1, 2)
    assert a.depth == b.depth == c.depth == 0
    assert a.x == b.x == c.x and a.y < b.y < c.y
    box = g.stage("s")
    assert box.x < a.x and a.x + a.w < box.right and c.y + c.h < box.bottom
    # Starting together: no arrow between them.
    assert not g.edges_of("sequence")
    assert c.kind == "interactive" and c.rx > a.rx  # a person's step has round corners


def test_sequenced_steps_go_below_what_they_wait_for_with_an_arrow_from_each():
    # c waits for a and b; d for c; e starts with the stage (listed last, drawn with a and b).
    s = stage(
        "s",
        bg("c", "f", start={"after": ["a", "b"]}),
        bg("a", "f"),
        bg("d", "f", start={"after": ["c"]}),
        bg("b", "f"),
        bg("e", "f"),
    )
    assert step_depths(Orchestration.model_validate(orchestration(stages=[s])).stages[0]) == {
        "a": 0,
        "b": 0,
        "c": 1,
        "d": 2,
        "e": 0,
    }
    g = layout(doc(s))
    assert [st.key for st in sorted(g.steps, key=lambda st: st.row)] == ["a", "b", "e", "c", "d"]
    edges = {(e.source, e.target): e for e in g.edges_of("sequence")}
    assert set(edges) == {("s/a", "s/c"), ("s/b", "s/c"), ("s/c", "s/d")}
    c, d = g.step("s", "c"), g.step("s", "d")
    # Adjacent rows: straight down, from the bottom of one to the top of the other.
    assert edges[("s/c", "s/d")].points == [(c.x + c.w / 2, c.y + c.h), (c.x + c.w / 2, d.y)]
    # Rows apart: round by the stage's left gutter, between the stage's border and the steps.
    a_to_c = edges[("s/a", "s/c")].points
    gutter = a_to_c[1][0]
    assert g.stage("s").x < gutter < c.x
    assert a_to_c[0] == (c.x, g.step("s", "a").y + c.h / 2) and a_to_c[-1] == (c.x, c.y + c.h / 2)
    # Two such arrows would get lanes of their own; here b -> c also skips e's row.
    b_to_c = edges[("s/b", "s/c")].points
    assert b_to_c[1][0] != gutter
    assert "starts after a, b" in c.starts and g.step("s", "e").starts == "starts when the stage starts"


def test_a_decision_is_a_diamond_with_a_labelled_arrow_per_outcome():
    g = layout(
        doc(
            stage(
                "intake",
                bg("a", "f"),
                next={
                    "outcomes": [
                        {"label": "big deal", "when": "vars.total > 10", "goto": "work"},
                        {"label": "rework", "when": "vars.total < 0", "goto": "intake"},
                    ],
                    "default": "end",
                },
            ),
            stage("work", bg("b", "f")),
        )
    )
    (d,) = g.diamonds
    intake, work = g.stages
    assert d.stage == "intake" and intake.right < d.cx < work.x and d.cy == g.start[1]
    # Into the diamond, then out by outcome.
    assert ("intake", "intake:decision") in {(e.source, e.target) for e in g.edges_of("route")}
    out = {e.target: e for e in g.edges_of("decision")}
    assert set(out) == {"work", "intake", "end"}
    # To the next column: straight, its label under the diamond.
    assert out["work"].points == [(d.cx + d.r, d.cy), (work.x, d.cy)]
    assert out["work"].label == "big deal" and out["work"].label_at == (d.cx, d.cy + d.r + 12)
    # Back to itself (rework) and to the end: over the stages, each on its own lane, going into
    # the top of the stage (the end circle's top).
    loop, end = out["intake"].points, out["end"].points
    assert loop[0] == end[0] == (d.cx, d.cy - d.r)
    assert loop[1][1] < intake.y and end[1][1] < intake.y and loop[1][1] != end[1][1]
    assert loop[-1] == (intake.center - 12, intake.y)
    assert end[-1] == (g.end[0], g.end[1] - g.r)
    assert out["intake"].label == "rework" and out["intake"].label_anchor == "end"  # reads leftwards
    assert out["end"].label == "otherwise"
    # The work stage goes to the end as usual.
    assert ("work", "end") in {(e.source, e.target) for e in g.edges_of("route")}


def test_outcomes_to_one_stage_are_one_arrow_with_both_labels():
    g = layout(
        doc(
            stage(
                "a",
                bg("x", "f"),
                next={"outcomes": [{"label": "yes", "when": "true", "goto": "b"}], "default": "b"},
            ),
            stage("b", bg("y", "f")),
        )
    )
    (edge,) = g.edges_of("decision")
    assert (edge.target, edge.label) == ("b", "yes / otherwise")


def test_a_route_that_skips_stages_goes_over_them():
    g = layout(doc(stage("a", bg("x", "f"), next="c"), stage("b", bg("y", "f")), stage("c", bg("z", "f"))))
    jump = next(e for e in g.edges if e.source == "a")
    assert jump.target == "c" and jump.kind == "route"
    a, b, c = g.stages
    assert jump.points[0] == (a.right, g.start[1])
    assert all(y < b.y for _, y in jump.points[2:4])  # over b
    assert jump.points[-1] == (c.center - 12, c.y)


def test_two_routes_into_one_stage_come_down_apart():
    g = layout(
        doc(
            stage("a", bg("x", "f"), next={"outcomes": [{"when": "true", "goto": "d"}], "default": "b"}),
            stage("b", bg("y", "f"), next="d"),
            stage("c", bg("z", "f")),
            stage("d", bg("w", "f")),
        )
    )
    d = g.stage("d")
    # c -> d is the route to the next column; a and b come from over the stages, into the top.
    into_d = {e.source: e.points for e in g.edges if e.target == "d" and e.points[-1][1] == d.y}
    assert set(into_d) == {"a", "b"}
    # b -> d is shorter: the lower lane, and the entry nearest the middle.
    assert into_d["b"][-1] == (d.center - 12, d.y) and into_d["a"][-1] == (d.center - 20, d.y)
    assert into_d["a"][-2][1] < into_d["b"][-2][1] < d.y
    assert next(e for e in g.edges if e.source == "a" and e.target == "d").label == "true"


def test_fault_paths_are_under_the_stages_each_on_its_lane():
    g = layout(
        doc(
            stage("a", bg("x", "f"), fault_path="c"),
            stage("b", bg("y", "f"), fault_path="c"),
            stage("c", bg("z", "f"), fault_path="a"),
        )
    )
    faults = {(e.source, e.target): e for e in g.edges_of("fault")}
    assert set(faults) == {("a", "c"), ("b", "c"), ("c", "a")}
    bottom = g.stages[0].bottom
    lanes = {k: e.points[1][1] for k, e in faults.items()}
    assert all(y > bottom for y in lanes.values())
    # b -> c is the shortest, nearest the stages; the two long ones overlap, so apart.
    assert lanes[("b", "c")] < lanes[("a", "c")] != lanes[("c", "a")]
    for (src, dst), e in faults.items():
        assert e.points[0] == (g.stage(src).center + 16, bottom)
        assert e.points[-1] == (g.stage(dst).center - 16, bottom)
        assert e.label == "on error"
    assert g.height > max(lanes.values())


def test_the_run_gives_each_step_its_state_and_link_and_marks_the_route_taken():
    d = doc(
        stage(
            "intake",
            bg("a", "f"),
            bg("b", "f"),
            next={"outcomes": [{"label": "big", "when": "true", "goto": "work"}], "default": "end"},
            fault_path="work",
        ),
        stage("work", bg("w", "f")),
    )
    g = layout(
        d,
        steps={
            ("intake", "a"): StepState("done", "#step-intake-a"),
            ("intake", "b"): StepState("skipped", "#step-intake-b"),
            ("work", "w"): StepState("failed", "#error-work-w"),
        },
        stages={
            "intake": StageState("completed", "Completed", outcome="big", entries=1),
            "work": StageState("in_progress", "In progress", is_current=True, entries=1),
        },
    )
    w = g.step("work", "w")
    assert (w.state, w.state_label, w.sign, w.href, w.failed) == (
        "failed",
        "Failed",
        "✕",
        "#error-work-w",
        True,
    )
    assert g.failed == [w]
    assert g.step("intake", "b").state_label == "Skipped"
    taken = [e for e in g.edges if e.taken]
    assert [(e.source, e.target) for e in taken] == [("intake", "work")]
    assert not g.edges_of("fault")[0].taken
    assert g.description == (
        "2 stages from left to right: intake (completed), work (in progress). Failed step: w in work."
    )
    # Without a run, the same layout: the steps say their kind, link nowhere.
    bare = layout(d)
    assert [(s.x, s.y) for s in bare.steps] == [(s.x, s.y) for s in g.steps]
    assert bare.step("work", "w").state_label == "background" and not bare.step("work", "w").href
    assert not bare.has_states and g.has_states


def test_long_labels_are_cut_to_fit_and_kept_whole_for_the_tooltip():
    g = layout(doc(stage("s", bg("a", "f", label="Check the sanctions lists of every country"))))
    a = g.step("s", "a")
    assert a.label == "Check the sanctions lists of every country"
    assert a.short_label == "Check the sanctions…" and len(a.short_label) == run_graph.LABEL_CHARS


def test_definition_graph_links_the_nodes_a_page_asks_for_and_draws_the_others_plain():
    """definition_graph: the builder's (or any page's) clickable graph of a definition."""
    from django.template.loader import render_to_string

    from orchestration.views.run_graph import definition_graph

    d = doc(stage("intake", task("check"), bg("score", "f")), stage("close", bg("done", "f")))
    asked: list[tuple[str, str, str | None]] = []

    def link(kind: str, stage_key: str, step_key: str | None) -> str | None:
        asked.append((kind, stage_key, step_key))
        if step_key == "score":
            return None  # drawn without a link
        return f"/builder/x/{stage_key}/" if kind == "stage" else f"/builder/x/{stage_key}/{step_key}/"

    g = definition_graph(d, link=link, focusable=True)
    assert sorted(asked) == [
        ("stage", "close", None),
        ("stage", "intake", None),
        ("step", "close", "done"),
        ("step", "intake", "check"),
        ("step", "intake", "score"),
    ]
    assert [s.href for s in g.stages] == ["/builder/x/intake/", "/builder/x/close/"]
    assert {s.key: s.href for s in g.steps} == {
        "check": "/builder/x/intake/check/",
        "score": "",
        "done": "/builder/x/close/done/",
    }
    assert not g.has_states and {s.state for s in g.steps} == {""}
    # The same layout as the bare `layout`, only the links differ.
    assert [(s.x, s.y) for s in g.steps] == [(s.x, s.y) for s in layout(d).steps]

    svg = render_to_string("orchestration/monitor/_run_graph.html", {"graph": g})
    assert '<a href="/builder/x/intake/">' in svg  # focusable: in the tab order
    assert 'href="/builder/x/intake/check/" data-step="intake/check"' in svg
    assert '<g data-step="intake/score">' in svg
    assert "Open its work item" not in svg  # that is the run page's words for a work item link

    plain = render_to_string("orchestration/monitor/_run_graph.html", {"graph": definition_graph(d)})
    assert "<a " not in plain.split("<svg", 1)[1].split("</svg>")[0]
