"""pydantic `ValidationError` -> short `Problem`s at the file's lines.

pydantic's own message is a multi-line dump keyed by `loc` tuples; users need
`palm.yaml:9: nodes.alpine.interfaces.eth0: unknown key 'netwrok' (valid: ...)`.
The `loc` of each error is a key path into the parsed file, so the line comes
from the `Source` line map and the message is rewritten per error type. A
value that fits no branch of a union (`bfd: true` or `bfd: {interval: ...}`)
is one message naming what would be valid, never pydantic's branch names; a
value that has the shape of one branch gets that branch's own errors. An
unknown key lists the keys of the model at its path (found through the
fields' types, so `routes[0]` lists a route's keys), as the file writes them.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from palmnet.topology.describe import describe, shown
from palmnet.topology.limits import SHOWN_CHARS
from palmnet.topology.model import SUPPORTED_KINDS
from palmnet.topology.problems import Problem
from palmnet.topology.yaml_source import Path_, Source, format_path

M = TypeVar("M", bound=BaseModel)

_TYPE_WORDS = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
    "float_parsing": "a number",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
}
_BOUNDS = {
    "greater_than": ("gt", "more than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
# Branch names pydantic puts in `loc` for a union: types, model classes, `list[...]`.
_BRANCH = re.compile(r"bool|int|float|str|none|[A-Z]\w*|[\w-]+\[.*\]")


def validate(
    model: type[M], data: Any, prefix: Path_, source: Source, problems: list[Problem]
) -> M | None:
    """Validate `data` (found at `prefix` in the file) as `model`; on failure add problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _without_branches(exc.errors(include_url=False), data)
        # A misspelt key also leaves the right one missing: say it once.
        misspelt = {e["loc"][:-1] for e in errors if e["type"] == "extra_forbidden"}
        for error in errors:
            if error["type"] == "missing" and error["loc"][:-1] in misspelt:
                continue
            problems.append(_problem(model, error, prefix, source))
        return None


def _clean(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    """`loc` without union branch names, and where the first union was (or None)."""
    out: list[Any] = []
    union: tuple[Any, ...] | None = None
    here = data
    for part in loc:
        if part == "[key]":
            continue
        if _has(here, part):
            here = here[part]
        elif isinstance(part, str) and _BRANCH.fullmatch(part):
            union = tuple(out) if union is None else union
            continue
        else:
            here = None
        out.append(part)
    return tuple(out), union


def _has(value: Any, part: Any) -> bool:
    if isinstance(value, dict):
        return part in value
    return isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)


def _without_branches(errors: list[Any], data: Any) -> list[Any]:
    """Union errors merged: the errors inside the branch the value has the shape of,
    or one 'expected A or B' error at the union's key."""
    plain: list[Any] = []
    unions: dict[tuple[Any, ...], list[Any]] = {}
    for error in errors:
        loc, union = _clean(tuple(error["loc"]), data)
        error = {**error, "loc": loc}
        if union is None:
            plain.append(error)
        else:
            unions.setdefault(union, []).append(error)
    for where, group in unions.items():
        inside = [e for e in group if len(e["loc"]) > len(where)]
        if inside:
            plain += inside
            continue
        words = [_TYPE_WORDS.get(e["type"], "another value") for e in group]
        plain.append(
            {
                "type": "union",
                "loc": where,
                "input": group[0].get("input"),
                "msg": ", or ".join(dict.fromkeys(words)),
            }
        )
    return plain


def _model_at(model: type[BaseModel], parent: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the mapping at `parent` below `model`, found by following the
    fields' types (`routes[0]` -> RouteSpec, `routing.interfaces.eth0` ->
    RoutingInterfaceSpec); None where no model is (a mapping of free names)."""
    here: list[Any] = [model]
    for part in parent:
        here = [t for kind in here for t in _step(kind, part)]
    models = [t for t in here if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if models else None


def _step(kind: Any, part: Any) -> list[Any]:
    """The types one key or index below a value of type `kind` may have."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Annotated:
        return _step(args[0], part)
    if origin in (Union, UnionType):
        return [t for arg in args for t in _step(arg, part)]
    if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
        fields = kind.model_fields
        name = next((n for n, f in fields.items() if part in (n, f.alias)), None)
        return _unwrap(fields[name].annotation) if name is not None else []
    if origin is dict and isinstance(part, str):
        return _unwrap(args[1])
    if origin in (list, tuple) and isinstance(part, int):
        return _unwrap(args[0])
    return []


def _unwrap(kind: Any) -> list[Any]:
    """`X | None` and `Annotated[X, ...]` as the types a value may have."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Annotated:
        return _unwrap(args[0])
    if origin in (Union, UnionType):
        return [t for arg in args for t in _unwrap(arg)]
    return [kind]


def _unknown_key(model: type[BaseModel] | None, key: Any) -> str:
    """`unknown key 'x' (valid: ...)`: keys as the file writes them (an alias such as
    `security.nesting`, not the Python name), and the closest one if it is close."""
    if model is None:
        return f"unknown key {shown(key)}"
    keys = [f.alias or name for name, f in model.model_fields.items()]
    if not keys:
        return f"unknown key {shown(key)} (no keys are valid here yet)"
    close = get_close_matches(str(key), keys, n=1) if len(str(key)) <= SHOWN_CHARS else []
    guess = f", did you mean {close[0]!r}?" if close else ""
    return f"unknown key {shown(key)}{guess} (valid: {', '.join(keys)})"


def _problem(model: type[BaseModel], error: Any, prefix: Path_, source: Source) -> Problem:
    loc = tuple(error["loc"])
    path: Path_ = (*prefix, *loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        message = _unknown_key(_model_at(model, loc[:-1]), path[-1])
        return Problem(source.line(path), format_path(path[:-1]), message)
    if kind == "missing":
        return Problem(
            source.line(path[:-1]),
            format_path(path[:-1]),
            f"missing required key '{path[-1]}'",
        )
    line, key = source.line(path), format_path(path)
    if kind == "value_error" and "error" in ctx:
        return Problem(line, key, str(ctx["error"]))
    if kind == "literal_error" and not isinstance(value, str):
        return Problem(line, key, f"expected a string, got {describe(value)}")
    if kind == "literal_error":
        name = path[-1] if isinstance(path[-1], str) else "value"
        if name == "kind":
            valid = ", ".join(SUPPORTED_KINDS)
            return Problem(line, key, f"unknown kind {shown(value)} (supported: {valid})")
        expected = ctx.get("expected", "").replace("'", "")
        return Problem(line, key, f"unknown {name} {shown(value)} (valid: {expected})")
    if kind == "union":
        return Problem(line, key, f"expected {error['msg']}, got {describe(value)}")
    if kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {describe(value)}"
        if kind == "list_type" and isinstance(value, str):
            message += f"; write [{shown(value)[1:-1]}]" if len(value) <= 40 else ""
        return Problem(line, key, message)
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        bound = ctx.get(name)
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        return Problem(line, key, f"must be {words} {bound}, got {describe(value)}")
    return Problem(line, key, error["msg"])
