"""YAML 1.2 core-schema scalars (YAML 1.2.2 §10.3.2): text -> str, int, float, bool, None.

The lab file is read as YAML 1.2 (DESIGN.md §1): `2001:10:20:30:40:50:1:2` is a
string, `yes` is a string, `010` is ten. ruamel.yaml's own "1.2" resolver still
reads `0b101`, `1_000` and dates as numbers and timestamps, so the plain scalars
are resolved here by the core schema's table, which is short. A tag the file
writes explicitly (`!!int "12"`) must be one of the five; `!` alone means string.
"""

from __future__ import annotations

import math
import re
from typing import Any

from palmnet.topology.limits import MAX_NUMBER_DIGITS

CORE_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {CORE_TAG + t for t in ("str", "int", "float", "bool", "null")}
MAPPING_TAGS = {None, "!", CORE_TAG + "map"}
SEQUENCE_TAGS = {None, "!", CORE_TAG + "seq"}
MERGE_KEY = "<<"

_NULL = re.compile(r"null|Null|NULL|~|")
_TRUE = re.compile(r"true|True|TRUE")
_FALSE = re.compile(r"false|False|FALSE")
_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o([0-7]+)")
_INT16 = re.compile(r"0x([0-9a-fA-F]+)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"([-+]?)\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")


class ScalarError(ValueError):
    """A scalar the core schema cannot read as its tag says (the message says why)."""


def _int(text: str) -> int | None:
    for pattern, base in ((_INT10, 10), (_INT8, 8), (_INT16, 16)):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        digits = match.group(1) if match.groups() else text.lstrip("+-")
        if len(digits) > MAX_NUMBER_DIGITS:
            raise ScalarError(
                f"a number of {len(digits)} digits is too long (at most {MAX_NUMBER_DIGITS})"
            )
        return int(match.group(1), base) if match.groups() else int(text)
    return None


def _float(text: str) -> float | None:
    if _FLOAT.fullmatch(text):
        return float(text)
    match = _INF.fullmatch(text)
    if match:
        return -math.inf if match.group(1) == "-" else math.inf
    return math.nan if _NAN.fullmatch(text) else None


def _bool(text: str) -> bool | None:
    if _TRUE.fullmatch(text):
        return True
    return False if _FALSE.fullmatch(text) else None


def plain(text: str) -> Any:
    """An untagged plain scalar: null, bool, int, float or else a string."""
    if _NULL.fullmatch(text):
        return None
    for read in (_bool, _int, _float):
        value = read(text)
        if value is not None:
            return value
    return text


def tagged(tag: str, text: str) -> Any:
    """A scalar with an explicit core tag (`!!int "12"`); ScalarError if it is not one."""
    kind = tag.removeprefix(CORE_TAG)
    if kind == "str":
        return text
    if kind == "null":
        if _NULL.fullmatch(text):
            return None
        raise ScalarError(f"!!null takes null or ~, not {text[:20]!r}")
    value = {"int": _int, "float": _float, "bool": _bool}[kind](text)
    if kind == "float" and value is None:
        integer = _int(text)
        value = float(integer) if integer is not None else None
    if value is None:
        raise ScalarError(f"!!{kind} cannot read {text[:20]!r}")
    return value
