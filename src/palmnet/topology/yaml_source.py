"""YAML 1.2 text -> plain Python data plus the line of every key and item.

ruamel.yaml in YAML 1.2 mode reads `2001:10:20:30:40:50:1:2` as a string; a
YAML 1.1 loader (PyYAML) reads it as a base-60 integer. Only ruamel's parser
is used: its events carry the line of each key and list item, which is what
lets every error name its line, and yaml_build.py turns them into plain dicts,
lists, str, int, float, bool and None (strict pydantic never sees ruamel's
subclasses), under the limits of limits.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from palmnet.errors import InputError
from palmnet.topology.describe import reason
from palmnet.topology.yaml_build import Path_, YamlBuilder, format_path

__all__ = ["Path_", "Source", "format_path", "parse_yaml"]


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


def parse_yaml(text: str, filename: str) -> Source:
    """Parse `text`; a syntax error, or anything a lab cannot use, is an `InputError`
    at its line (yaml_build.py says what is refused and why)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    try:
        data, lines = YamlBuilder(filename).build(yaml.parse(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None  # ruamel marks are 0-based
        message = f"invalid YAML: {reason(exc.problem or exc.context)}"
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
        raise InputError(f"invalid YAML: {reason(first)}", file=filename) from None
    return Source(data, lines)
