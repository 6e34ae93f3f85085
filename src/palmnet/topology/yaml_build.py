"""YAML events -> plain dicts, lists and scalars, with the line of every key and item.

One pass over the parser's events with an explicit stack, so nothing here
recurses and every limit is checked as the events arrive, before the work:
nesting depth (`MAX_DEPTH`: 250 levels of `[` no longer reach Python's
recursion limit), and the size of the document with aliases expanded
(`MAX_YAML_NODES`: an alias is counted as the whole value it repeats, so an
alias bomb stops at its first alias over the limit; the value itself is shared,
never copied). What a lab file has no use for is refused with its line rather
than half-mapped: merge keys (`<<`), tags other than the core schema's, keys
that are lists or mappings, aliases of anchors not yet complete, a second
document, text that no file can hold (NUL, lone surrogates).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from palmnet.errors import InputError
from palmnet.topology.describe import shown
from palmnet.topology.limits import MAX_DEPTH, MAX_YAML_NODES
from palmnet.topology.yaml_scalars import (
    CORE_TAG,
    MAPPING_TAGS,
    MERGE_KEY,
    SCALAR_TAGS,
    SEQUENCE_TAGS,
    ScalarError,
    plain,
    tagged,
)

Path_ = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"[^\x00-\x20\x7f-\U0010ffff'\"\[\]]{1,64}")


def format_path(path: Path_) -> str:
    """`("nodes", "up", "ipv6", 0)` -> `nodes.up.ipv6[0]`; a key that is not a plain
    name is quoted and cut (`nodes['rel\\n']`), so a message stays one honest line."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += ("." if text else "") + part
        else:
            text += f"[{shown(part)}]"
    return text


_BAD_CHAR = re.compile(r"[\x00\ud800-\udfff]")
_SUPPORTED = "palmnet reads mappings, lists, strings, numbers, true/false and null"


@dataclass
class _Node:
    """A value being built, or an anchored one: its size with aliases expanded and its
    depth (a scalar 0, a list or mapping one more than its deepest item)."""

    value: Any
    path: Path_
    size: int = 1
    depth: int = 0
    anchor: str | None = None
    key: tuple[str, int] | None = None  # a mapping's key waiting for its value
    first: dict[str, int] = field(default_factory=dict)  # a mapping's keys -> line


def _tag(tag: str | None) -> str:
    """A tag as the file wrote it: `!!omap`, `!foo` (cut if long)."""
    tag = tag or "!"
    short = "!!" + tag.removeprefix(CORE_TAG) if tag.startswith(CORE_TAG) else tag
    return repr(short if len(short) <= 40 else short[:37] + "...")


class YamlBuilder:
    """Builds one document; `build(events)` returns (data, lines)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[Path_, int] = {(): 1}
        self.anchors: dict[str, _Node] = {}
        self.stack: list[_Node] = []
        self.total = 0
        self.root: _Node | None = None
        self.documents = 0

    def fail(self, line: int, message: str, path: Path_ | None = None) -> InputError:
        key = format_path(path if path is not None else self._here())
        return InputError(message, file=self.filename, line=line, key=key or None)

    def build(self, events: Iterable[Any]) -> tuple[Any, dict[Path_, int]]:
        for event in events:
            line = event.start_mark.line + 1  # ruamel marks are 0-based
            if isinstance(event, DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise self.fail(line, "a lab file holds one YAML document, not several", ())
            elif isinstance(event, ScalarEvent):
                self._scalar(event, line)
            elif isinstance(event, AliasEvent):
                self._alias(event, line)
            elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                self._start(event, line)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                self._end()
        return (self.root.value if self.root is not None else None), self.lines

    # -- where we are ------------------------------------------------------------------
    def _here(self) -> Path_:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, dict):
            return (*top.path, top.key[0]) if top.key is not None else top.path
        return (*top.path, len(top.value))

    def _expecting_key(self) -> bool:
        return (
            bool(self.stack) and isinstance(self.stack[-1].value, dict) and not self.stack[-1].key
        )

    # -- events --------------------------------------------------------------------------
    def _count(self, size: int, depth: int, line: int) -> None:
        self.total += size
        if self.total > MAX_YAML_NODES:
            raise self.fail(
                line,
                f"the file expands to more than {MAX_YAML_NODES:,} YAML values with its "
                f"aliases repeated (the limit is {MAX_YAML_NODES:,})",
            )
        if len(self.stack) + depth > MAX_DEPTH:
            here = self._here()[:6]  # the path of 33 levels would be a line of [0]s
            raise self.fail(
                line, f"lists and mappings nested more than {MAX_DEPTH} deep (the limit)", here
            )

    def _scalar(self, event: ScalarEvent, line: int) -> None:
        text = event.value
        bad = _BAD_CHAR.search(text)
        if bad:
            char = f"U+{ord(bad.group()):04X}"
            raise self.fail(line, f"character {char} cannot be in a lab file's value")
        if self._expecting_key():
            self._key(event, text, line)
            return
        tag = event.tag
        if tag is not None and tag != "!" and tag not in SCALAR_TAGS:
            raise self.fail(line, f"YAML tag {_tag(tag)} is not supported ({_SUPPORTED})")
        try:
            if tag is None and event.implicit[0]:
                value = plain(text)
            elif tag in (None, "!"):
                value = text
            else:
                value = tagged(tag, text)
        except ScalarError as exc:
            raise self.fail(line, str(exc)) from None
        self._count(1, 0, line)
        node = _Node(value, self._here(), anchor=event.anchor)
        self._place(node, line)
        self._done(node)

    def _key(self, event: ScalarEvent, text: str, line: int) -> None:
        top = self.stack[-1]
        if text == MERGE_KEY and event.tag is None and event.implicit[0]:
            raise self.fail(
                line,
                "merge keys (<<) are not supported: write the keys out, "
                "or share them with a profile (profiles: [NAME])",
            )
        if event.tag not in (None, "!", "tag:yaml.org,2002:str"):
            raise self.fail(line, f"YAML tag {_tag(event.tag)} is not supported on a key")
        if event.anchor is not None:
            raise self.fail(line, "an anchor on a key is not supported (anchor the value)")
        if text in top.first:
            raise self.fail(
                line, f"duplicate key {shown(text)} (first at line {top.first[text]})", top.path
            )
        self._count(1, 0, line)
        top.size += 1
        top.first[text] = line
        top.key = (text, line)

    def _alias(self, event: AliasEvent, line: int) -> None:
        if self._expecting_key():
            raise self.fail(line, f"an alias (*{event.anchor}) cannot be a key")
        anchored = self.anchors.get(event.anchor)
        if anchored is None:
            raise self.fail(
                line,
                f"alias *{event.anchor} names no anchor defined above it "
                "(an anchor is usable once its value is complete)",
            )
        self._count(anchored.size, anchored.depth, line)
        node = _Node(anchored.value, self._here(), anchored.size, anchored.depth)
        self._place(node, line)
        self._done(node)

    def _start(self, event: MappingStartEvent | SequenceStartEvent, line: int) -> None:
        if self._expecting_key():
            raise self.fail(line, "a key must be a name, not a list or a mapping")
        mapping = isinstance(event, MappingStartEvent)
        allowed = MAPPING_TAGS if mapping else SEQUENCE_TAGS
        if event.tag not in allowed:
            raise self.fail(line, f"YAML tag {_tag(event.tag)} is not supported ({_SUPPORTED})")
        self._count(1, 1, line)
        node = _Node({} if mapping else [], self._here(), depth=1, anchor=event.anchor)
        self._place(node, line)
        self.stack.append(node)

    def _end(self) -> None:
        node = self.stack.pop()
        self._done(node)

    def _place(self, node: _Node, line: int) -> None:
        """Put a new value where its parent expects it and record its line."""
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        if isinstance(top.value, dict):
            assert top.key is not None
            name, key_line = top.key
            top.value[name] = node.value
            here: Path_ = (*top.path, name)
            self.lines[here] = key_line
            top.key = None
        else:
            here = (*top.path, len(top.value))
            self.lines[here] = line
            top.value.append(node.value)

    def _done(self, node: _Node) -> None:
        """A value is complete: it counts in its parent and its anchor may be used."""
        if self.stack:
            parent = self.stack[-1]
            parent.size += node.size
            parent.depth = max(parent.depth, node.depth + 1)
        if node.anchor is not None:
            self.anchors[node.anchor] = node
