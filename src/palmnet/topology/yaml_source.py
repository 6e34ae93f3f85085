"""YAML 1.2 text -> plain Python data plus the line of every key and item.

ruamel.yaml in YAML 1.2 mode reads `2001:10:20:30:40:50:1:2` as a string; a
YAML 1.1 loader (PyYAML) reads it as a base-60 integer. The round-trip loader
also remembers where each key and list item was, which is what lets every
error name its line. The data is converted to plain dicts, lists, str and int
so that validation (strict pydantic) never sees ruamel's subclasses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from palmnet.errors import InputError

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Source:
    """Parsed data and a map from key path to its 1-based line."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line(self, path: Path_) -> int:
        """Line of `path`, or of its nearest ancestor the file names (a missing key)."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return 1


def format_path(path: Path_) -> str:
    """`("nodes", "up", "ipv6", 0)` -> `nodes.up.ipv6[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


def parse_yaml(text: str, filename: str) -> Source:
    """Parse `text`; a syntax error becomes an `InputError` at its line."""
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    try:
        raw = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None  # ruamel marks are 0-based
        message = f"invalid YAML: {exc.problem or exc.context}"
        if isinstance(exc, DuplicateKeyError):
            # ruamel's text repeats both values and a hint about its own API.
            key = re.search(r'duplicate key "([^"]*)"', str(exc.problem))
            message = f"invalid YAML: duplicate key '{key.group(1) if key else '?'}'"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise InputError(message, file=filename, line=line) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise InputError(
            f"invalid YAML: character #x{exc.character:04x} is not allowed ({exc.reason})",
            file=filename,
            line=line,
        ) from None
    except YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"invalid YAML: {first}", file=filename) from None
    lines: dict[Path_, int] = {(): 1}
    return Source(_plain(raw, (), lines), lines)


def _plain(node: Any, path: Path_, lines: dict[Path_, int]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            # Keys become strings: a network named `1` is still a name.
            name = str(key)
            here = (*path, name)
            lines[here] = node.lc.key(key)[0] + 1
            out[name] = _plain(value, here, lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            here = (*path, index)
            lines[here] = node.lc.item(index)[0] + 1
            items.append(_plain(value, here, lines))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node
