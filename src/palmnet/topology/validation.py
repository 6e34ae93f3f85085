"""pydantic `ValidationError` -> short `Problem`s at the file's lines.

pydantic's own message is a multi-line dump keyed by `loc` tuples; users need
`palm.yaml:9: nodes.alpine.interfaces.eth0: unknown key 'netwrok' (valid: ...)`.
The `loc` of each error is a key path into the parsed file, so the line comes
from the `Source` line map and the message is rewritten per error type. A
value that fits no branch of a union (`bfd: true` or `bfd: {interval: ...}`)
is one message naming what would be valid, never pydantic's branch names; a
value that has the shape of one branch gets that branch's own errors.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from palmnet.topology.describe import describe, shown
from palmnet.topology.model import SUPPORTED_KINDS, InterfaceSpec, Nat64Spec
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


def _model_at(model: type[BaseModel], parent: tuple[Any, ...]) -> type[BaseModel]:
    # Nested models below a profile or node entry: interfaces, nat64.
    if len(parent) >= 2 and parent[-2] == "interfaces":
        return InterfaceSpec
    if parent[-1:] == ("nat64",):
        return Nat64Spec
    return model


def _problem(model: type[BaseModel], error: Any, prefix: Path_, source: Source) -> Problem:
    loc = tuple(error["loc"])
    path: Path_ = (*prefix, *loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        valid = ", ".join(_model_at(model, loc[:-1]).model_fields)
        hint = f"valid: {valid}" if valid else "no keys are valid here yet"
        return Problem(
            source.line(path), format_path(path[:-1]), f"unknown key {shown(path[-1])} ({hint})"
        )
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
            return Problem(line, key, f"unknown kind {value!r} (supported: {valid})")
        expected = ctx.get("expected", "").replace("'", "")
        return Problem(line, key, f"unknown {name} {value!r} (valid: {expected})")
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
