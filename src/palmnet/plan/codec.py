"""A plan as JSON and back, so a running lab keeps the plan it was built from.

`up` plans the file once and stores the result in the lab's journal; every
later verb (`ls`, `exec`, the toolbox) reads it back instead of re-reading
and re-planning the file. JSON rather than pickle: it survives an upgrade of
palmnet that keeps the fields, and a person can read it (`sqlite3 journal.sqlite
"select value from meta where key='plan'"`).

The plan is frozen dataclasses of a few value types (str, int, float, bool,
None, `ipaddress` objects, tuples, nested dataclasses), so one small walker
over the field types does both directions. pydantic would do it too, but its
import alone costs more than `palmnet exec` may take (issue 15).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from palmnet.plan.model import Plan

_IP_PARSERS: dict[Any, Any] = {
    ipaddress.IPv6Interface: ipaddress.IPv6Interface,
    ipaddress.IPv4Interface: ipaddress.IPv4Interface,
    ipaddress.IPv6Network: ipaddress.IPv6Network,
    ipaddress.IPv4Network: ipaddress.IPv4Network,
    ipaddress.IPv6Address: ipaddress.IPv6Address,
    ipaddress.IPv4Address: ipaddress.IPv4Address,
}
# a union of the two families: the family is in the text
_IP_ANY: dict[str, Callable[[str], Any]] = {
    "Interface": ipaddress.ip_interface,
    "Network": ipaddress.ip_network,
    "Address": ipaddress.ip_address,
}


def encode(value: Any) -> Any:
    """JSON-ready data of a plan (or any part of one)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if type(value) in _IP_PARSERS:
        return str(value)
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _union(args: tuple[Any, ...], value: Any) -> Any:
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) == 1:
        return decode(kinds[0], value)
    if all(a in _IP_PARSERS for a in kinds):
        suffix = next(k for k in _IP_ANY if kinds[0].__name__.endswith(k))
        return _IP_ANY[suffix](value)
    for kind in kinds:  # e.g. a tuple or None: the first that fits the JSON type
        if isinstance(value, list) and typing.get_origin(kind) is tuple:
            return decode(kind, value)
        if kind in (str, int, float, bool) and isinstance(value, kind):
            return value
    raise ValueError(f"cannot decode {value!r} as {args}")


def decode(tp: Any, value: Any) -> Any:
    """The value of type `tp` that `encode` turned into `value`."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(tp), value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in value)
        return tuple(decode(a, v) for a, v in zip(args, value, strict=True))
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)  # type: ignore[arg-type]
        cls: Any = tp  # a dataclass type, called with its decoded fields
        return cls(**{k: decode(hints[k], v) for k, v in value.items() if k in hints})
    if tp in _IP_PARSERS:
        return _IP_PARSERS[tp](value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def plan_to_json(plan: Plan) -> str:
    return json.dumps(encode(plan), separators=(",", ":"))


def plan_from_json(text: str) -> Plan:
    plan = decode(Plan, json.loads(text))
    assert isinstance(plan, Plan)
    return plan
