"""How a message names a value the file gave: `string 'yes'`, `integer 12345`.

Users write YAML, not Python: `got integer 1` says more than `got int 1`, and
the value is shown so a misread (an address that became a number) is visible.
"""

from __future__ import annotations

from typing import Any

_WORDS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def describe(value: Any) -> str:
    """The YAML type word and a short repr of `value`, for 'expected X, got Y'."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    word = _WORDS.get(type(value))
    if word is None:
        word = "list" if isinstance(value, list) else "mapping"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{word} {text}"
