"""`redirect` sections: port forwards (DNAT) and source NAT, as fw4 reads them.

A DNAT redirect lives in dstnat_<src>: traffic arriving through the source
zone with the given destination port is sent to dest_ip:dest_port (dest_port
defaults to src_dport). Without dest_ip it is a local `redirect to` the
router itself. Without any address, fw4 treats an unspecified family as
IPv4 only (its backward-compatible reading of fw3 files); `family any`
makes it both. The source zone then accepts `ct status dnat` in its input_
and forward_ chains, so the forwarded flow passes the filter.

A DNAT redirect with a rewrite address also gets NAT reflection rules (on
by default, from the zones' addresses), and one without `dest` takes the
zone of its `dest_ip`: see fw4_reflection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from palmnet.openwrt import fw4_values as v
from palmnet.openwrt.fw4_model import (
    NOTICE,
    WARNING,
    Addr,
    AddrGroup,
    Network,
    Port,
    Proto,
    Redirect,
    Ruleset,
    ZoneRef,
)
from palmnet.openwrt.fw4_options import (
    DEPRECATED,
    FLATTEN_LIST,
    NOT_IN_PALMNET,
    PARSE_LIST,
    UNSUPPORTED,
    Reporter,
    Spec,
    parse_options,
)
from palmnet.openwrt.fw4_reflection import Addresses, reflection_rules, zone_of
from palmnet.openwrt.fw4_sections import zone_choices, zone_ref_parser
from palmnet.openwrt.uci import UciSection

_NOT_PALMNET = (
    *("ipset", "helper", "start_date", "stop_date", "start_time", "stop_time"),
    *("weekdays", "mark"),
)
_TARGETS = "DNAT or SNAT"


def redirect_spec(ruleset: Ruleset, default_name: str) -> dict[str, Spec]:
    zone_ref, zones = zone_ref_parser(ruleset), zone_choices(ruleset)
    spec = {
        "enabled": Spec(v.parse_bool, "1"),
        "name": Spec(v.parse_string, default_name),
        "_name": Spec(v.parse_string, None, DEPRECATED),
        "family": Spec(v.parse_family),
        "src": Spec(zone_ref, valid=zones),
        "dest": Spec(zone_ref, valid=zones),
        "proto": Spec(v.parse_protocol, "tcpudp", PARSE_LIST | FLATTEN_LIST),
        "src_ip": Spec(v.parse_network),
        "src_mac": Spec(v.parse_mac, None, PARSE_LIST),
        "src_port": Spec(v.parse_port),
        "src_dip": Spec(v.parse_network),
        "src_dport": Spec(v.parse_port),
        "dest_ip": Spec(v.parse_network),
        "dest_port": Spec(v.parse_port),
        "extra": Spec(v.parse_string, None, UNSUPPORTED),
        "limit": Spec(v.parse_limit),
        "limit_burst": Spec(v.parse_int),
        "utc_time": Spec(v.parse_bool),
        "monthdays": Spec(v.parse_string, None, UNSUPPORTED),
        "reflection": Spec(v.parse_bool, "1"),
        "reflection_src": Spec(
            lambda s: v.parse_enum(s, ("internal", "external")),
            "internal",
            0,
            "internal or external",
        ),
        "reflection_zone": Spec(zone_ref, None, PARSE_LIST, zones),
        "counter": Spec(v.parse_bool, "1"),
        "log": Spec(v.parse_string),
        "log_limit": Spec(v.parse_limit),
        "target": Spec(v.parse_target, "dnat", 0, _TARGETS),
    }
    for key in _NOT_PALMNET:
        spec[key] = Spec(v.parse_string, None, NOT_IN_PALMNET)
    return spec


def read_redirect(report: Reporter, section: UciSection, ruleset: Ruleset, section_id: str) -> None:
    opts = parse_options(report, section, redirect_spec(ruleset, section_id))
    if opts is None:
        return
    if not opts["enabled"]:
        report.warn(section, "is disabled, ignoring section", level=NOTICE)
        return
    if opts["target"] not in ("dnat", "snat"):
        line = report.line_of(section, "target")
        message = "has invalid target specified, defaulting to dnat"
        value = section.get("target")
        shown = value if isinstance(value, str) else None
        report.warn(section, message, line, option="target", value=shown, valid=_TARGETS)
        opts["target"] = "dnat"
    if any(p.invert for p in opts["proto"]):
        line = report.line_of(section, "proto")
        message = "negated protocols are not supported by palmnet, skipping section"
        report.warn(section, message, line, level=WARNING, option="proto")
        return
    log = opts.get("log")
    if log is not None:
        flag = v.parse_bool(log)
        opts["log"] = f"{opts['name']}: " if flag else None if flag is False else log
    if opts["target"] == "dnat":
        problem = _check_dnat(opts, ruleset, lambda text: report.warn(section, text, level=WARNING))
    else:
        problem = _check_snat(opts)
    if problem:
        report.warn(section, problem)
        return
    for proto in opts["proto"]:
        _expand(report, section, ruleset, opts, proto)


def _check_dnat(opts: dict[str, Any], ruleset: Ruleset, warn: Callable[[str], None]) -> str | None:
    """Why a DNAT redirect cannot be used, or None; fills in what fw4 infers.

    Without `dest`, the zone whose addresses hold `dest_ip` is taken (said
    in a warning); without `dest_port`, `src_dport`.
    """
    src, dest, dest_ip = opts.get("src"), opts.get("dest"), opts.get("dest_ip")
    if src is None:
        return "has no source specified"
    if src.zone is None:
        return "must not have source '*' for dnat target"
    if dest_ip is not None and dest_ip.invert:
        return "must not specify a negated 'dest_ip' value"
    if dest_ip is not None and any(a.bits == -1 and a.addr2 is None for a in dest_ip.addrs):
        return "must not use non-contiguous masks in 'dest_ip'"
    zone = zone_of(ruleset, dest_ip.addrs) if dest is None and dest_ip is not None else None
    if zone is not None:
        dest = opts["dest"] = ZoneRef(zone)
        warn(f"does not specify a destination, assuming '{zone.name}'")
    if opts.get("dest_port") is None:
        opts["dest_port"] = opts.get("src_dport")
    if opts["reflection"] and dest is not None and dest.zone and src.zone.masq:
        dest.zone.dflags.update(("accept", "dnat", "snat"))
    src.zone.dflags.add("dnat")
    return None


def _check_snat(opts: dict[str, Any]) -> str | None:
    dest, src_dip = opts.get("dest"), opts.get("src_dip")
    if dest is None:
        return "has no destination specified"
    if dest.zone is None:
        return "must not have destination '*' for snat target"
    if src_dip is None:
        return "has no 'src_dip' option specified"
    if src_dip.invert:
        return "must not specify a negated 'src_dip' value"
    if any(a.bits == -1 and a.addr2 is None for a in src_dip.addrs):
        return "must not use non-contiguous masks in 'src_dip'"
    if opts.get("src_mac"):
        return "must not use 'src_mac' option for snat target"
    dest.zone.dflags.add("snat")
    return None


def _expand(
    report: Reporter, section: UciSection, ruleset: Ruleset, opts: dict[str, Any], proto: Proto
) -> None:
    dnat = opts["target"] == "dnat"
    family = 6 if proto.name == "ipv6-icmp" else opts.get("family")
    sip4, sip6, sip_family = v.split_af(_one(opts.get("src_ip")))
    dip4, dip6, dip_family = v.split_af(_one(opts.get("src_dip" if dnat else "dest_ip")))
    rip4, rip6, rip_family = v.split_af(_one(opts.get("dest_ip" if dnat else "src_dip")))
    sport = dport = rport = None
    if proto.name in ("tcp", "udp"):
        sport = opts.get("src_port")
        dport = opts.get("src_dport" if dnat else "dest_port")
        rport = opts.get("dest_port" if dnat else "src_dport")
    src, dest = opts.get("src"), opts.get("dest")
    family = v.infer_family(
        family,
        [
            (sip_family, "source IP"),
            (dip_family, "destination IP"),
            (rip_family, "rewrite IP"),
            (src.zone.family if src and src.zone else None, "source zone"),
            (dest.zone.family if dest and dest.zone else None, "destination zone"),
        ],
    )
    if isinstance(family, str):
        report.warn(section, f"{family}, skipping")
        return
    if dnat:
        addrs = Addresses((dip4, dip6), (rip4, rip6))
        _add_reflection(report, section, ruleset, opts, proto, addrs, (sport, dport, rport))
    if len(rip4) > 1 or len(rip6) > 1:
        message = "specifies multiple rewrite addresses, using only first one"
        report.warn(section, message, level=WARNING)
    has = {4: bool(sip4 or dip4 or rip4), 6: bool(sip6 or dip6 or rip6)}
    if not family and not (has[4] or has[6]):
        fam = 4 if family is None else 0  # fw4 keeps fw3's IPv4-only reading
        _add(
            ruleset,
            opts,
            fam,
            proto,
            (None, None, None),
            (None, None, None),
            None,
            (sport, dport, rport),
        )
        return
    for fam, sip, dip, rip in ((4, sip4, dip4, rip4), (6, sip6, dip6, rip6)):
        if family not in (None, 0, fam) or ((has[4] or has[6]) and not has[fam]):
            continue
        for saddrs in v.group_by_masking(sip):
            for daddrs in v.group_by_masking(dip):
                raddr = rip[0] if rip else None
                _add(ruleset, opts, fam, proto, saddrs, daddrs, raddr, (sport, dport, rport))


def _add_reflection(
    report: Reporter,
    section: UciSection,
    ruleset: Ruleset,
    opts: dict[str, Any],
    proto: Proto,
    addrs: Addresses,
    ports: tuple[Port | None, Port | None, Port | None],
) -> None:
    """The reflection rules of one protocol, before the redirect's own, as fw4 orders them."""

    def notice(text: str) -> None:
        report.warn(section, text, level=NOTICE)

    for r in reflection_rules(opts, addrs, ports, notice):
        _add(ruleset, r.opts, r.family, proto, r.saddrs, r.daddrs, r.raddr, r.ports)


def _one(network: Network | None) -> list[Network] | None:
    return [network] if network is not None else None


def _add(
    ruleset: Ruleset,
    opts: dict[str, Any],
    family: int,
    proto: Proto,
    saddrs: AddrGroup,
    daddrs: AddrGroup,
    raddr: Addr | None,
    ports: tuple[Port | None, Port | None, Port | None],
) -> None:
    sport, dport, rport = ports
    macs = opts.get("src_mac") or []
    redirect = Redirect(
        chain="",
        name=opts["name"],
        family=family,
        proto=proto,
        has_addrs=any(part is not None for part in (*saddrs, *daddrs)),
        has_ports=bool(sport or dport or rport),
        saddrs_pos=[v.cidr(a) for a in saddrs[0]] if saddrs[0] else None,
        saddrs_neg=[v.cidr(a) for a in saddrs[1]] if saddrs[1] else None,
        saddrs_masked=saddrs[2],
        daddrs_pos=[v.cidr(a) for a in daddrs[0]] if daddrs[0] else None,
        daddrs_neg=[v.cidr(a) for a in daddrs[1]] if daddrs[1] else None,
        daddrs_masked=daddrs[2],
        sports_pos=[sport.text()] if sport and not sport.invert else None,
        sports_neg=[sport.text()] if sport and sport.invert else None,
        dports_pos=[dport.text()] if dport and not dport.invert else None,
        dports_neg=[dport.text()] if dport and dport.invert else None,
        smacs_pos=[m.mac for m in macs if not m.invert] or None,
        smacs_neg=[m.mac for m in macs if m.invert] or None,
        limit=opts.get("limit"),
        limit_burst=opts.get("limit_burst"),
        counter=opts["counter"],
        log=opts.get("log"),
        log_limit=opts.get("log_limit"),
        target=opts["target"],
        raddr=raddr,
        rport=rport,
    )
    if redirect.target == "dnat":
        redirect.chain = f"dstnat_{opts['src'].zone.name}"
        opts["src"].zone.dflags.add("dnat")
        if raddr is None:
            redirect.target = "redirect"
    else:
        redirect.chain = f"srcnat_{opts['dest'].zone.name}"
        opts["dest"].zone.dflags.add("snat")
    ruleset.redirects.append(redirect)
