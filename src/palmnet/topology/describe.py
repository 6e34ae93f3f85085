"""How a message names a value the file gave: `string 'yes'`, `integer 12345`.

Users write YAML, not Python: `got integer 1` says more than `got int 1`, and
the value is shown so a misread (an address that became a number) is visible.
A value is never echoed whole: a 5,000-character string is cut and its length
said, and a deep or aliased structure is summarised by `reprlib`, whose work
is bounded however large the value is. A library's message that quotes the
value (ipaddress, dnspython) goes through `reason`, which cuts what it quotes.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

from palmnet.topology.limits import SHOWN_CHARS

_WORDS = {bool: "boolean", int: "integer", float: "number", str: "string"}
_REPR = reprlib.Repr()  # Python 3.11 takes no keyword arguments here
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 2, 4, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40
_QUOTED = re.compile(r"'([^'\n]*)'")


def shown(text: Any) -> str:
    """A name or value from the file, quoted, cut to `SHOWN_CHARS` with its length said."""
    if not isinstance(text, str):
        return _REPR.repr(text)
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(text):,} characters)"


def describe(value: Any) -> str:
    """The YAML type word and a short repr of `value`, for 'expected X, got Y'."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    word = _WORDS.get(type(value))
    if word is None:
        word = "list" if isinstance(value, list) else "mapping"
    if isinstance(value, str) and len(value) > 40:
        return f"{word} {value[:37]!r}... ({len(value):,} characters)"
    return f"{word} {_REPR.repr(value)}"


def reason(exc: object) -> str:
    """A library's own message about a value (ipaddress's 'At most 4 characters
    permitted in '...''), with each value it quotes cut as `shown` cuts it: the
    library repeats the whole value, however long."""
    text = _QUOTED.sub(
        lambda m: shown(m.group(1)) if len(m.group(0)) > SHOWN_CHARS else m.group(0), str(exc)
    )
    limit = 4 * SHOWN_CHARS  # a message of several quoted values, each cut
    return text if len(text) <= limit else text[:limit] + "..."
