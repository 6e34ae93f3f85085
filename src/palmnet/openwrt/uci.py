"""UCI configuration files (/etc/config/*): parser and writer.

The syntax is the one libuci reads (openwrt/uci, file.c), so a file a user
edits with `vi /etc/config/firewall` means here what it means on OpenWrt:

    package NAME                 optional, at most one, before any section
    config TYPE ['NAME']         opens a section; without a name it is anonymous
    option KEY 'value'           sets a single value (a later one replaces it)
    list KEY 'value'             appends to a list (an earlier option becomes
                                 the list's first item, as uci_add_list does)

Words may be unquoted, 'single quoted' (no escapes inside) or "double
quoted" (backslash escapes the next character); adjacent parts join, which
is how a quote is written inside single quotes: 'it'\\''s'. Outside single
quotes a backslash at the end of a line continues the line. `#` outside
quotes starts a comment, `;` ends a command, and the command words may be
abbreviated to their first letter. Quoted values may span lines.

A named section declared twice is one section (the second adds to the
first), as libuci does; declaring it again with another type is an error.

Every section and option keeps the line it came from, so the fw4 compiler
can say `firewall:12: ...`. Line numbers take no part in equality, so
`parse(write(p)) == p` holds although `write` normalises the layout (the
layout of `uci export`: tab-indented, values single-quoted, no comments).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from palmnet.errors import InputError

_NAME = re.compile(r"[A-Za-z0-9_]+")  # section and option names (uci_validate_name)
_PACKAGE = re.compile(r"[A-Za-z0-9_-]+")
_TYPE = re.compile(r"[\x21-\x7e]+")  # any printable word (uci_validate_type)
_REF = re.compile(r"@([^\[\]]+)\[(-?\d+)\]")
_BLANK = " \t\r\f\v"
_COMMANDS = {
    "package": "package",
    "p": "package",
    "config": "config",
    "c": "config",
    "option": "option",
    "o": "option",
    "list": "list",
    "l": "list",
}


class UciError(InputError):
    """A UCI file that libuci would refuse; `file` and `line` say where."""


@dataclass
class UciOption:
    """One `option` (value is a str) or `list` (value is a list of str)."""

    name: str
    value: str | list[str]
    line: int | None = field(default=None, compare=False)
    item_lines: list[int] = field(default_factory=list, compare=False, repr=False)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def values(self) -> list[str]:
        """The value as a list: a single option is a list of one."""
        return list(self.value) if isinstance(self.value, list) else [self.value]

    def line_of(self, index: int) -> int | None:
        """The line of the index-th list item (the option's line if unknown)."""
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


@dataclass
class UciSection:
    """A `config TYPE [NAME]` block; `name` is None for an anonymous section."""

    type: str
    name: str | None = None
    options: dict[str, UciOption] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False)

    @property
    def anonymous(self) -> bool:
        return self.name is None

    def get(self, key: str, default: str | list[str] | None = None) -> str | list[str] | None:
        option = self.options.get(key)
        return default if option is None else option.value

    def set(self, key: str, value: str | list[str], line: int | None = None) -> None:
        """Set an option or a whole list, replacing what was there."""
        value = list(value) if isinstance(value, list) else value
        lines = [line] * len(value) if isinstance(value, list) and line else []
        self.options[key] = UciOption(key, value, line, lines)

    def add_list(self, key: str, value: str, line: int | None = None) -> None:
        """Append to a list; an existing single option becomes its first item."""
        option = self.options.get(key)
        if option is None:
            self.options[key] = UciOption(key, [value], line, [line] if line else [])
            return
        if not isinstance(option.value, list):
            first = option.line
            option.value = [option.value]
            option.item_lines = [first] if first else []
        option.value.append(value)
        if line:
            option.item_lines.append(line)


@dataclass
class UciPackage:
    """A whole config file: its package name and its sections in file order."""

    name: str
    sections: list[UciSection] = field(default_factory=list)
    file: str | None = field(default=None, compare=False)

    def of_type(self, type_: str) -> list[UciSection]:
        return [s for s in self.sections if s.type == type_]

    def section_id(self, section: UciSection) -> str:
        """The name uci shows: the section's name, or @type[i] if anonymous."""
        if section.name is not None:
            return section.name
        peers = self.of_type(section.type)
        index = next(i for i, s in enumerate(peers) if s is section)
        return f"@{section.type}[{index}]"

    def find(self, ref: str) -> UciSection | None:
        """A section by name or by @type[i] (negative i counts from the end)."""
        match = _REF.fullmatch(ref)
        if match:
            peers = self.of_type(match.group(1))
            index = int(match.group(2))
            return peers[index] if -len(peers) <= index < len(peers) else None
        return next((s for s in self.sections if s.name == ref), None)

    def display_file(self) -> str:
        return self.file or f"/etc/config/{self.name}"


def parse(text: str, name: str = "config", *, file: str | None = None) -> UciPackage:
    """Parse the text of a UCI file; `name` is used unless it says `package`."""
    return _Parser(text, name, file).run()


def parse_file(path: str, name: str | None = None) -> UciPackage:
    """Read and parse a file; the package name defaults to the file's name."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return parse(text, name or path.rstrip("/").rsplit("/", 1)[-1], file=path)


def quote(value: str) -> str:
    """A value as uci export writes it: single quotes, ' written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def write(package: UciPackage, *, header: bool = False) -> str:
    """The text of a package in `uci export` layout (with `package` if asked)."""
    out: list[str] = [f"package {package.name}\n"] if header else []
    for section in package.sections:
        plain = _PACKAGE.fullmatch(section.type)  # odd (but valid) types get quotes
        out.append(f"\nconfig {section.type if plain else quote(section.type)}")
        if section.name is not None:
            out.append(f" {quote(section.name)}")
        out.append("\n")
        for option in section.options.values():
            if isinstance(option.value, list):
                out.extend(f"\tlist {option.name} {quote(v)}\n" for v in option.value)
            else:
                out.append(f"\toption {option.name} {quote(option.value)}\n")
    out.append("\n")
    return "".join(out)


@dataclass
class _Word:
    text: str
    line: int


class _Parser:
    """libuci's reading rules over a whole text, one command at a time."""

    def __init__(self, text: str, name: str, file: str | None) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.file = file or name
        self.package = UciPackage(name, file=file)
        self.section: UciSection | None = None
        self.named: dict[str, UciSection] = {}

    def run(self) -> UciPackage:
        for words in self._commands():
            self._command(words)
        return self.package

    def _error(self, message: str, line: int) -> UciError:
        return UciError(message, file=self.file, line=line)

    def _arity(self, args: list[_Word], least: int, most: int, line: int) -> None:
        if len(args) < least:
            raise self._error("insufficient arguments", line)
        if len(args) > most:
            raise self._error("too many arguments", line)

    # -- commands -----------------------------------------------------------

    def _command(self, words: list[_Word]) -> None:
        head = words[0]
        command = _COMMANDS.get(head.text)
        if command is None:
            # cut as topology/describe.py's `shown` cuts (a sibling layer: not imported)
            shown = head.text if len(head.text) <= 60 else head.text[:60] + "'..."
            raise self._error(f"invalid command '{shown}'", head.line)
        args = words[1:]
        if command == "package":
            self._package(args, head.line)
        elif command == "config":
            self._config(args, head.line)
        else:
            self._option(args, head.line, as_list=command == "list")

    def _package(self, args: list[_Word], line: int) -> None:
        self._arity(args, 1, 1, line)
        if not _PACKAGE.fullmatch(args[0].text):
            raise self._error("invalid character in name field", line)
        if self.package.sections or self.section is not None:
            raise self._error("'package' must come before the first section", line)
        self.package.name = args[0].text

    def _config(self, args: list[_Word], line: int) -> None:
        self._arity(args, 1, 2, line)
        type_ = args[0].text
        if not _TYPE.fullmatch(type_):
            raise self._error("invalid character in type field", line)
        name = args[1].text if len(args) > 1 and args[1].text else None
        if name is None:
            self.section = UciSection(type_, None, line=line)
            self.package.sections.append(self.section)
            return
        if not _NAME.fullmatch(name):
            raise self._error("invalid character in name field", line)
        existing = self.named.get(name)
        if existing is not None and existing.type != type_:
            raise self._error(
                "section of different type overwrites prior section with same name", line
            )
        if existing is None:
            existing = UciSection(type_, name, line=line)
            self.named[name] = existing
            self.package.sections.append(existing)
        self.section = existing

    def _option(self, args: list[_Word], line: int, *, as_list: bool) -> None:
        if self.section is None:
            raise self._error("option/list command found before the first section", line)
        self._arity(args, 1, 2, line)
        key = args[0].text
        if not _NAME.fullmatch(key):
            raise self._error("invalid character in name field", line)
        value = args[1].text if len(args) > 1 else ""
        if as_list:
            self.section.add_list(key, value, line)
        else:
            self.section.set(key, value, line)

    # -- words ----------------------------------------------------------------

    def _commands(self) -> Iterator[list[_Word]]:
        words: list[_Word] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in "\n;":
                if char == "\n":
                    self.line += 1
                self.pos += 1
                if words:
                    yield words
                    words = []
            elif char in _BLANK:
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif char == "\\" and text.startswith("\n", self.pos + 1):
                self.pos += 2  # a backslash-newline between words joins the lines
                self.line += 1
            else:
                words.append(self._word())
        if words:
            yield words

    def _word(self) -> _Word:
        """One word: unquoted, quoted and escaped parts up to a blank, ; or #."""
        text, start, out = self.text, self.line, []
        while self.pos < len(text):
            char = text[self.pos]
            if char in _BLANK or char in "\n;#":
                break
            if char == "'":
                out.append(self._quoted("'", start))
            elif char == '"':
                out.append(self._quoted('"', start))
            elif char == "\\":
                out.append(self._escape())
            else:
                out.append(char)
                self.pos += 1
        return _Word("".join(out), start)

    def _escape(self) -> str:
        """After a backslash: a newline continues the line, any other char is kept."""
        self.pos += 1
        if self.pos >= len(self.text):
            return ""
        char = self.text[self.pos]
        self.pos += 1
        if char == "\n":
            self.line += 1
            return ""
        if char == "\r" and self.text.startswith("\n", self.pos):
            self.pos += 1
            self.line += 1
            return ""
        return char

    def _quoted(self, quote_char: str, start: int) -> str:
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == quote_char:
                self.pos += 1
                return "".join(out)
            if char == "\\" and quote_char == '"':
                out.append(self._escape())
                continue
            if char == "\n":
                self.line += 1
            out.append(char)
            self.pos += 1
        raise self._error(f"EOF with unterminated {quote_char}", start)
