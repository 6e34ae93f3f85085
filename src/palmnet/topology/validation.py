"""pydantic `ValidationError` -> short `Problem`s at the file's lines.

pydantic's own message is a multi-line dump keyed by `loc` tuples; users need
`palm.yaml:9: nodes.alpine.interfaces.eth0: unknown key 'netwrok' (valid: ...)`.
The `loc` of each error is a key path into the parsed file, so the line comes
from the `Source` line map and the message is rewritten per error type.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from palmnet.topology.describe import describe
from palmnet.topology.model import SUPPORTED_KINDS, InterfaceSpec
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
}


def validate(
    model: type[M], data: Any, prefix: Path_, source: Source, problems: list[Problem]
) -> M | None:
    """Validate `data` (found at `prefix` in the file) as `model`; on failure add problems."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also leaves the right one missing: say it once.
        misspelt = {e["loc"][:-1] for e in errors if e["type"] == "extra_forbidden"}
        for error in errors:
            if error["type"] == "missing" and error["loc"][:-1] in misspelt:
                continue
            problems.append(_problem(model, error, prefix, source))
        return None


def _model_at(model: type[BaseModel], parent: tuple[Any, ...]) -> type[BaseModel]:
    # Interfaces are the only nested model below a profile or node entry.
    if len(parent) >= 2 and parent[-2] == "interfaces":
        return InterfaceSpec
    return model


def _problem(model: type[BaseModel], error: Any, prefix: Path_, source: Source) -> Problem:
    loc = tuple(part for part in error["loc"] if part != "[key]")
    path: Path_ = (*prefix, *loc)
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        valid = ", ".join(_model_at(model, loc[:-1]).model_fields)
        hint = f"valid: {valid}" if valid else "no keys are valid here yet"
        return Problem(
            source.line(path), format_path(path[:-1]), f"unknown key '{path[-1]}' ({hint})"
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
    if kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {describe(value)}"
        if kind == "list_type" and isinstance(value, str):
            message += f"; write [{value}]"
        return Problem(line, key, message)
    return Problem(line, key, error["msg"])
