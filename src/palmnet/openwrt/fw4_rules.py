"""`rule` sections: fw4's parse_rule, from options to per-chain nft rules.

Where a rule goes is fw4's mapping, which users of OpenWrt rely on:

    src and dest    forward_<src>    traffic routed through the router
    src only        input_<src>      traffic to the router itself
    dest only       output_<dest>    traffic the router sends
    neither         output
    src '*'         input / forward (the base chains), dest '*' likewise

A verdict towards a destination zone is a jump to <target>_to_<dest> (so the
packet must also leave through that zone's devices); REJECT without one is
a jump to handle_reject. One section becomes several nft rules: one per
protocol of `proto` (tcpudp, the default, is tcp and udp), per address
family when addresses or ICMP types say which, and per non-contiguous mask;
ICMP types that name a single code go into a second, type . code rule.
"""

from __future__ import annotations

from typing import Any

from palmnet.openwrt import fw4_values as v
from palmnet.openwrt.fw4_model import (
    NOTICE,
    WARNING,
    Addr,
    AddrGroup,
    IcmpType,
    Port,
    Proto,
    Rule,
    Ruleset,
)
from palmnet.openwrt.fw4_options import (
    DEPRECATED,
    FLATTEN_LIST,
    NO_INVERT,
    NOT_IN_PALMNET,
    PARSE_LIST,
    UNSUPPORTED,
    Reporter,
    Spec,
    parse_options,
)
from palmnet.openwrt.fw4_sections import zone_choices, zone_ref_parser
from palmnet.openwrt.uci import UciSection

_UNIMPLEMENTED_TARGETS = ("notrack", "helper", "mark", "dscp")
_NOT_PALMNET = (
    *("ipset", "helper", "set_helper", "start_date", "stop_date", "start_time", "stop_time"),
    *("weekdays", "mark", "set_mark", "set_xmark", "dscp", "set_dscp"),
)


def rule_spec(ruleset: Ruleset, default_name: str) -> dict[str, Spec]:
    zone_ref, zones = zone_ref_parser(ruleset), zone_choices(ruleset)
    spec = {
        "enabled": Spec(v.parse_bool, "1"),
        "name": Spec(v.parse_string, default_name),
        "_name": Spec(v.parse_string, None, DEPRECATED),
        "family": Spec(v.parse_family),
        "src": Spec(zone_ref, valid=zones),
        "dest": Spec(zone_ref, valid=zones),
        "device": Spec(v.parse_device, None, NO_INVERT),
        "direction": Spec(v.parse_direction),
        "proto": Spec(v.parse_protocol, "tcpudp", PARSE_LIST | FLATTEN_LIST),
        "src_ip": Spec(v.parse_network, None, PARSE_LIST),
        "src_mac": Spec(v.parse_mac, None, PARSE_LIST),
        "src_port": Spec(v.parse_port, None, PARSE_LIST),
        "dest_ip": Spec(v.parse_network, None, PARSE_LIST),
        "dest_port": Spec(v.parse_port, None, PARSE_LIST),
        "icmp_type": Spec(v.parse_icmptype, None, PARSE_LIST),
        "extra": Spec(v.parse_string, None, UNSUPPORTED),
        "limit": Spec(v.parse_limit),
        "limit_burst": Spec(v.parse_int),
        "utc_time": Spec(v.parse_bool),
        "monthdays": Spec(v.parse_string, None, UNSUPPORTED),
        "counter": Spec(v.parse_bool, "1"),
        "log": Spec(v.parse_string),
        "log_limit": Spec(v.parse_limit),
        "target": Spec(v.parse_target),
    }
    for key in _NOT_PALMNET:
        spec[key] = Spec(v.parse_string, None, NOT_IN_PALMNET)
    return spec


def read_rule(report: Reporter, section: UciSection, ruleset: Ruleset, section_id: str) -> None:
    opts = parse_options(report, section, rule_spec(ruleset, section_id))
    if opts is None:
        return
    if not opts["enabled"]:
        report.warn(section, "is disabled, ignoring section", level=NOTICE)
        return
    target = opts.get("target")
    if target in _UNIMPLEMENTED_TARGETS:
        line = report.line_of(section, "target")
        message = f"target '{target}' is not supported by palmnet, skipping section"
        report.warn(section, message, line, level=WARNING, option="target")
        return
    if target in ("dnat", "snat", "masquerade"):
        line = report.line_of(section, "target")
        message = f"option 'target' specifies invalid value '{target}'"
        valid = "ACCEPT, REJECT or DROP (NAT is a redirect section)"
        report.warn(section, message, line, option="target", value=target, valid=valid)
        return
    if opts.get("device") and opts["device"].any:
        line = report.line_of(section, "device")
        report.warn(section, "must not specify '*' as device", line, option="device", value="*")
        return
    if any(p.invert for p in opts["proto"]):
        line = report.line_of(section, "proto")
        message = "negated protocols are not supported by palmnet, skipping section"
        report.warn(section, message, line, level=WARNING, option="proto")
        return
    log = opts.get("log")
    if log is not None:
        flag = v.parse_bool(log)
        opts["log"] = f"{opts['name']}: " if flag else None if flag is False else log
    for proto in opts["proto"]:
        _expand(report, section, ruleset, opts, proto)


def _expand(
    report: Reporter, section: UciSection, ruleset: Ruleset, opts: dict[str, Any], proto: Proto
) -> None:
    """One protocol of a rule: split by family, masks and ICMP type/code."""
    family = opts.get("family")
    icmp: list[IcmpType] = opts.get("icmp_type") or []
    types4: list[IcmpType] = []
    types6: list[IcmpType] = []
    sports = dports = None
    if proto.name == "icmp":
        types4 = [i for i in icmp if i.family in (0, 4)]
        types6 = [i for i in icmp if i.family in (0, 6)]
    elif proto.name == "ipv6-icmp":
        family = 6
        types6 = [i for i in icmp if i.family in (0, 6)]
    elif proto.name in ("tcp", "udp"):
        sports, dports = opts.get("src_port"), opts.get("dest_port")
    src4, src6, src_family = v.split_af(opts.get("src_ip"))
    dest4, dest6, dest_family = v.split_af(opts.get("dest_ip"))
    src, dest = opts.get("src"), opts.get("dest")
    family = v.infer_family(
        family,
        [
            (src_family, "source IP"),
            (dest_family, "destination IP"),
            (src.zone.family if src and src.zone else None, "source zone"),
            (dest.zone.family if dest and dest.zone else None, "destination zone"),
        ],
    )
    if isinstance(family, str):
        report.warn(section, f"{family}, skipping")
        return
    has4, has6 = bool(src4 or dest4 or types4), bool(src6 or dest6 or types6)
    if family is None:
        family = 4 if has4 and not has6 else 6 if has6 and not has4 else 0
    if not family and not has4 and not has6:
        _add(ruleset, opts, 0, proto, (None, None, None), (None, None, None), sports, dports)
        return
    for fam, srcs, dests, types in ((4, src4, dest4, types4), (6, src6, dest6, types6)):
        if family not in (0, fam):
            continue
        whole = [i for i in types if _any_code(i)]
        coded = [i for i in types if not _any_code(i)]
        for saddrs in v.group_by_masking(srcs):
            for daddrs in v.group_by_masking(dests):
                if whole or not coded:
                    _add(ruleset, opts, fam, proto, saddrs, daddrs, sports, dports, whole=whole)
                if coded:
                    _add(ruleset, opts, fam, proto, saddrs, daddrs, sports, dports, coded=coded)


def _any_code(icmp: IcmpType) -> bool:
    """Whether a type matches any code, decided as fw4 decides it.

    fw4 looks at the IPv4 code range for both families, and a name only
    ICMPv6 knows has none: such names (packet-too-big, neighbour-solicitation,
    ...) always become a `type . code` pair with their lowest code, 0. This is
    what OpenWrt routers run (firewall4 tests/01_configuration/01_ruleset,
    tests/03_rules/04_icmp), so palmnet does the same.
    """
    return icmp.v4 is not None and icmp.v4[1:] == (0, 0xFF)


def _lowest_code(icmp: IcmpType, family: int) -> int:
    entry = icmp.v4 if family == 4 else icmp.v6
    assert entry is not None
    return entry[1]


def _add(
    ruleset: Ruleset,
    opts: dict[str, Any],
    family: int,
    proto: Proto,
    saddrs: AddrGroup,
    daddrs: AddrGroup,
    sports: list[Port] | None,
    dports: list[Port] | None,
    *,
    whole: list[IcmpType] | None = None,
    coded: list[IcmpType] | None = None,
) -> None:
    def number(i: IcmpType) -> int:
        entry = i.v4 if family == 4 else i.v6
        assert entry is not None
        return entry[0]

    macs = opts.get("src_mac") or []
    rule = Rule(
        chain="output",
        name=opts["name"],
        family=family,
        proto=proto,
        has_addrs=any(part is not None for part in (*saddrs, *daddrs)),
        has_ports=bool(sports or dports),
        saddrs_pos=_cidrs(saddrs[0]),
        saddrs_neg=_cidrs(saddrs[1]),
        saddrs_masked=saddrs[2],
        daddrs_pos=_cidrs(daddrs[0]),
        daddrs_neg=_cidrs(daddrs[1]),
        daddrs_masked=daddrs[2],
        sports_pos=_ports(sports, False),
        sports_neg=_ports(sports, True),
        dports_pos=_ports(dports, False),
        dports_neg=_ports(dports, True),
        smacs_pos=[m.mac for m in macs if not m.invert] or None,
        smacs_neg=[m.mac for m in macs if m.invert] or None,
        icmp_types=[number(i) for i in whole or []] or None,
        icmp_codes=[f"{number(i)} . {_lowest_code(i, family)}" for i in coded or []] or None,
        limit=opts.get("limit"),
        limit_burst=opts.get("limit_burst"),
        counter=opts["counter"],
        log=opts.get("log"),
        log_limit=opts.get("log_limit"),
        target=opts.get("target"),
    )
    src, dest = opts.get("src"), opts.get("dest")
    rule.src_zone = src.zone if src is not None else None
    rule.dest_zone = dest.zone if dest is not None else None
    if src is not None:
        direction = "forward" if dest is not None else "input"
        rule.chain = f"{direction}_{src.zone.name}" if src.zone else direction
    elif dest is not None:
        rule.chain = f"output_{dest.zone.name}" if dest.zone else "output"
    if rule.target and dest is not None and dest.zone:
        rule.jump_chain = f"{rule.target}_to_{dest.zone.name}"
        dest.zone.dflags.add(rule.target)
    elif rule.target and src is not None and src.zone and src.zone.log and rule.target != "accept":
        rule.jump_chain = f"{rule.target}_from_{src.zone.name}"
        src.zone.sflags.add(rule.target)
    elif rule.target == "reject":
        rule.jump_chain = "handle_reject"
    device = opts.get("device")
    if device is not None:
        if opts.get("direction"):
            rule.oifnames = [device.name]
        else:
            rule.iifnames = [device.name]
    ruleset.rules.append(rule)


def _cidrs(addrs: list[Addr] | None) -> list[str] | None:
    return [v.cidr(a) for a in addrs] if addrs else None


def _ports(ports: list[Port] | None, invert: bool) -> list[str] | None:
    return [p.text() for p in ports or [] if p.invert == invert] or None
