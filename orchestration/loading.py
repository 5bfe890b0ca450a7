"""Loading definition documents: YAML (or JSON) text and files into plain documents, with
duplicate keys, YAML booleans in disguise, deep nesting and alias bombs refused, every problem a
DefinitionError naming the file and where; then each document's structure (pydantic), with
pydantic's errors said the way an admin reads them. What the documents mean (references,
cycles, expressions) is validation.py's."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from .definitions import (
    AutolaunchedFlow,
    BusinessCalendar,
    Document,
    EvaluationFlow,
    Orchestration,
    ScreenFlow,
)

# The model of each kind of document.
KIND_MODELS: dict[str, type[BaseModel]] = {
    "orchestration": Orchestration,
    "screen_flow": ScreenFlow,
    "autolaunched_flow": AutolaunchedFlow,
    "evaluation_flow": EvaluationFlow,
    "business_calendar": BusinessCalendar,
}


@dataclass(frozen=True)
class DefinitionError:
    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        at = self.path or "(document)"
        return f"{where}{at}: {self.message}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)

# YAML 1.1 reads on/off/yes/no as booleans, so `start: {on: create}` arrived with the key True.
# Definitions follow YAML 1.2 (and JSON): only true/false are booleans.
_BOOL_TAG = "tag:yaml.org,2002:bool"
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_text(text: str, source: str) -> tuple[list[dict[str, Any]], list[DefinitionError]]:
    """Parse YAML or JSON text holding one or more documents (YAML `---` separated)."""
    errors: list[DefinitionError] = []
    docs: list[dict[str, Any]] = []
    deep = _deep_line(text, MAX_BRACKET_DEPTH)
    if deep:
        # Refused before parsing: the parsers recurse per level and take seconds to reach
        # Python's recursion limit on a few thousand brackets.
        return [], [DefinitionError(source, "", f"cannot parse: nested too deeply (near line {deep})")]
    try:
        if source.endswith(".json"):
            loaded = json.loads(text)
            items = loaded if isinstance(loaded, list) else [loaded]
        else:
            # A named stream: PyYAML's messages then say the file, not "<unicode string>".
            stream = io.StringIO(text)
            stream.name = source or "the document"  # type: ignore[misc]
            items = [d for d in yaml.load_all(stream, Loader=_UniqueKeyLoader) if d is not None]
    except RecursionError:
        # The parsers recurse per level: say where the nesting got too deep, not just that
        # Python's stack ran out.
        line = _deep_line(text, 0) or 1
        return [], [DefinitionError(source, "", f"cannot parse: nested too deeply (near line {line})")]
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        message = f"cannot parse: {exc}"
        if "'\\t'" in message:
            message += "\n(YAML indents with spaces only: replace the tab with spaces)"
        return [], [DefinitionError(source, "", message)]
    except (ValueError, TypeError) as exc:
        # PyYAML's constructors raise these for a tagged value they cannot build
        # (`!!int x`, an impossible timestamp): still a parse error of the file.
        return [], [DefinitionError(source, "", f"cannot parse: {type(exc).__name__}: {exc}")]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(DefinitionError(source, f"document {i + 1}", "must be a mapping"))
            continue
        docs.append(item)
    return docs, errors


MAX_BRACKET_DEPTH = 100  # no definition needs more than a handful
DEFAULT_MAX_BYTES = 1024 * 1024


def max_document_bytes() -> int:
    """The largest definitions file taken, by the upload page and the commands alike
    (ORCHESTRATION_DEFINITION_MAX_BYTES, 1 MiB unless set)."""
    from django.conf import settings

    return int(getattr(settings, "ORCHESTRATION_DEFINITION_MAX_BYTES", DEFAULT_MAX_BYTES))


def size_label(n: int) -> str:
    """1048576 -> "1 MB", 5242880 -> "5 MB", 1536 -> "1.5 KB" (binary units, as files show)."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def too_large(size: int) -> str | None:
    """The message for a definitions file over the limit, or None."""
    limit = max_document_bytes()
    if size <= limit:
        return None
    return (
        f"the file is {size_label(size)}, larger than the {size_label(limit)} limit "
        "(ORCHESTRATION_DEFINITION_MAX_BYTES)"
    )


MAX_NODES = 50_000  # values in one document, YAML aliases expanded


def _deep_line(text: str, limit: int) -> int:
    """The first line where brackets nest more than `limit` deep, or 0 (quotes are not
    tracked: a string full of brackets may be refused, which no definition needs either)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            depth += (char in "[{") - (char in "]}")
            if depth > limit:
                return number
    return 0


def load_paths(paths: Iterable[str | Path]) -> tuple[list[tuple[str, dict[str, Any]]], list[DefinitionError]]:
    found: list[tuple[str, dict[str, Any]]] = []
    errors: list[DefinitionError] = []
    for p in paths:
        path = Path(p)
        files = (
            sorted(f for f in path.rglob("*") if f.suffix in {".yaml", ".yml", ".json"})
            if path.is_dir()
            else [path]
        )
        for f in files:
            try:
                big = too_large(f.stat().st_size)
                if big:
                    errors.append(DefinitionError(str(f), "", big))
                    continue
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(DefinitionError(str(f), "", f"cannot read: {exc}"))
                continue
            docs, errs = load_text(text, str(f))
            found.extend((str(f), d) for d in docs)
            errors.extend(errs)
    return found, errors


def _loc(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before"} or str(part).startswith(
            ("function-", "union[", "tagged-union[")
        ):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_errors(source: str, exc: ValidationError) -> list[DefinitionError]:
    out = []
    for err in exc.errors(include_url=False):
        raw_loc = err["loc"]
        if len(raw_loc) >= 4 and raw_loc[0] == "stages" and raw_loc[2] == "next":
            # `next` is a stage key or a decision: pydantic reports a failure for each branch
            # of the union. Keep the one that matches what was written.
            branch, is_mapping = raw_loc[3], isinstance(err["input"], dict)
            if branch == "str" and is_mapping:
                continue  # a decision was written: its own errors say what is wrong
            if branch == "Decision" and not is_mapping and len(raw_loc) == 4:
                continue
            if branch == "str":
                err = {**err, "msg": "must be a stage key, 'end', or a decision (outcomes and default)"}
        loc = [p for p in raw_loc if p not in KIND_MODELS]
        # Discriminated unions add the tag to the path: drop it (it is not in the document).
        loc = [
            p
            for p in loc
            if not (isinstance(p, str) and p in {"record", "autolaunched"} and loc and p != loc[-1])
        ]
        loc = [
            p
            for p in loc
            if p
            not in {
                "update_record",
                "create_record",
                "send_email",
                "http",
                "set_outputs",
                "call",
                "str",
                "Decision",
            }
        ]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "string_pattern_mismatch":
            msg = "must be lower_snake_case: a letter, then letters, digits or _ (max 80)"
        out.append(DefinitionError(source, _loc(loc), msg))
    return out


_ADAPTER: TypeAdapter[Any] = TypeAdapter(Document)


def _unstorable(raw: Any) -> tuple[str, str] | None:
    """Where the first value PostgreSQL's jsonb cannot store is, and why; None if there is none.

    A parsed document is stored as JSON: a NUL character, a lone surrogate (`"\\ud800"` in YAML
    or JSON), a float that is not finite (YAML `.nan`, `.inf`) or a YAML-only type (`!!binary`,
    a date, a set) would make the INSERT fail: a 500 instead of a message."""
    # Paths are linked (parent, key) pairs, written out only for the error: copying a path per
    # value would be quadratic in the depth.
    stack: list[tuple[Any, Any]] = [(None, raw)]
    visited = 0
    while stack:
        path, value = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            # A YAML alias that contains itself (`a: &x [*x]`) never ends, and nested aliases
            # ("billion laughs") multiply: both stop here instead of holding the request.
            return "(document)", f"more than {MAX_NODES} values once YAML aliases are expanded"
        if isinstance(value, str):
            if "\x00" in value:
                return _path_text(path), "text cannot contain NUL (\\x00) characters"
            if not _is_utf8(value):
                return _path_text(path), "text cannot contain lone surrogates (\\ud800-\\udfff)"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return _path_text(path), f"a number must be finite (got {value!r})"
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and ("\x00" in k or not _is_utf8(k)):
                    return _path_text(path), "a key cannot contain NUL characters or lone surrogates"
                stack.append(((path, k), v))
        elif isinstance(value, list):
            stack.extend(((path, i), v) for i, v in enumerate(value))
        elif value is not None and not isinstance(value, bool | int):
            return _path_text(
                path
            ), f"a {type(value).__name__} value is not allowed here (quote it to make it text)"
    return None


def _path_text(path: Any) -> str:
    parts: list[Any] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return _loc(reversed(parts)) or "(document)"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_document(source: str, raw: dict[str, Any]) -> tuple[Any | None, list[DefinitionError]]:
    bad = _unstorable(raw)
    if bad is not None:
        return None, [DefinitionError(source, *bad)]
    kind = raw.get("kind")
    # `kind` may be any YAML value (a list is unhashable): compare only strings.
    if not isinstance(kind, str) or kind not in KIND_MODELS:
        allowed = ", ".join(KIND_MODELS)
        return None, [DefinitionError(source, "kind", f"must be one of {allowed} (got {kind!r})")]
    try:
        return KIND_MODELS[kind].model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_errors(source, exc)
    except RecursionError:
        return None, [DefinitionError(source, "", "document nested too deeply")]
