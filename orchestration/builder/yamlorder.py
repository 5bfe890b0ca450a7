"""Keys in the order a person writes them. A draft's documents are stored as JSON, and
PostgreSQL's jsonb keeps keys in its own order (shortest first): the YAML view and the download
put them back in the order of the definition models' fields (kind and api_name first, a step's
key before its kind, ...), whatever the document holds, valid or not."""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

from pydantic import BaseModel

from ..validation import KIND_MODELS


def _models(annotation: Any) -> tuple[type[BaseModel], ...]:
    """The pydantic models an annotation may hold (through lists, dicts, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (annotation,)
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models(arg))
    return tuple(dict.fromkeys(out))


@cache
def _fields(model: type[BaseModel]) -> tuple[tuple[str, tuple[type[BaseModel], ...]], ...]:
    """(name as written, the models its value may hold) per field, in declaration order."""
    return tuple((f.alias or name, _models(f.annotation)) for name, f in model.model_fields.items())


def _pick(value: dict[str, Any], models: tuple[type[BaseModel], ...]) -> type[BaseModel]:
    """The model a mapping is most likely of: a discriminator (`type`, `kind`) that matches, else
    the one sharing the most keys."""

    def score(m: type[BaseModel]) -> tuple[int, int]:
        names = {n for n, _ in _fields(m)}
        tag = 0
        for disc in ("type", "kind"):
            f = m.model_fields.get(disc)
            if f is not None and value.get(disc) in typing.get_args(f.annotation):
                tag = 1
        return tag, len(names & value.keys())

    return max(models, key=score)


def ordered(value: Any, models: tuple[type[BaseModel], ...] = ()) -> Any:
    """`value` with the keys of every mapping in field order (unknown keys last, as found)."""
    if isinstance(value, list):
        return [ordered(v, models) for v in value]
    if not isinstance(value, dict):
        return value
    if not models:
        kind = value.get("kind")
        models = (KIND_MODELS[kind],) if isinstance(kind, str) and kind in KIND_MODELS else ()
    if not models:
        return dict(value)
    fields = _fields(_pick(value, models))
    out = {name: ordered(value[name], inner) for name, inner in fields if name in value}
    out.update({k: v for k, v in value.items() if k not in out})
    if "kind" in out and "api_name" in out:  # a document: say what it is first
        out = {"kind": out.pop("kind"), "api_name": out.pop("api_name"), **out}
    return out
