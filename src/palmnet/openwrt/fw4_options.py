"""Reading a section's options against a spec, and saying what is wrong.

This is fw4's parse_options: every option a section type knows has a parser,
a default and flags; a value that does not parse makes the whole section
invalid ("option 'x' specifies invalid value 'y'", then "skipped due to
invalid options"); an option the type does not know is only reported
("specifies unknown option 'x'") and the section is still used, as fw4
does. Options fw4 itself marks unsupported or deprecated are reported and
ignored. palmnet adds one flag of its own, NOT_IN_PALMNET, for options fw4
supports but this compiler does not implement yet: the section is reported
and skipped rather than compiled without the option's meaning.

Each report is a FirewallWarning with the file and the line of the option
(or of the `config` line), its level (fw4_model: an ERROR is a section fw4
skips or a value it refuses, a WARNING one it uses without what it names)
and, for a value refused, what the option would take (`Spec.valid`, else
fw4_values.VALID for its parser). With strict=True the first report that is
not a notice is raised as an InputError instead, so the CLI prints
`FILE:LINE: message` and exits 2.

Like fw4, a section's reading stops at its first refused value. With
every=True (what `palmnet plan` asks for) it goes on, so that all the values
of the section that fw4 would refuse are reported at once; the section is
skipped all the same, and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from palmnet.errors import InputError
from palmnet.openwrt.fw4_model import ERROR, WARNING, FirewallWarning
from palmnet.openwrt.fw4_values import VALID
from palmnet.openwrt.uci import UciPackage, UciSection

PARSE_LIST = 0x01  # a list (or a space-separated option) of values
FLATTEN_LIST = 0x02  # a value may expand to several (tcpudp -> tcp, udp)
NO_INVERT = 0x04  # a leading ! is an error
UNSUPPORTED = 0x08  # fw4 reports and ignores it
REQUIRED = 0x10
DEPRECATED = 0x20  # fw4 reports and ignores it
NOT_IN_PALMNET = 0x40  # valid for fw4, not implemented here: report and skip

_INVALID = object()  # a value (or section) fw4 would refuse
SKIPPED = "skipped due to invalid options"  # fw4's words after the option(s) that caused it


@dataclass(frozen=True)
class Spec:
    parse: Callable[[str], Any]
    default: str | None = None
    flags: int = 0
    valid: str | None = None  # what the option takes, if its parser's VALID does not say

    def valid_values(self) -> str | None:
        return self.valid or VALID.get(self.parse)


class Reporter:
    """Collects warnings for one package; raises at the first one in strict mode."""

    def __init__(self, package: UciPackage, strict: bool, every: bool = False) -> None:
        self.package = package
        self.strict = strict
        self.every = every  # report every refused value of a section, not the first
        self.warnings: list[FirewallWarning] = []
        self._ids: dict[int, str] = {}
        counts: dict[str, int] = {}
        for section in package.sections:  # @type[i], computed once for all sections
            if section.name is not None:
                self._ids[id(section)] = section.name
            else:
                index = counts.get(section.type, 0)
                counts[section.type] = index + 1
                self._ids[id(section)] = f"@{section.type}[{index}]"

    def section_id(self, section: UciSection) -> str:
        """The id fw4 names a section by: its name, or @type[i]."""
        return self._ids.get(id(section)) or self.package.section_id(section)

    def warn(
        self,
        section: UciSection,
        message: str,
        line: int | None = None,
        *,
        level: str = ERROR,
        option: str | None = None,
        value: str | None = None,
        valid: str | None = None,
    ) -> None:
        """Report a problem of `section` (an ERROR unless said otherwise), at `line`
        or the section's; `option`, `value` and `valid` say which option, which value
        was refused and what would be valid."""
        name = section.get("name")
        warning = FirewallWarning(
            file=self.package.display_file(),
            line=line or section.line,
            section=self.section_id(section),
            message=message,
            name=name if isinstance(name, str) and name else None,
            level=level,
            option=option,
            value=value,
            valid=valid,
        )
        if self.warnings and self.warnings[-1] == warning:
            return  # fw4 repeats a family conflict once per protocol; once is enough
        self.warnings.append(warning)
        if self.strict and not warning.notice:
            raise InputError(warning.text, file=warning.file, line=warning.line)

    def line_of(self, section: UciSection, key: str) -> int | None:
        option = section.options.get(key)
        return option.line if option is not None else section.line


def parse_options(
    report: Reporter, section: UciSection, spec: dict[str, Spec]
) -> dict[str, Any] | None:
    """The parsed options of a section, or None (reported) if it must be skipped."""
    result = _parse_options(report, section, spec)
    if result is _INVALID:
        report.warn(section, SKIPPED)
        return None
    return result if isinstance(result, dict) else None


def _parse_options(report: Reporter, section: UciSection, spec: dict[str, Spec]) -> Any:
    result: dict[str, Any] | None = {}
    invalid = False
    for key, entry in spec.items():
        option = section.options.get(key)
        if option is None and entry.flags & REQUIRED:
            message = f"option '{key}' is mandatory but not set"
            report.warn(section, message, option=key, valid=entry.valid_values())
            if not report.every:
                return _INVALID
            invalid = True
            continue
        if option is not None and entry.flags & NOT_IN_PALMNET:
            report.warn(
                section,
                f"option '{key}' is not supported by palmnet, skipping section",
                option.line,
                level=WARNING,
                option=key,
            )
            if not report.every:
                return None
            result = None
            continue
        raw: str | list[str] | None = entry.default if option is None else option.value
        if raw is None:
            continue
        if entry.flags & PARSE_LIST:
            value = _parse_list(report, section, key, raw, entry)
            if value is None and option is not None and entry.default is not None:
                # an empty list (`option proto ''`) is as good as unset: the default
                value = _parse_list(report, section, key, entry.default, entry)
        else:
            value = _parse_single(report, section, key, raw, entry)
        if value is _INVALID:
            if not report.every:
                return _INVALID
            invalid = True
            continue
        if value is None:
            continue
        line = report.line_of(section, key)
        if entry.flags & DEPRECATED:
            message = f"option '{key}' is deprecated by fw4"
            report.warn(section, message, line, level=WARNING, option=key)
        elif entry.flags & UNSUPPORTED:
            message = f"option '{key}' is not supported by fw4"
            report.warn(section, message, line, level=WARNING, option=key)
        elif result is not None:
            result[key] = value
    if invalid:
        return _INVALID
    for key, option in section.options.items():
        if key not in spec:
            message = f"specifies unknown option '{key}'"
            report.warn(section, message, option.line, level=WARNING, option=key)
    return result


def _parse_single(
    report: Reporter, section: UciSection, key: str, raw: str | list[str], entry: Spec
) -> Any:
    line = report.line_of(section, key)
    valid = entry.valid_values()
    if isinstance(raw, list):
        message = f"option '{key}' must not be a list"
        report.warn(section, message, line, option=key, valid=f"one `option {key}`")
        return _INVALID
    value = entry.parse(raw)
    if value is None:
        message = f"option '{key}' specifies invalid value '{raw}'"
        report.warn(section, message, line, option=key, value=raw, valid=valid)
        return _INVALID
    if entry.flags & NO_INVERT and getattr(value, "invert", False):
        message = f"option '{key}' must not be negated"
        report.warn(section, message, line, option=key, value=raw, valid=valid)
        return _INVALID
    return value


def _parse_list(
    report: Reporter, section: UciSection, key: str, raw: str | list[str], entry: Spec
) -> Any:
    option = section.options.get(key)
    # fw4 splits a single option on blanks but takes list items as they are
    if isinstance(raw, list):
        items = [(item, option.line_of(i) if option else None) for i, item in enumerate(raw)]
    else:
        line = option.line if option else None
        items = [(item, line) for item in raw.split()]
    values: list[Any] = []
    invalid = False
    for item, line in items:
        value = entry.parse(item)
        if value is None:
            message = f"option '{key}' specifies invalid value '{item}'"
            report.warn(section, message, line, option=key, value=item, valid=entry.valid_values())
            if not report.every:
                return _INVALID
            invalid = True
            continue
        if entry.flags & FLATTEN_LIST and isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    if invalid:
        return _INVALID
    return values or None
