"""Hostile input, fuzzed with hypothesis, where tests/orchestration/test_hypothesis__definitions.py
does not already go:

(a) definition files as *text* through the upload page: YAML and JSON with values PostgreSQL
    cannot store (NUL, lone surrogates, NaN/Infinity, YAML-only types), tags, anchors, deep
    nesting, garbage: never a 500, and every rejection says where (a path, or a line);
(b) expressions built from sandbox-escape and resource-exhaustion fragments (dunders, `mro`,
    format strings, widths, powers, repetition, deep nesting): only ExpressionError, with a
    message, never a Python object leaked, never a result above the size limit;
(c) random POST bodies to the Work Guide's screen endpoint: never a 500, the item stays
    assigned, what was typed into the screen's fields is kept, and a valid post afterwards
    still completes the item.
"""

from __future__ import annotations

import json
import math
import os
import signal
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestration import expressions
from orchestration.models import FlowVersion, OrchestrationVersion
from orchestration.services import DefinitionsInvalid, definitions_import
from orchestration.validation import load_text
from tests.factories import RECORD_PERMS, grant
from tests.workitems.guide_support import define, field_error, item_of, start
from workitems.models import WorkItem, WorkItemDraft, WorkItemStatus

# CI runs a fixed set of examples so that a red run is a change's fault, not the seed's; set
# FUZZ_RANDOM=1 to explore new inputs (how the two regression tests below were found).
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def at_most(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a sandbox that lets `9**9**9` through would never return."""

    def stop(signum: int, frame: Any) -> None:
        raise AssertionError(f"still running after {seconds} s: a resource limit is missing")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- (a) definition files through the upload page ----------------------------------------------

VALID_YAML = """\
kind: screen_flow
api_name: fuzz_form
label: Fuzz form
screens:
- key: main
  fields:
  - name: amount
    type: number
    label: Amount
    min_value: 1
  - name: pick
    type: choice
    choices: [a, b]
---
kind: orchestration
api_name: fuzz_proc
label: Fuzz
start: {type: autolaunched, record_type: case}
stages:
- key: review
  steps:
  - key: check
    kind: interactive
    flow: fuzz_form
    assignee: {user: alice}
    start: {condition: "record.amount > 1"}
"""
# Values a JSON column cannot hold, YAML syntax that builds unusual Python objects, and text
# that breaks the structure.
HOSTILE_SCALARS = [
    ".nan", ".inf", "-.inf", "1e400", '"\\0"', '"a\\x00b"', '"\\ud800"', "!!binary AAAA",
    "2024-01-01", "2024-01-01T10:00:00", "!!set {a, b}", "!!python/object:os.system x",
    "!!float nan", "&a [*a]", "*nope", "99999999999999999999999999999", "0x1F", "0o17", "~",
    "'{{ 7*7 }}'", '"__class__"', "[[[[[[[[[[]]]]]]]]]]", "{a: {b: {c: {d: {}}}}}", "!!str",
    "!!int x", "? complex : key", "<<: *a", "|\n    block", ">-\n    folded",
]  # fmt: skip
BREAKERS = ["\t", ":", "- ", "---\n", "...\n", "%YAML 1.1\n", "{", "}", "[", "]", "\n  ", "#", '"', "'"]
LINES = VALID_YAML.splitlines(keepends=True)
SCALAR_LINES = [i for i, line in enumerate(LINES) if ": " in line and not line.rstrip().endswith(":")]


@st.composite
def yaml_files(draw: st.DrawFn) -> tuple[str, str]:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.sampled_from(SCALAR_LINES))
        key = lines[i].split(": ", 1)[0]
        how = draw(st.sampled_from(["hostile", "hostile", "breaker", "text", "drop"]))
        if how == "hostile":
            lines[i] = f"{key}: {draw(st.sampled_from(HOSTILE_SCALARS))}\n"
        elif how == "breaker":
            cut = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:cut] + draw(st.sampled_from(BREAKERS)) + lines[i][cut:]
        elif how == "text":
            lines[i] = f"{key}: {json.dumps(draw(st.text(max_size=12)))}\n"
        else:
            lines[i] = ""
    return "fuzz.yaml", "".join(lines)


def _hostile_json_value() -> st.SearchStrategy[Any]:
    leaves = (
        st.sampled_from([math.nan, math.inf, -math.inf, "\x00", "a\ud800b", 10**30, -(2**63), "{{ 7*7 }}"])
        | st.text(max_size=8)
        | st.integers()
        | st.floats()
        | st.none()
        | st.booleans()
    )
    return st.recursive(
        leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3)
    )


@st.composite
def json_files(draw: st.DrawFn) -> tuple[str, str]:
    docs = list(yaml.safe_load_all(VALID_YAML))
    doc = draw(st.sampled_from(docs))
    target: Any = doc
    path = draw(
        st.sampled_from([("label",), ("screens", 0, "fields", 0, "min_value"), ("stages", 0, "key"), ()])
    )
    try:
        for part in path[:-1]:
            target = target[part]
        if path:
            target[path[-1]] = draw(_hostile_json_value())
    except (IndexError, KeyError, TypeError):
        pass  # the path is not in this document: it stays valid
    text = json.dumps(docs, allow_nan=True, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = (
            text[:cut]
            + draw(st.sampled_from([*BREAKERS, "NaN", "Infinity", "\\ud800", '"\\u0000"']))
            + text[cut:]
        )
    return "fuzz.json", text


def deep(n: int) -> tuple[str, str]:
    return "deep.yaml", "kind: orchestration\nlabel: " + "[" * n + "]" * n + "\n"


files = yaml_files() | json_files() | st.integers(10, 3000).map(deep)


@pytest.fixture
def uploader(client, personas):  # type: ignore[no-untyped-def]
    client.force_login(personas.admin)
    return client


def _stored() -> int:
    return OrchestrationVersion.objects.count() + FlowVersion.objects.count()


@pytest.mark.django_db
@settings(FUZZ, max_examples=25)
@given(file=files)
def test_any_definition_file_is_imported_or_refused_with_located_messages(uploader, file):
    name, text = file
    before = _stored()
    body = text.encode("utf-8", "surrogatepass")
    with at_most(20):
        response = uploader.post(
            "/monitor/orchestrations/upload/", {"file": SimpleUploadedFile(name, body), "activate": "on"}
        )
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        event("imported")
        assert _stored() > before or "unchanged" in str(list(response.wsgi_request._messages))
        return
    event("refused")
    assert _stored() == before  # nothing half-stored
    errors = response.context["errors"]
    form = response.context["form"]
    if not errors:  # refused by the form (not UTF-8, binary, empty): said next to the field
        assert form.errors["file"], response.content[:500]
        return
    for err in errors:
        assert err.message.strip()
        # Where: a path inside the document, or a line in the text it could not parse.
        assert err.source == name
        assert err.path or "line" in err.message, err


@pytest.mark.parametrize("scalar", ["!!int x", "!!float x", "!!timestamp 2026-13-45"])
def test_a_tag_its_value_cannot_be_built_as_is_a_parse_error_not_a_crash(scalar):
    """Found by the fuzz test: PyYAML's constructors raise ValueError for these (a 500 before)."""
    docs, errors = load_text(VALID_YAML.replace("    label: Amount\n", f"    label: {scalar}\n"), "f.yaml")
    assert docs == []
    [err] = errors
    assert err.source == "f.yaml" and err.message.startswith("cannot parse: ValueError")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "scalar,where,says",
    [
        (".nan", "screens[0].fields[0].min_value", "finite"),
        (".inf", "screens[0].fields[0].min_value", "finite"),
        ("1e400", "screens[0].fields[0].min_value", "finite"),  # a string pydantic makes infinite
        ('"a\\0b"', "screens[0].fields[0].label", "NUL"),
        ('"\\ud800"', "screens[0].fields[0].label", "surrogate"),
        ("!!binary AAAA", "screens[0].fields[0].label", "bytes"),
    ],
)
def test_values_a_json_column_cannot_hold_are_refused_with_their_location(uploader, scalar, where, says):
    """Each of these was a 500 (DataError on INSERT) before: PostgreSQL's jsonb refuses them."""
    key = "min_value" if "min_value" in where else "label"
    text = VALID_YAML.replace(
        "    min_value: 1\n" if key == "min_value" else "    label: Amount\n", f"    {key}: {scalar}\n"
    )
    response = uploader.post(
        "/monitor/orchestrations/upload/",
        {"file": SimpleUploadedFile("f.yaml", text.encode("utf-8", "surrogatepass"))},
    )
    assert response.status_code == 200
    [err] = [e for e in response.context["errors"] if e.path == where]
    assert says in err.message
    assert _stored() == 0


@pytest.mark.django_db
def test_the_import_service_refuses_the_same_values_before_storing_anything(personas):
    docs, errors = load_text(VALID_YAML.replace("min_value: 1", "min_value: .nan"), "f.yaml")
    assert errors == []
    with pytest.raises(DefinitionsInvalid) as exc:
        definitions_import(items=[("f.yaml", d) for d in docs])
    [err] = [e for e in exc.value.errors if e.source == "f.yaml" and e.path.startswith("screens")]
    assert err.path == "screens[0].fields[0].min_value" and "finite" in err.message
    assert _stored() == 0


# --- (b) expressions: escapes and exhaustion ------------------------------------------------------

ESCAPES = [
    "''.__class__", "record.__class__.__mro__", "().__class__.__bases__[0].__subclasses__()",
    "record|attr('__class__')", "record|attr('_' ~ '_class_' ~ '_')", "record|attr('mro')",
    "'{0.__class__}'.format(record)", "'{0[name]}'.format(record)", "'{0.name.upper}'.format(record)",
    "'%s'|format(record)", "'{}'.format", "record.items", "record.name.format_map",
    "lipsum", "cycler", "joiner", "namespace", "range", "self", "config", "request", "loop",
    "now.__self__", "now.__globals__", "days.__code__", "now|attr('__globals__')",
    "record.name.__len__", "'a'.mro", "record.gi_frame", "record.func_globals", "now().tzinfo",
    "today().replace", "(days(1)).total_seconds()",
]  # fmt: skip
EXHAUSTION = [
    "9 ** 9 ** 9", "10 ** 1000000", "2 ** 2 ** 40", "'a' * 10**9", "[1] * 10**9", "(1,) * 10**9",
    "'a'.ljust(10**9)", "'a'.center(10**9)", "'a'.zfill(10**9)", "'a\\tb'.expandtabs(10**9)",
    "'a'|center(10**9)", "'x'|indent(10**9)", "[1]|batch(10**9)|list", "'a b'|wordwrap(1, true, 'x' * 10**6)",
    "'%999999999d' % 1", "'%.999999999f' % 1", "'%*d' % (10**9, 1)", "'%999999999d'|format(1)",
    "'{:>999999999}'.format(1)", "'{:{}}'.format(1, 10**9)", "'{0:0999999999}'.format(1)",
    "'x,'|replace(',', 'x' * 1000)|replace('x', 'x' * 1000)|replace('x', 'x' * 1000)",
    "'%s' % (9 ** 9999)", "(9 ** 9999)|string", "days(10**12)", "hours(1e308)", "1e308 * 10",
]  # fmt: skip
JOINERS = [" ~ ", " + ", " and ", " or ", "|default(", "[", ".", " if true else ", "|string ~ ", ", "]


@st.composite
def hostile_expressions(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["one", "combined", "nested", "wrapped"]))
    if shape == "nested":
        n = draw(st.integers(50, 5000))
        opener, closer = draw(
            st.sampled_from([("(", ")"), ("[", "]"), ("{'a': ", "}"), ("not ", ""), ("-", "")])
        )
        return opener * n + "1" + closer * n
    parts = [draw(st.sampled_from(ESCAPES + EXHAUSTION)) for _ in range(draw(st.integers(1, 3)))]
    text = parts[0] if shape == "one" else draw(st.sampled_from(JOINERS)).join(parts)
    if shape == "wrapped":
        text = (
            "(" + text + ")|" + draw(st.sampled_from(["string", "list", "length", "join", "first", "tojson"]))
        )
    return text


CTX: dict[str, Any] = {
    "record": {"name": "ACME", "amount": 12, "tags": ["a"]},
    "vars": {"n": 3},
    "steps": {},
    "inputs": {},
    "outputs": {},
    "run": {"id": 1},
}
LEAKS = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    types.CodeType,
)


def _assert_no_leak(value: Any) -> None:
    """A result is data: never a class, function, method, module or code object."""
    assert not isinstance(value, LEAKS), repr(value)[:200]
    assert "<class " not in repr(value)[:10_000] and "<function " not in repr(value)[:10_000]
    if isinstance(value, str):
        assert len(value) <= expressions.MAX_RESULT_CHARS


@FUZZ
@given(source=hostile_expressions())
def test_sandbox_escapes_and_resource_exhaustion_end_in_expression_error(source):
    outcomes = []
    with at_most(10):
        for attempt in (
            lambda: expressions.evaluate(source, CTX),
            lambda: expressions.render("{{ " + source + " }}", CTX),
            lambda: expressions.render("<p>{{ " + source + " }}</p>", CTX, html=True),
        ):
            try:
                _assert_no_leak(attempt())
                outcomes.append("value")
            except expressions.ExpressionError as exc:
                assert str(exc).strip()
                outcomes.append("refused")
    event(outcomes[0])


@pytest.mark.parametrize(
    "source",
    [
        "'%999999999d' % 1",
        "'%.999999999f' % 1",
        "'%999999999d'|format(1)",
        "'{:>999999999}'.format(1)",
        "'{0:0999999999}'.format(1)",
        "'{name:>999999999}'.format_map(record)",
    ],
)
def test_format_widths_are_refused_before_the_text_is_built(source):
    """These built the whole padded string (a gigabyte) before the result-size check."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(expressions.ExpressionError, match="width or precision above"):
            expressions.evaluate(source, CTX)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize("source", ["-" * 300 + "1", "not " * 300 + "1", "1" + "+1" * 300])
def test_nesting_the_parser_accepts_but_the_optimizer_cannot_is_refused(source):
    """Found by the fuzz test: Jinja parsed these, then its optimizer ran out of stack (a 500)."""
    with pytest.raises(expressions.ExpressionError, match="nested too deeply"):
        expressions.evaluate(source, CTX)


@pytest.mark.parametrize(
    "source,result",
    [
        ("'%5d' % 3", "    3"),
        ("'%.2f'|format(1.234)", "1.23"),
        ("'{:>4}'.format('a')", "   a"),
        ("10 % 3", 1),
    ],
)
def test_ordinary_formatting_still_works(source, result):
    assert expressions.evaluate(source, CTX) == result


# --- (c) Work Guide screen posts ------------------------------------------------------------------

FIELD_NAMES = [
    "amount",
    "kind",
    "approved",
    "reason",
    "AMOUNT",
    "amount ",
    "nope",
    "__class__",
    "f-amount",
    "",
]
huge = st.sampled_from(["x" * 100_000, "9" * 5000, "1" * 400])
field_values = (
    st.text(max_size=20)
    | huge
    | st.sampled_from(
        ["0", "-1", "1e400", "NaN", "Infinity", "1.5", "12,5", "repair", "replace", "on", "\x00", "\ud800"]
    )
    | st.lists(st.text(max_size=5), max_size=3)
)
screens = st.sampled_from(
    ["0", "1", "2", "-1", "99", "", "x", "²", "\u0663", "9" * 5000, "0.5", " 1"]
) | st.lists(st.sampled_from(["0", "1"]), min_size=2, max_size=2)
actions = st.sampled_from(["next", "back", "finish", "save", "", "NEXT", "delete", "x" * 1000]) | st.lists(
    st.sampled_from(["next", "finish"]), min_size=2, max_size=2
)


@st.composite
def screen_posts(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["screen"] = draw(screens)
    if draw(st.booleans()):
        data["action"] = draw(actions)
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=6))
        data[draw(st.sampled_from(["f-", "", "f-f-"])) + name] = draw(field_values)
    return data


def _sendable(value: Any) -> Any:
    """The test client encodes the body as UTF-8: a lone surrogate is sent as what a browser
    would send for it (U+FFFD); everything else as is."""
    if isinstance(value, list):
        return [_sendable(v) for v in value]
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value


@pytest.fixture
def guide(client, personas):  # type: ignore[no-untyped-def]
    grant(personas.alice, *RECORD_PERMS)
    define()
    client.force_login(personas.alice)
    return client


@pytest.mark.django_db
@settings(FUZZ, max_examples=30)
@given(data=screen_posts(), htmx=st.booleans(), wrong_item=st.booleans())
def test_any_screen_post_is_answered_and_loses_nothing(guide, personas, data, htmx, wrong_item):
    _case, run = start()
    item = item_of(run)
    target = item.pk + 10_000 if wrong_item else item.pk
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    body = {k: _sendable(v) for k, v in data.items()}
    response = guide.post(f"/work-items/{target}/screen", body, **extra)
    assert response.status_code in (200, 302, 404), response.status_code
    item.refresh_from_db()
    if wrong_item:
        assert response.status_code == 404
    if item.status == WorkItemStatus.COMPLETED:
        event("completed")  # a post that happened to be valid: fine, nothing more to check
        return
    event(f"answered {response.status_code}")
    assert item.status == WorkItemStatus.ASSIGNED and item.completed_by is None
    # What was typed into a field of the posted screen is in the draft, as typed (stripped).
    draft = WorkItemDraft.objects.filter(item=item, user=personas.alice).first()
    screen = str(data.get("screen", ""))
    action = data.get("action")
    sent_to_screen = (
        screen in ("0", "1") and isinstance(action, str) and action in {"next", "back", "finish", "save"}
    )
    if sent_to_screen and not wrong_item:
        fields = ["amount", "kind"] if screen == "0" else ["reason"]
        typed = {n: body[f"f-{n}"] for n in fields if isinstance(body.get(f"f-{n}"), str)}
        for name, value in typed.items():
            if "\x00" in value:
                continue  # refused as a whole (see the test below), nothing stored
            assert draft is not None, f"typed {name!r} was dropped"
            assert draft.values.get(name) == value.strip(), name
    # A valid completion afterwards still works, whatever came before.
    _complete_properly(guide, item)


def _complete_properly(client: Any, item: WorkItem) -> None:
    client.post(
        f"/work-items/{item.pk}/screen", {"screen": 0, "action": "next", "f-amount": "12", "f-kind": "repair"}
    )
    client.post(f"/work-items/{item.pk}/screen", {"screen": 1, "action": "finish", "f-reason": "fine"})
    item.refresh_from_db()
    assert item.status == WorkItemStatus.COMPLETED
    assert item.outputs["reason"] == "fine"


@pytest.mark.django_db
@pytest.mark.parametrize("screen", ["²", "9" * 5000, "\u0661"])
def test_a_screen_number_python_cannot_read_shows_the_item_as_it_stands(guide, screen):
    """str.isdigit() is true for '²' and for 5000 digits, and int() then fails: was a 500."""
    _case, run = start()
    item = item_of(run)
    response = guide.post(
        f"/work-items/{item.pk}/screen",
        {"screen": screen, "action": "next", "f-amount": "5"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert WorkItem.objects.get(pk=item.pk).status == WorkItemStatus.ASSIGNED
    _complete_properly(guide, item)


@pytest.mark.django_db
def test_a_nul_character_in_a_field_is_refused_next_to_it_and_the_rest_is_kept(guide, personas):
    """A NUL cannot be stored in the draft (jsonb): the post was a 500 and lost everything."""
    _case, run = start()
    item = item_of(run)
    response = guide.post(
        f"/work-items/{item.pk}/screen",
        {"screen": 0, "action": "next", "f-amount": "12", "f-kind": "re\x00pair"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert field_error(response.content.decode(), item, "kind")  # refused, next to the field
    draft = WorkItemDraft.objects.get(item=item, user=personas.alice)
    assert draft.values["amount"] == "12" and draft.screen == 0
    assert item_of(run).pk == item.pk
    _complete_properly(guide, item)


@pytest.mark.parametrize(
    "source",
    [
        "'x,'|replace(',', 'x' * 1000)|replace('x', 'x' * 1000)|replace('x', 'x' * 1000)",
        "('x' * 1000).replace('x', 'y' * 1000)",
    ],
)
def test_a_replace_that_multiplies_the_length_is_refused_before_it_runs(source):
    """Found by the property above: three replaces built a gigabyte (render had no size check)."""
    for attempt in (
        lambda: expressions.evaluate(source, CTX),
        lambda: expressions.render("{{ " + source + " }}", CTX),
    ):
        with pytest.raises(expressions.ExpressionError, match="replace would be longer"):
            attempt()
    assert expressions.evaluate("'abc'|replace('b', 'BB')", CTX) == "aBBc"
