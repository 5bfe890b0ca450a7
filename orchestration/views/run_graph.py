"""The flow graph of the run detail page: the definition drawn as a graph, in server-rendered
SVG, with the run's status on every step.

The layout is computed here, in plain numbers; the template (monitor/_run_graph.html) only
draws them. One column per stage, left to right in definition order, between a start and an
end circle. Inside a stage, one row per step, ordered by dependency depth: a step that starts
when the stage starts has depth 0 (steps of one depth run in parallel, stacked), a step that
starts `after` others sits below the deepest of them, with an arrow from each.

Between stage columns, at the height of the stage headers: the route to the following stage,
or a decision's diamond with an arrow per outcome. Routes that do not go to the column just
right (a rework loop back, a jump over stages, an end from the middle) are drawn over the
stages, each at its own height (a lane); fault paths under them, dashed.

`layout` knows nothing of runs: `run_graph` (diagram.py's stage boxes → states) gives it the
run's status per step, and without states the graph is the bare definition: `definition_graph`,
which the version page draws and any other page may (with a link per stage and step)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..definitions import END, Decision, Stage
from ..definitions import Orchestration as OrchestrationDoc

# --- geometry (px; the SVG is drawn 1:1) ------------------------------------------------------

MARGIN = 12
START_W = 44  # the start circle and its arrow, left of the first stage
STAGE_W = 190
GAP = 84  # between two stage columns: the decision diamond, its arrows and its label
HEADER_H = 40
STEP_LEFT = 26  # a step's offset in its stage: the lanes of arrows that pass rows by
STEP_W = STAGE_W - STEP_LEFT - 10
STEP_H = 42
STEP_PITCH = 56  # row to row
STAGE_PAD = 10
LANE_H = 18  # one route over (or under) the stages
LANE_ROOM = 14  # between the stages and the nearest lane
SEQ_LANE_W = 5  # sequence arrows that pass rows by, in the stage's left gutter
SEQ_LANES = 4
ENTRY_STEP = 8  # routes from over the stages come down into a stage this far apart, by lane
ENTRY_STEPS = 4
TERMINAL_R = 9
DIAMOND = 14  # half the diamond's diagonal
LABEL_CHARS = 20  # what fits on a step or stage (the whole text is in the node's tooltip)
ROUTE_LABEL_CHARS = 14  # what fits under a diamond, in the gap

# Status of a step in the graph: (words, sign). The sign and the words say it; colour repeats it.
STATES: dict[str, tuple[str, str]] = {
    "done": ("Done", "✓"),
    "in_progress": ("In progress", "▶"),
    "failed": ("Failed", "✕"),
    "waiting": ("Waiting", "◷"),
    "not_started": ("Not started", "○"),
    "skipped": ("Skipped", "↷"),
    "stopped": ("Stopped", "■"),
}


def short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


Point = tuple[float, float]


@dataclass(frozen=True)
class StepState:
    """What the run says of one step: a STATES key and where the node links."""

    state: str
    href: str = ""
    note: str = ""  # instead of the state's words: a wait step's "resumes 2026-12-28 09:00"


@dataclass(frozen=True)
class StageState:
    """What the run says of one stage: its latest entry's status (a StageStatus) and words, and
    the decision it took (StageRun.outcome: an outcome's label, "default", "fault path: …")."""

    status: str
    status_label: str
    is_current: bool = False
    outcome: str = ""
    entries: int = 0


@dataclass
class GraphStep:
    key: str
    stage: str
    label: str
    kind: str
    row: int
    depth: int
    x: float
    y: float
    starts: str  # when it starts, in words (its tooltip)
    state: str = ""  # a STATES key; "" for a definition without a run
    href: str = ""
    note: str = ""  # StepState.note
    w: float = STEP_W
    h: float = STEP_H

    @property
    def short_label(self) -> str:
        return short(self.label)

    @property
    def state_label(self) -> str:
        if self.note:
            return self.note
        return STATES[self.state][0] if self.state else self.kind

    @property
    def sign(self) -> str:
        return STATES[self.state][1] if self.state else ""

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    @property
    def rx(self) -> int:
        """Corners: round for a person's step, nearly square for a background one."""
        return 10 if self.kind == "interactive" else 3

    # Where its text sits (a template does no arithmetic).
    @property
    def text_x(self) -> float:
        return self.x + 8

    @property
    def label_y(self) -> float:
        return self.y + 17

    @property
    def state_y(self) -> float:
        return self.y + 33

    @property
    def mark_x(self) -> float:
        """The failed step's mark, on its top right corner."""
        return self.x + self.w - 2

    @property
    def mark_y(self) -> float:
        return self.y + 2

    @property
    def mark_text_y(self) -> float:
        return self.y + 6


@dataclass
class GraphStage:
    key: str
    label: str
    x: float
    y: float
    h: float
    status: str = ""
    status_label: str = ""
    is_current: bool = False
    entries: int = 0
    href: str = ""  # its header links here ("" draws it without a link)
    w: float = STAGE_W

    @property
    def short_label(self) -> str:
        return short(self.label)

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def center(self) -> float:
        return self.x + self.w / 2

    # The header band: inside the border, rounded at the top only (a square strip under it).
    @property
    def head(self) -> tuple[float, float, float, float]:
        return (self.x + 1, self.y + 1, self.w - 2, HEADER_H - 1)

    @property
    def head_square_y(self) -> float:
        return self.y + HEADER_H - 8

    @property
    def head_line_y(self) -> float:
        return self.y + HEADER_H

    @property
    def text_x(self) -> float:
        return self.x + 10

    @property
    def label_y(self) -> float:
        return self.y + 17

    @property
    def status_y(self) -> float:
        return self.y + 32


@dataclass
class GraphEdge:
    """An arrow: `kind` is "route" (to the following stage, or start and end), "decision" (an
    outcome), "fault" (a fault path), "sequence" (a step that starts after another)."""

    kind: str
    source: str
    target: str
    points: list[Point]
    label: str = ""
    label_at: Point | None = None
    label_anchor: str = "start"
    taken: bool = False

    @property
    def points_attr(self) -> str:
        return " ".join(f"{x:g},{y:g}" for x, y in self.points)

    @property
    def short_label(self) -> str:
        return short(self.label, ROUTE_LABEL_CHARS)


@dataclass
class GraphDiamond:
    stage: str
    cx: float
    cy: float
    r: float = DIAMOND

    @property
    def points_attr(self) -> str:
        c, y, r = self.cx, self.cy, self.r
        return f"{c:g},{y - r:g} {c + r:g},{y:g} {c:g},{y + r:g} {c - r:g},{y:g}"


@dataclass
class Graph:
    width: float
    height: float
    stages: list[GraphStage]
    steps: list[GraphStep]
    edges: list[GraphEdge]
    diamonds: list[GraphDiamond]
    start: Point
    end: Point
    r: float = TERMINAL_R
    has_states: bool = False
    failed: list[GraphStep] = field(default_factory=list)
    # The node links in the tab order: for a page with no text list of the same links beside it.
    focusable: bool = False

    def step(self, stage: str, key: str) -> GraphStep:
        return next(s for s in self.steps if s.stage == stage and s.key == key)

    def stage(self, key: str) -> GraphStage:
        return next(s for s in self.stages if s.key == key)

    def edges_of(self, kind: str) -> list[GraphEdge]:
        return [e for e in self.edges if e.kind == kind]

    @property
    def description(self) -> str:
        """The graph in words: the SVG's <desc>."""
        parts = [f"{s.label} ({s.status_label.lower()})" if s.status_label else s.label for s in self.stages]
        text = f"{len(self.stages)} stage{'s' if len(self.stages) != 1 else ''} from left to right: "
        text += ", ".join(parts) + "."
        for f in self.failed:
            text += f" Failed step: {f.label} in {self.stage(f.stage).label}."
        return text


# --- steps inside a stage -----------------------------------------------------------------------


def step_depths(stage: Stage) -> dict[str, int]:
    """0 for a step that starts with its stage, else one more than the deepest step it waits for
    (`start.after`). A cycle (refused at import) is cut where it closes."""
    after = {s.key: [a for a in s.start.after if a != s.key] for s in stage.steps}
    depths: dict[str, int] = {}

    def depth(key: str, seen: frozenset[str]) -> int:
        if key in depths:
            return depths[key]
        before = [a for a in after.get(key, []) if a in after and a not in seen]
        d = 1 + max((depth(a, seen | {key}) for a in before), default=-1)
        depths[key] = d
        return d

    for s in stage.steps:
        depth(s.key, frozenset())
    return depths


def _starts(step_after: list[str], condition: str | None, flow: str | None) -> str:
    if step_after:
        return "starts after " + ", ".join(step_after)
    if condition:
        return f"starts when {condition}"
    if flow:
        return f"starts when the evaluation flow {flow} says so"
    return "starts when the stage starts"


def _lanes(spans: Iterable[tuple[int, float, float]]) -> dict[int, int]:
    """Give each span (id, low, high) the lowest lane where it overlaps no other: shortest first,
    so short routes stay near the stages and long ones go round them."""
    taken: list[list[tuple[float, float]]] = []
    out: dict[int, int] = {}
    for i, lo, hi in sorted(spans, key=lambda s: (s[2] - s[1], s[0])):
        lane = next(
            (n for n, used in enumerate(taken) if all(hi < a or lo > b for a, b in used)),
            len(taken),
        )
        if lane == len(taken):
            taken.append([])
        taken[lane].append((lo, hi))
        out[i] = lane
    return out


# --- the graph ----------------------------------------------------------------------------------


def layout(
    doc: OrchestrationDoc,
    *,
    steps: Mapping[tuple[str, str], StepState] | None = None,
    stages: Mapping[str, StageState] | None = None,
) -> Graph:
    """Positions of every stage, step, diamond and arrow of `doc`; with the run's `steps`
    ({(stage key, step key): state}) and `stages` ({stage key: state}) when there is a run."""
    steps = steps or {}
    stages = stages or {}
    rows = max(len(s.steps) for s in doc.stages)
    stage_h = HEADER_H + STAGE_PAD + (rows - 1) * STEP_PITCH + STEP_H + STAGE_PAD
    index = {s.key: i for i, s in enumerate(doc.stages)}
    x0 = MARGIN + START_W

    def col_x(i: int) -> float:
        return x0 + i * (STAGE_W + GAP)

    end_x = col_x(len(doc.stages)) + TERMINAL_R  # the end circle's centre, after the last gap

    # Routes first (their lanes decide where the stages sit); a stage's y is relative to the
    # stages' top (`top`) until the lanes are known.
    over: list[tuple[str, str, str, float, float, str, bool]] = []  # kind, from, to, sx, tx, label, taken
    near: list[tuple[str, str, str, str, bool]] = []  # to the next column: kind, from, to, label, taken
    for i, stage in enumerate(doc.stages):
        state = stages.get(stage.key)
        outcome = state.outcome if state else ""
        following = doc.stages[i + 1].key if i + 1 < len(doc.stages) else END
        nxt = stage.next
        targets: list[tuple[str, str, bool]] = []  # (target, label, taken)
        kind = "route"
        if nxt is None:
            targets.append((following, "", False))
        elif isinstance(nxt, str):
            targets.append((nxt, "", False))
        else:
            assert isinstance(nxt, Decision)
            kind = "decision"
            for n, o in enumerate(nxt.outcomes):
                label = o.label or o.when
                taken = outcome in (o.label, f"outcome {n + 1}: {o.when}") and bool(outcome)
                targets.append((o.goto, label, taken))
            targets.append((nxt.default, "otherwise", outcome == "default"))
        # Outcomes that go to the same stage are one arrow with both labels.
        merged: dict[str, tuple[list[str], bool]] = {}
        for target, label, taken in targets:
            labels, was = merged.setdefault(target, ([], False))
            if label and label not in labels:
                labels.append(label)
            merged[target] = (labels, was or taken)
        for target, (labels, taken) in merged.items():
            label = " / ".join(labels)
            if target == following:
                near.append((kind, stage.key, target, label, taken))
            else:
                sx = col_x(i) + STAGE_W + GAP / 2
                tx = end_x if target == END else col_x(index[target]) + STAGE_W / 2 - 12
                over.append((kind, stage.key, target, sx, tx, label, taken))
    faults = [
        (s.key, s.fault_path, bool(stages.get(s.key) and stages[s.key].outcome.startswith("fault path:")))
        for s in doc.stages
        if s.fault_path and s.fault_path in index
    ]
    over_lanes = _lanes((n, min(o[3], o[4]), max(o[3], o[4])) for n, o in enumerate(over))
    fault_spans = []
    for n, (src, dst, _taken) in enumerate(faults):
        sx = col_x(index[src]) + STAGE_W / 2 + 16
        tx = col_x(index[dst]) + STAGE_W / 2 - 16
        fault_spans.append((n, min(sx, tx), max(sx, tx)))
    under_lanes = _lanes(fault_spans)
    n_over = max(over_lanes.values(), default=-1) + 1
    n_under = max(under_lanes.values(), default=-1) + 1

    top = MARGIN + (n_over * LANE_H + LANE_ROOM if n_over else 0)
    mid = top + HEADER_H / 2  # stage-to-stage arrows run at the height of the headers
    bottom = top + stage_h
    height = bottom + (LANE_ROOM + n_under * LANE_H if n_under else 0) + MARGIN
    width = end_x + TERMINAL_R + MARGIN

    g_stages: list[GraphStage] = []
    g_steps: list[GraphStep] = []
    edges: list[GraphEdge] = []
    diamonds: list[GraphDiamond] = []
    for i, stage in enumerate(doc.stages):
        state = stages.get(stage.key)
        box = GraphStage(
            key=stage.key,
            label=stage.label or stage.key,
            x=col_x(i),
            y=top,
            h=stage_h,
            status=state.status if state else "",
            status_label=state.status_label if state else "",
            is_current=bool(state and state.is_current),
            entries=state.entries if state else 0,
            href=f"#stage-{stage.key}",  # the page's text of the stage, under the graph
        )
        g_stages.append(box)
        g_steps.extend(_stage_steps(stage, box, steps))
        if isinstance(stage.next, Decision):
            diamonds.append(GraphDiamond(stage=stage.key, cx=box.right + GAP / 2, cy=mid))
    by_key = {(s.stage, s.key): s for s in g_steps}
    for stage in doc.stages:
        edges.extend(_sequence_edges(stage, by_key, g_stages[index[stage.key]]))

    diamond_of = {d.stage: d for d in diamonds}
    for diamond in diamonds:
        box = g_stages[index[diamond.stage]]
        into: list[Point] = [(box.right, mid), (diamond.cx - diamond.r, mid)]
        edges.append(GraphEdge("route", diamond.stage, f"{diamond.stage}:decision", into))
    edges.append(GraphEdge("route", "start", doc.stages[0].key, [(MARGIN + 2 * TERMINAL_R, mid), (x0, mid)]))
    for kind, src, dst, label, taken in near:
        box = g_stages[index[src]]
        tx = end_x - TERMINAL_R if dst == END else col_x(index[dst])
        d = diamond_of.get(src)
        if d is None:
            edges.append(GraphEdge(kind, src, dst, [(box.right, mid), (tx, mid)], label=label, taken=taken))
        else:
            edges.append(
                GraphEdge(
                    kind,
                    src,
                    dst,
                    [(d.cx + d.r, mid), (tx, mid)],
                    label=label,
                    # Under the diamond, in the gap: the arrow itself is too short for words.
                    label_at=(d.cx, mid + d.r + 12),
                    label_anchor="middle",
                    taken=taken,
                )
            )
    for n, (kind, src, dst, sx, tx, label, taken) in enumerate(over):
        lane_y = top - LANE_ROOM - over_lanes[n] * LANE_H
        ty = mid - TERMINAL_R if dst == END else top
        if dst != END:
            # Two routes into one stage come down apart (the higher lane further left).
            tx -= min(over_lanes[n], ENTRY_STEPS - 1) * ENTRY_STEP
        d = diamond_of.get(src)
        box = g_stages[index[src]]
        lead: list[Point] = [(d.cx, mid - d.r)] if d else [(box.right, mid), (sx, mid)]
        edges.append(
            GraphEdge(
                kind,
                src,
                dst,
                [*lead, (sx, lane_y), (tx, lane_y), (tx, ty)],
                label=label,
                # On the lane, beside where it leaves: a loop back reads leftwards.
                label_at=(sx + 4 if tx > sx else sx - 4, lane_y - 4),
                label_anchor="start" if tx > sx else "end",
                taken=taken,
            )
        )
    for n, (src, dst, taken) in enumerate(faults):
        sx = col_x(index[src]) + STAGE_W / 2 + 16
        tx = col_x(index[dst]) + STAGE_W / 2 - 16
        lane_y = bottom + LANE_ROOM + under_lanes[n] * LANE_H
        edges.append(
            GraphEdge(
                "fault",
                src,
                dst,
                [(sx, bottom), (sx, lane_y), (tx, lane_y), (tx, bottom)],
                label="on error",
                label_at=(sx + 4 if tx > sx else sx - 4, lane_y + 12),
                label_anchor="start" if tx > sx else "end",
                taken=taken,
            )
        )
    return Graph(
        width=width,
        height=height,
        stages=g_stages,
        steps=g_steps,
        edges=edges,
        diamonds=diamonds,
        start=(MARGIN + TERMINAL_R, mid),
        end=(end_x, mid),
        has_states=bool(steps),
        failed=[s for s in g_steps if s.failed],
    )


def _stage_steps(
    stage: Stage, box: GraphStage, states: Mapping[tuple[str, str], StepState]
) -> list[GraphStep]:
    depths = step_depths(stage)
    order = sorted(range(len(stage.steps)), key=lambda i: (depths[stage.steps[i].key], i))
    out = []
    for row, i in enumerate(order):
        step = stage.steps[i]
        state = states.get((stage.key, step.key))
        out.append(
            GraphStep(
                key=step.key,
                stage=stage.key,
                label=step.label or step.key,
                kind=step.kind,
                row=row,
                depth=depths[step.key],
                x=box.x + STEP_LEFT,
                y=box.y + HEADER_H + STAGE_PAD + row * STEP_PITCH,
                starts=_starts(list(step.start.after), step.start.condition, step.start.evaluation_flow),
                state=state.state if state else "",
                href=state.href if state else "",
                note=state.note if state else "",
            )
        )
    return out


def _sequence_edges(
    stage: Stage, by_key: Mapping[tuple[str, str], GraphStep], box: GraphStage
) -> list[GraphEdge]:
    """An arrow from each step to each step that starts after it: straight down to the row just
    below, else round by the stage's left gutter (a lane each, so they stay apart)."""
    pairs = [
        (by_key[(stage.key, a)], by_key[(stage.key, s.key)])
        for s in stage.steps
        for a in s.start.after
        if (stage.key, a) in by_key and a != s.key
    ]
    far = [(n, a, b) for n, (a, b) in enumerate(pairs) if b.row != a.row + 1]
    lanes = _lanes((n, min(a.row, b.row), max(a.row, b.row)) for n, a, b in far)
    edges = []
    for n, (a, b) in enumerate(pairs):
        if b.row == a.row + 1:
            x = a.x + a.w / 2
            points: list[Point] = [(x, a.y + a.h), (x, b.y)]
        else:
            gutter = box.x + STEP_LEFT - 6 - min(lanes[n], SEQ_LANES - 1) * SEQ_LANE_W
            ay, by = a.y + a.h / 2, b.y + b.h / 2
            points = [(a.x, ay), (gutter, ay), (gutter, by), (b.x, by)]
        edges.append(GraphEdge("sequence", f"{stage.key}/{a.key}", f"{stage.key}/{b.key}", points))
    return edges


# --- the bare definition, with links of the page's choosing ---------------------------------------

# link(kind, stage key, step key) -> URL or None: kind "stage" (step key None) or "step".
Link = Callable[[str, str, str | None], str | None]


def definition_graph(doc: OrchestrationDoc, *, link: Link | None = None, focusable: bool = False) -> Graph:
    """The graph of a definition without a run, for `monitor/_run_graph.html` (which wants it as
    `graph` in its context, and the page to load `orchestration/run_graph.css`).

    `link(kind, stage_key, step_key) -> str | None` gives each node its URL: called with
    ("stage", stage key, None) for every stage and ("step", stage key, step key) for every step;
    a node with a URL is drawn as an `<a href=...>`, one with None (or every node, without
    `link`) as plain shapes. `focusable=True` puts those links in the tab order: for a page that
    has no text list of the same links beside the graph (by default they are out of it, as the
    version and run pages list the stages and steps in text under it)."""
    graph = layout(doc)
    for stage in graph.stages:
        stage.href = (link("stage", stage.key, None) if link else None) or ""
    for step in graph.steps:
        step.href = (link("step", step.stage, step.key) if link else None) or ""
    graph.focusable = focusable
    return graph
