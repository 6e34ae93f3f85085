"""NAT reflection ("hairpin NAT") of DNAT redirects, and the zone of a rewrite address.

A port forward wan:8080 -> 192.168.1.10:80 works from the internet; without
more, a LAN host that uses the router's public address gets nothing back:
its packet reaches the router on the LAN side, where the wan DNAT does not
apply. fw4 therefore adds, for each DNAT redirect with a rewrite address
(option `reflection`, on by default), two rules per address family whose
source zone masquerades (`masq` for IPv4, `masq6` for IPv6):

    dstnat_<rzone>  from the internal addresses, to the external ones:
                    the same DNAT
    srcnat_<rzone>  from the internal addresses, to the rewrite address and
                    port: SNAT to the router's own address

The SNAT makes the server answer through the router, so the client sees
the reply come from the address it asked. `rzone` is each `reflection_zone`
(default: the redirect's dest zone). The internal addresses are the
rzone's related subnets (its networks' addresses and `subnet`s); the
external ones are `src_dip`, else the host addresses of the source zone.
`reflection_src internal` (the default) SNATs to the rzone address in the
rewrite address's subnet (else its first one), `external` to the first
external address. Rules are named "<name> (reflection)" and carry the
redirect's limit, but no counter, log or src_mac, as in fw4.

All of it needs the zones' addresses (Networks.addresses, what netifd tells
fw4). Where one is missing, reflection is left out with fw4's message; it
is reported as a notice, since nothing in the file is wrong: fw4 compiles
again when the interface comes up.

A DNAT redirect without `dest` but with `dest_ip` takes the zone whose
related subnets hold that address (`zone_of`), as fw4 does, with a warning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from palmnet.openwrt import fw4_values as v
from palmnet.openwrt.fw4_model import Addr, AddrGroup, Port, Ruleset, Zone, ZoneRef

Ports = tuple[Port | None, Port | None, Port | None]  # source, destination, rewrite


@dataclass(frozen=True)
class NatRule:
    """One reflection rule for fw4_redirects to add, as fw4's add_rule takes it."""

    opts: dict[str, Any]
    family: int
    saddrs: AddrGroup
    daddrs: AddrGroup
    raddr: Addr
    ports: Ports


@dataclass(frozen=True)
class Addresses:
    """The addresses of one redirect and protocol, split by family (index 0: v4, 1: v6)."""

    dest: tuple[list[Addr], list[Addr]]  # src_dip: the external addresses it names
    rewrite: tuple[list[Addr], list[Addr]]  # dest_ip


def _masked(addr: str, mask: str | None) -> int:
    value = int(ipaddress.ip_address(addr))
    return value & int(ipaddress.ip_address(mask)) if mask else value


def _within(addr: Addr, subnet: Addr) -> bool:
    """fw4's test: `addr` and `subnet` agree under the subnet's mask."""
    if addr.family != subnet.family:
        return False
    return _masked(addr.addr, subnet.mask) == _masked(subnet.addr, subnet.mask)


def zone_of(ruleset: Ruleset, addrs: tuple[Addr, ...]) -> Zone | None:
    """The first zone with a related subnet holding one of `addrs` (fw4 resolve_dest)."""
    for zone in ruleset.zones:
        for subnet in zone.related_subnets:
            if any(_within(a, subnet) for a in addrs):
                return zone
    return None


def _host(a: Addr) -> Addr:
    """fw4's to_hostaddr: the address alone, as a /32 or /128, not negated."""
    width = 32 if a.family == 4 else 128
    return Addr(a.family, a.addr, str(ipaddress.ip_address((1 << width) - 1)), width)


def _by_family(addrs: list[Addr]) -> tuple[list[Addr], list[Addr]]:
    """IPv4 and IPv6 apart; fw4 drops each address's own `!` on the way."""
    plain = [Addr(a.family, a.addr, a.mask, a.bits, False, a.addr2) for a in addrs]
    return [a for a in plain if a.family == 4], [a for a in plain if a.family == 6]


def reflection_rules(
    opts: dict[str, Any], addrs: Addresses, ports: Ports, warn: Callable[[str], None]
) -> list[NatRule]:
    """The reflection rules of one protocol of a DNAT redirect, in fw4's order."""
    src, dest = opts.get("src"), opts.get("dest")
    rewrite = addrs.rewrite
    if not opts["reflection"] or not (rewrite[0] or rewrite[1]):
        return []
    if src is None or src.zone is None or dest is None or dest.zone is None:
        return []
    has_src_dip = opts.get("src_dip") is not None
    external = (
        addrs.dest if has_src_dip else _by_family([_host(a) for a in src.zone.related_subnets])
    )
    rules: list[NatRule] = []
    for rzone in opts.get("reflection_zone") or [dest]:
        if rzone.zone is None:
            continue  # '*' names no zone and so no addresses
        internal = _by_family(rzone.zone.related_subnets)
        for i, masq in enumerate((src.zone.masq, src.zone.masq6)):
            if masq and rewrite[i]:
                rules += _family_rules(opts, rzone, i, internal, external, rewrite, ports, warn)
    return rules


def _snat_address(
    opts: dict[str, Any],
    rzone: Zone,
    rewrite: Addr,
    candidates: list[Addr],
) -> Addr | None:
    """Whom the server sees the reflected connection from (reflection_src)."""
    if opts["reflection_src"] == "internal":
        inside = next((s for s in rzone.related_subnets if _within(rewrite, s)), None)
        if inside is not None:
            return inside
    return candidates[0] if candidates else None


def _family_rules(
    opts: dict[str, Any],
    rzone: ZoneRef,
    i: int,
    internal: tuple[list[Addr], list[Addr]],
    external: tuple[list[Addr], list[Addr]],
    rewrite: tuple[list[Addr], list[Addr]],
    ports: Ports,
    warn: Callable[[str], None],
) -> list[NatRule]:
    """The DNAT and SNAT reflection rules of one address family, or why there are none."""
    assert rzone.zone is not None
    candidates = internal[i] if opts["reflection_src"] == "internal" else external[i]
    snat = _snat_address(opts, rzone.zone, rewrite[i][0], candidates)
    if snat is None:
        warn(f"{opts['reflection_src']} rewrite IP cannot be determined, disabling reflection")
        return []
    if not internal[i]:
        warn("internal address range cannot be determined, disabling reflection")
        return []
    if not external[i]:
        warn("external address range cannot be determined, disabling reflection")
        return []
    family = 6 if i else 4
    base = {
        "name": f"{opts['name']} (reflection)",
        "counter": False,
        "limit": opts.get("limit"),
        "limit_burst": opts.get("limit_burst"),
    }
    dnat = {**base, "target": "dnat", "src": rzone, "dest": None}
    snat_opts = {**base, "target": "snat", "src": None, "dest": rzone}
    rport = ports[2]
    rules = [
        NatRule(dnat, family, saddrs, daddrs, rewrite[i][0], ports)
        for saddrs in v.group_by_masking(internal[i])
        for daddrs in v.group_by_masking(external[i])
    ]
    rules += [
        NatRule(snat_opts, family, saddrs, daddrs, _host(snat), (None, rport, None))
        for daddrs in v.group_by_masking(rewrite[i])
        for saddrs in v.group_by_masking(internal[i])
    ]
    return rules
