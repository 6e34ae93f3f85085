"""The firewall page's model: /etc/config/firewall as LuCI shows it, and rule edits.

Reading uses the project's UCI parser; a rule the form sends becomes a UCI
`rule` section and is checked by the fw4 compiler itself (the same option
specs and value parsers `/etc/init.d/firewall` uses) inside a copy of the
whole file: a field fw4 would refuse (`dest_port 99999`, an unknown zone) is
refused with fw4's reason before anything is written. The file is written as
`uci commit` writes it (openwrt/uci.write: tab-indented, single-quoted, no
comments). No field ever reaches a shell: values are UCI-quoted text.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from palmnet.errors import InputError
from palmnet.openwrt.fw4 import compile_firewall
from palmnet.openwrt.uci import UciPackage, UciSection, write
from palmnet.openwrt.zones import zone_devices

# The rule fields of the form, in LuCI's order; every other option of a rule is kept.
RULE_FIELDS = ("name", "src", "dest", "family", "proto", "src_ip", "dest_ip", "dest_port", "target")
TARGETS = ("ACCEPT", "REJECT", "DROP")
PROTOCOLS = ("tcp", "udp", "tcp udp", "icmp", "all")
# Words a form field may hold: fw4's values (zones, ports, addresses, names) need no
# more, and a newline or a quote in a name is a mistake, not a rule.
_FIELD = re.compile(r"[A-Za-z0-9_.:/*!@+ -]{0,60}")


def digest(text: str) -> str:
    """What the page saw of the file: an edit is refused if it changed since."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Row:
    """One section as a table row: its id (name or @type[i]), index among its type,
    and the options shown."""

    id: str
    index: int
    values: dict[str, str]
    enabled: bool = True


@dataclass
class FirewallView:
    zones: list[Row] = field(default_factory=list)
    forwardings: list[Row] = field(default_factory=list)
    rules: list[Row] = field(default_factory=list)
    redirects: list[Row] = field(default_factory=list)
    zone_names: list[str] = field(default_factory=list)


def _text(value: str | list[str] | None) -> str:
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else value


def view(package: UciPackage) -> FirewallView:
    out = FirewallView()
    columns = {
        "zone": ("name", "input", "output", "forward", "masq", "network"),
        "forwarding": ("src", "dest"),
        "rule": (*RULE_FIELDS,),
        "redirect": ("name", "src", "proto", "src_dport", "dest", "dest_ip", "dest_port"),
    }
    lists = {
        "zone": out.zones,
        "forwarding": out.forwardings,
        "rule": out.rules,
        "redirect": out.redirects,
    }
    for type_, rows in lists.items():
        for index, section in enumerate(package.of_type(type_)):
            values = {key: _text(section.get(key)) for key in columns[type_]}
            enabled = _text(section.get("enabled")) not in ("0", "no", "off", "false")
            rows.append(Row(package.section_id(section), index, values, enabled))
    out.zone_names = [r.values["name"] for r in out.zones if r.values["name"]]
    return out


def choices(view: FirewallView) -> dict[str, list[tuple[str, str]]]:
    """(value, label) of each select of the rule form."""
    return {
        "zones": [("", "this device"), ("*", "any zone"), *((z, z) for z in view.zone_names)],
        "families": [("", "IPv4 and IPv6"), ("ipv4", "IPv4"), ("ipv6", "IPv6")],
        "protocols": [(p, p) for p in PROTOCOLS],
        "targets": [(t, t) for t in TARGETS],
    }


def rule_from_form(form: Mapping[str, str], base: UciSection | None = None) -> UciSection:
    """A rule section from the form's fields (an edit keeps the base's other options).
    InputError names the field and what it may hold."""
    section = copy.deepcopy(base) if base is not None else UciSection("rule")
    for key in RULE_FIELDS:
        value = (form.get(key) or "").strip()
        if not _FIELD.fullmatch(value):
            raise InputError(
                f"{value[:60]!r} is not a firewall value (letters, digits and _.:/*!@+- "
                "up to 60 characters)",
                key=key,
            )
        if value:
            section.set(key, value)
        else:
            section.options.pop(key, None)
    if not section.get("name"):
        raise InputError("a rule needs a name", key="name")
    if section.get("target") not in TARGETS:
        raise InputError(f"must be one of {', '.join(TARGETS)}", key="target")
    return section


def check_section(firewall: UciPackage, network: UciPackage, section: UciSection) -> None:
    """fw4's verdict on one section of the package: InputError with fw4's reason if it
    would skip the section or find an option it does not know. Notices (a disabled
    section) are fine."""
    result = compile_firewall(firewall, zone_devices(network))
    wanted = firewall.section_id(section)
    problems = [w.text for w in result.warnings if w.section == wanted and not w.notice]
    if problems:
        raise InputError("; ".join(problems))


@dataclass(frozen=True)
class Edit:
    """What the page asked for: add, edit, enable, disable or delete the index-th rule."""

    action: str
    index: int | None = None


def edited(
    firewall: UciPackage, network: UciPackage, edit: Edit, form: Mapping[str, str]
) -> tuple[UciPackage, str]:
    """The package after the edit (a copy) and a line saying what changed; nothing is
    written here. InputError if the edit is refused."""
    package = copy.deepcopy(firewall)
    rules = package.of_type("rule")
    target: UciSection | None = None
    if edit.action != "add":
        if edit.index is None or not 0 <= edit.index < len(rules):
            raise InputError(f"there is no rule {edit.index} (the file has {len(rules)})")
        target = rules[edit.index]
    if edit.action == "delete":
        assert target is not None
        label = _label(package, target)
        package.sections.remove(target)
        return package, f"rule {label} deleted"
    if edit.action in ("enable", "disable"):
        assert target is not None
        if edit.action == "enable":
            target.options.pop("enabled", None)
        else:
            target.set("enabled", "0")
        check_section(package, network, target)
        return package, f"rule {_label(package, target)} {edit.action}d"
    if edit.action not in ("add", "edit"):
        raise InputError(f"unknown action '{edit.action}'")
    section = rule_from_form(form, target)
    if target is None:
        package.sections.append(section)
    else:
        package.sections[package.sections.index(target)] = section
    check_section(package, network, section)
    verb = "added" if target is None else "changed"
    return package, f"rule {_label(package, section)} {verb}"


def _label(package: UciPackage, section: UciSection) -> str:
    name = section.get("name")
    return f"'{name}'" if isinstance(name, str) and name else package.section_id(section)


def text_of(package: UciPackage) -> str:
    return write(package)
