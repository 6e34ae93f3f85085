"""`defaults`, `zone` and `forwarding` sections, read the way fw4 reads them.

A zone's devices come from its `network` list through the network -> kernel
devices map the caller gives (fw4 asks netifd over ubus for the same thing)
plus its own `device` list; `eth+` style wildcards become nft's `eth*`. Each
zone gets "match rules" (one per device group and address family) that every
jump into and verdict of the zone repeats, as fw4's zone-match template does.
A network the map does not know is left out without a word, as fw4 leaves
out a network that is not up.

A zone's "related subnets" are the addresses of its networks (what netifd
reports, negated networks included, as fw4 does) followed by its `subnet`
list: the `_subnets` define lists them, NAT reflection and redirects
without `dest` look zones up by them (fw4_reflection).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from palmnet.openwrt import fw4_values as v
from palmnet.openwrt.fw4_model import (
    NOTICE,
    WARNING,
    Addr,
    Defaults,
    Device,
    MatchRule,
    Rule,
    Ruleset,
    Zone,
    ZoneRef,
)
from palmnet.openwrt.fw4_options import (
    NOT_IN_PALMNET,
    PARSE_LIST,
    REQUIRED,
    UNSUPPORTED,
    Reporter,
    Spec,
    parse_options,
)
from palmnet.openwrt.uci import UciSection


@dataclass(frozen=True)
class Networks:
    """What fw4 asks netifd: each network's devices and addresses ("addr/len")."""

    devices: Mapping[str, Sequence[str]]
    addresses: Mapping[str, Sequence[str]]

    def addrs(self, name: str) -> list[Addr]:
        """A network's addresses as fw4 keeps them (address, mask and length)."""
        out: list[Addr] = []
        for text in self.addresses.get(name, ()):
            out += v.parse_subnet(text) or []
        return out


# Zone names become parts of nft chain and define names.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_ZONE_NAME_VALID = "letters, digits, '_' and '-' (not first)"

DEFAULTS_SPEC = {
    "input": Spec(v.parse_policy, "drop"),
    "output": Spec(v.parse_policy, "drop"),
    "forward": Spec(v.parse_policy, "drop"),
    "drop_invalid": Spec(v.parse_bool),
    "tcp_reject_code": Spec(v.parse_reject_code, "tcp-reset"),
    "any_reject_code": Spec(v.parse_reject_code, "port-unreachable"),
    "syn_flood": Spec(v.parse_bool),
    "synflood_protect": Spec(v.parse_bool),
    "synflood_rate": Spec(v.parse_limit, "25/second"),
    "synflood_burst": Spec(v.parse_int, "50"),
    "tcp_syncookies": Spec(v.parse_bool, "1"),
    "tcp_ecn": Spec(v.parse_int),
    "tcp_window_scaling": Spec(v.parse_bool, "1"),
    "accept_redirects": Spec(v.parse_bool),
    "accept_source_route": Spec(v.parse_bool),
    "auto_helper": Spec(v.parse_bool, "1"),
    "custom_chains": Spec(v.parse_bool, None, UNSUPPORTED),
    "disable_ipv6": Spec(v.parse_bool, None, UNSUPPORTED),
    "flow_offloading": Spec(v.parse_bool, "0"),
    "flow_offloading_hw": Spec(v.parse_bool, "0"),
    "auto_includes": Spec(v.parse_bool, "1"),
}


def read_defaults(report: Reporter, sections: list[UciSection]) -> Defaults:
    """The first `defaults` section (later ones are reported and ignored)."""
    for extra in sections[1:]:
        report.warn(extra, "ignoring duplicate defaults section", valid="one defaults section")
    if not sections:
        return Defaults()
    opts = parse_options(report, sections[0], DEFAULTS_SPEC)
    if opts is None:
        return Defaults()
    for key in ("flow_offloading", "flow_offloading_hw"):
        if opts[key]:
            line = report.line_of(sections[0], key)
            message = f"option '{key}' is not supported by palmnet, ignoring it"
            report.warn(sections[0], message, line, level=WARNING, option=key)
    if opts["any_reject_code"] == "tcp-reset":  # nft: a tcp reset needs a TCP packet
        line = report.line_of(sections[0], "any_reject_code")
        report.warn(
            sections[0],
            "option 'any_reject_code' specifies invalid value 'tcp-reset'",
            line,
            option="any_reject_code",
            value="tcp-reset",
            valid="port-unreachable, admin-prohibited, host-unreachable or no-route "
            "(a TCP reset answers TCP only: see tcp_reject_code)",
        )
        opts["any_reject_code"] = "port-unreachable"
    protect = opts.get("synflood_protect")
    return Defaults(
        input=opts["input"],
        output=opts["output"],
        forward=opts["forward"],
        drop_invalid=bool(opts.get("drop_invalid")),
        tcp_reject_code=opts["tcp_reject_code"],
        any_reject_code=opts["any_reject_code"],
        synflood_protect=bool(opts.get("syn_flood") if protect is None else protect),
        synflood_rate=opts.get("synflood_rate"),
        synflood_burst=opts.get("synflood_burst"),
        auto_helper=opts["auto_helper"],
    )


def _zone_spec(defaults: Defaults) -> dict[str, Spec]:
    return {
        "enabled": Spec(v.parse_bool, "1"),
        "name": Spec(v.parse_string, None, REQUIRED),
        "family": Spec(v.parse_family),
        "network": Spec(v.parse_netname, None, PARSE_LIST),
        "device": Spec(v.parse_device, None, PARSE_LIST),
        "subnet": Spec(v.parse_network, None, PARSE_LIST),
        "input": Spec(v.parse_policy, defaults.input),
        "output": Spec(v.parse_policy, defaults.output),
        "forward": Spec(v.parse_policy, defaults.forward),
        "masq": Spec(v.parse_bool),
        "masq_allow_invalid": Spec(v.parse_bool),
        "masq_src": Spec(v.parse_network, None, PARSE_LIST),
        "masq_dest": Spec(v.parse_network, None, PARSE_LIST),
        "masq6": Spec(v.parse_bool),
        "extra": Spec(v.parse_string, None, UNSUPPORTED),
        "extra_src": Spec(v.parse_string, None, UNSUPPORTED),
        "extra_dest": Spec(v.parse_string, None, UNSUPPORTED),
        "mtu_fix": Spec(v.parse_bool),
        "custom_chains": Spec(v.parse_bool, None, UNSUPPORTED),
        "log": Spec(v.parse_int),
        "log_limit": Spec(v.parse_limit),
        "auto_helper": Spec(v.parse_bool, "1"),
        "helper": Spec(v.parse_string, None, PARSE_LIST | NOT_IN_PALMNET),
        "counter": Spec(v.parse_bool, "1"),
    }


def read_zone(report: Reporter, section: UciSection, ruleset: Ruleset, networks: Networks) -> None:
    """Parse one zone and append it to the ruleset (or report why not)."""
    opts = parse_options(report, section, _zone_spec(ruleset.defaults))
    if opts is None:
        return
    if not opts["enabled"]:
        report.warn(section, "is disabled, ignoring section", level=NOTICE)
        return
    name = opts["name"]
    if not _ZONE_NAME.fullmatch(name):
        line = report.line_of(section, "name")
        message = f"option 'name' specifies invalid value '{name}'"
        report.warn(section, message, line, option="name", value=name, valid=_ZONE_NAME_VALID)
        return
    if ruleset.zone(name) is not None:
        report.warn(section, f"defines zone '{name}' a second time, skipping section")
        return
    if any(d.any for d in opts.get("device") or []):
        line = report.line_of(section, "device")
        report.warn(section, "must not specify '*' as device", line, option="device", value="*")
        return

    devices: list[Device] = []
    related: list[Addr] = []
    for net in opts.get("network") or []:
        for dev in networks.devices.get(net.name, ()) if net.name else ():
            devices.append(Device(dev, invert=net.invert))
        related += networks.addrs(net.name) if net.name else []
    devices.extend(opts.get("device") or [])
    subnet4, subnet6, subnet_family = v.split_af(opts.get("subnet"))

    family = v.infer_family(opts.get("family"), [(subnet_family, "subnet list")])
    if isinstance(family, str):
        report.warn(section, f"{family}, skipping")
        return

    zone = Zone(
        name=name,
        family=family or 0,
        input=opts["input"],
        output=opts["output"],
        forward=opts["forward"],
        masq=bool(opts.get("masq")),
        masq6=bool(opts.get("masq6")),
        masq_allow_invalid=bool(opts.get("masq_allow_invalid")),
        mtu_fix=bool(opts.get("mtu_fix")),
        log=opts.get("log") or 0,
        log_limit=opts.get("log_limit"),
        counter=opts["counter"],
    )
    groups, matched = _device_groups(devices)
    if devices or subnet4 or subnet6:
        for group in groups:
            if not family and not subnet4 and not subnet6:
                zone.match_rules.append(_match_rule(0, group, (None, None, None)))
                continue
            for fam, subnets in ((4, subnet4), (6, subnet6)):
                if not family or family == fam:
                    for addrs in v.group_by_masking(subnets):
                        zone.match_rules.append(_match_rule(fam, group, addrs))

    masq_src4, masq_src6, _ = v.split_af(opts.get("masq_src"))
    masq_dest4, masq_dest6, _ = v.split_af(opts.get("masq_dest"))
    zone.masq4_src, zone.masq4_dest = v.group_by_masking(masq_src4), v.group_by_masking(masq_dest4)
    zone.masq6_src, zone.masq6_dest = v.group_by_masking(masq_src6), v.group_by_masking(masq_dest6)
    zone.match_devices = matched
    zone.related_subnets = related + subnet4 + subnet6
    zone.match_subnets = [v.cidr(a) for a in zone.related_subnets if not a.invert and a.bits != -1]
    zone.sflags = {zone.input}
    zone.dflags = {zone.output, zone.forward}
    if zone.masq or zone.masq6:
        zone.dflags.add("snat")
    auto_helper = opts["auto_helper"] and ruleset.defaults.auto_helper
    if auto_helper and not (zone.masq or zone.masq6):
        zone.dflags.add("helper")
    ruleset.zones.append(zone)


DeviceGroup = tuple[list[str] | None, list[str], list[str]]


def _device_groups(devices: list[Device]) -> tuple[list[DeviceGroup], list[str]]:
    """fw4's grouping: plain devices share a rule, each wildcard gets its own.

    Returns the groups and the zone's positive device names (for the define).
    """
    groups: list[DeviceGroup] = []
    plain: list[str] = []
    invert_plain: list[str] = []
    invert_wildcard: list[str] = []
    matched: list[str] = []
    for device in devices:
        name, invert = device.name or "", device.invert
        wildcard = name.endswith("+")
        if name == "+" and not invert:
            matched.append(name)
            continue  # "any device": no match at all, nft has no wildcard-only match
        if name == "+":
            name, invert, wildcard = "/never/", False, False
        elif wildcard:
            name = name[:-1] + "*"
        if not invert:
            matched.append(name)
        if not invert and wildcard:
            groups.append(([name], invert_plain, invert_wildcard))
        elif not invert:
            plain.append(name)
        elif wildcard:
            invert_wildcard.append(name)
        else:
            invert_plain.append(name)
    if plain:
        groups.append((plain, invert_plain, invert_wildcard))
    elif not groups:
        groups.append((None, invert_plain, invert_wildcard))
    return groups, matched


def _match_rule(family: int, devices: DeviceGroup, subnets: v.AddrGroup) -> MatchRule:
    return MatchRule(
        family=family,
        devices_pos=devices[0] or None,
        devices_neg=devices[1] or None,
        devices_neg_wildcard=devices[2] or None,
        subnets_pos=[v.cidr(a) for a in subnets[0]] if subnets[0] else None,
        subnets_neg=[v.cidr(a) for a in subnets[1]] if subnets[1] else None,
        subnets_masked=subnets[2] or None,
    )


def zone_choices(ruleset: Ruleset) -> str:
    """What a `src`/`dest` may name: the zones read so far (fw4 knows no others)."""
    names = ", ".join(zone.name for zone in ruleset.zones)
    return f"'*' or a zone of this file ({names})" if names else "'*' (no zone is defined)"


def zone_ref_parser(ruleset: Ruleset) -> Any:
    """A parser for `src`/`dest`: `*` or the name of a zone read so far."""

    def parse(value: str) -> ZoneRef | None:
        if value == "*":
            return ZoneRef(None)
        zone = ruleset.zone(value)
        return ZoneRef(zone) if zone is not None else None

    return parse


def read_forwarding(report: Reporter, section: UciSection, ruleset: Ruleset) -> None:
    """A forwarding is an accept rule in forward_<src> jumping to accept_to_<dest>."""
    zone_ref, zones = zone_ref_parser(ruleset), zone_choices(ruleset)
    spec = {
        "enabled": Spec(v.parse_bool, "1"),
        "name": Spec(v.parse_string),
        "family": Spec(v.parse_family),
        "src": Spec(zone_ref, None, REQUIRED, zones),
        "dest": Spec(zone_ref, None, REQUIRED, zones),
    }
    opts = parse_options(report, section, spec)
    if opts is None:
        return
    if not opts["enabled"]:
        report.warn(section, "is disabled, ignoring section", level=NOTICE)
        return
    src: ZoneRef = opts["src"]
    dest: ZoneRef = opts["dest"]
    family = v.infer_family(
        opts.get("family"),
        [
            (src.zone.family if src.zone else None, "source zone"),
            (dest.zone.family if dest.zone else None, "destination zone"),
        ],
    )
    if isinstance(family, str):
        report.warn(section, f"{family}, skipping")
        return
    src_name = src.zone.name if src.zone else "any"
    dest_name = dest.zone.name if dest.zone else "any"
    fam_text = f"IPv{family} " if family else ""
    rule = Rule(
        chain=f"forward_{src.zone.name}" if src.zone else "forward",
        name=opts.get("name") or f"Accept {src_name} to {dest_name} {fam_text}forwarding",
        family=family or 0,
    )
    if dest.zone:
        rule.jump_chain = f"accept_to_{dest.zone.name}"
        dest.zone.dflags.add("accept")
    else:
        rule.target = "accept"
    ruleset.rules.append(rule)
