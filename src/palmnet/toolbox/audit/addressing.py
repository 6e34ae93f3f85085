"""Addressing: a SLAAC address in every advertised /64, a DHCPv6 address where
the network offers stateful DHCPv6, a delegated prefix in use on routers
with a PD client (the plan's `pd_client`).

The stimulus is a Router Solicitation from the node itself (rdisc6): the RA
that answers it is what the node's kernel (SLAAC) and the verdict work from.
"""

from __future__ import annotations

import ipaddress
from functools import partial

from palmnet.addressing.eui64 import interface_id
from palmnet.plan.model import InterfacePlan, NodePlan, Plan
from palmnet.toolbox.audit.context import (
    Address,
    AuditContext,
    NetlinkBell,
    addressable,
    running,
)
from palmnet.toolbox.audit.model import Outcome
from palmnet.toolbox.audit.rdisc import parse_rdisc6

SLAAC_SETTLE = 5.0  # seconds for an answered RA to become a usable address (DAD included)
IID_MASK = (1 << 64) - 1

Offer = tuple[ipaddress.IPv6Network, "ipaddress.IPv6Address | None"]  # prefix, router
Range = tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]


def _slaac_kind(address: Address, mac: str) -> str | None:
    """How the interface identifier was formed, or None if not by SLAAC."""
    if "temporary" in address.flags or "permanent" in address.flags:
        return None  # privacy addresses are not stable; static ones are not SLAAC
    if address.prefixlen != 64:
        return None  # DHCPv6 leases are /128
    if mac and int(address.address) & IID_MASK == interface_id(mac):
        return "EUI-64"
    return "stable" if "stable-privacy" in address.flags else "other IID"


def _planned_routers(plan: Plan, iface: InterfacePlan) -> list[NodePlan]:
    """The nodes the plan says advertise on this interface's link."""
    return [
        node
        for node in plan.nodes
        if any(
            i.network == iface.network and i.link_local.ip in iface.routers for i in node.interfaces
        )
    ]


def _slaac_held(
    ctx: AuditContext, iface: str, mac: str, net: ipaddress.IPv6Network
) -> list[tuple[Address, str]]:
    """Usable SLAAC addresses in `net` on `iface`, with how their IID was formed."""
    return [
        (a, kind)
        for a in ctx.addresses(None, iface)
        if a.usable and a.address in net and (kind := _slaac_kind(a, mac))
    ]


def _slaac_on(ctx: AuditContext, iface: InterfacePlan) -> tuple[list[str], list[str]] | None:
    """(found, missing) on one interface, None if no RA offers a /64 there."""
    offered: list[Offer] = [
        (p.prefix, ra.source)
        for ra in ctx.adverts(iface.name)
        for p in ra.prefixes
        if p.autonomous and p.prefix.prefixlen == 64 and p.valid > 0
    ]
    if not offered:
        return None
    mac = ctx.mac(None, iface.name)

    def formed() -> bool:
        return all(_slaac_held(ctx, iface.name, mac, net) for net, _ in offered)

    # The answered RA may have just (re)formed an address: give it its DAD.
    with NetlinkBell(ctx.netns()) as bell:
        bell.wait(formed, SLAAC_SETTLE)
    found, missing = [], []
    for net, router in offered:
        held = _slaac_held(ctx, iface.name, mac, net)
        if held:
            address, kind = held[0]
            found.append(f"{address.address} ({kind}) in {net}, RA from {router}")
        else:
            missing.append(f"no usable SLAAC address in {net} on {iface.name} (RA from {router})")
    return found, missing


def _unanswered(ctx: AuditContext, iface: InterfacePlan) -> tuple[str, bool]:
    """Why no RA answered the RS where the plan expects a router, and whether the
    node is to blame: not when every router of the link is stopped. Addresses the
    node still holds from earlier RAs judge nothing: they live out their lifetimes."""
    routers = _planned_routers(ctx.plan, iface)
    up = [r.name for r in routers if running(ctx.session, r)]
    if not up:
        names = ", ".join(r.name for r in routers)
        return f"no RA answered the RS on {iface.name}: its router {names} is not running", False
    return (
        f"no RA answered the RS on {iface.name}, though its router {', '.join(up)} is running",
        True,
    )


def slaac(ctx: AuditContext) -> Outcome:
    found: list[str] = []
    missing: list[str] = []
    silent: list[str] = []
    own: list[str] = []
    unanswered: list[str] = []  # the link's router is stopped: nothing to judge there
    for iface in addressable(ctx.target):
        if iface.sends_ra:
            own.append(iface.name)  # the node is the router of this link: static addresses
            continue
        result = _slaac_on(ctx, iface)
        if result is None and iface.routers and not ctx.adverts(iface.name):
            why_silent, blamed = _unanswered(ctx, iface)
            (missing if blamed else unanswered).append(why_silent)
            continue
        if result is None:
            silent.append(iface.name)
            continue
        found += result[0]
        missing += result[1]
    if missing:
        return Outcome.failed("; ".join(missing + unanswered + found))
    if found:
        return Outcome.passed("; ".join(found + unanswered))
    if unanswered:
        return Outcome.na("; ".join(unanswered))
    why = []
    if silent:
        why.append(f"no router advertises a /64 with the A flag on {', '.join(silent)}")
    if own:
        why.append(f"the node is the advertising router on {', '.join(own)}")
    return Outcome.na("; ".join(why) or "no interface")


def _dhcp6_ranges(plan: Plan, network: str) -> list[Range]:
    out = []
    for node in plan.nodes:
        for lan in node.lans:
            try:
                iface = node.interface(lan.interface)
            except KeyError:
                continue
            if iface.network == network and lan.dhcp6_range is not None:
                out.append(lan.dhcp6_range)
    return out


def _leased(ctx: AuditContext, iface: str, ranges: list[Range]) -> list[Address]:
    """Usable DHCPv6 addresses (/128, not static) on `iface`, in one of `ranges` if known."""
    return [
        a
        for a in ctx.addresses(None, iface)
        if a.scope == "global"
        and a.usable
        and a.prefixlen == 128
        and "permanent" not in a.flags
        and (not ranges or any(lo <= a.address <= hi for lo, hi in ranges))
    ]


def dhcpv6(ctx: AuditContext) -> Outcome:
    offered = [
        (iface, ra)
        for iface in addressable(ctx.target)
        for ra in ctx.adverts(iface.name)
        if ra.managed
    ]
    if not offered:
        names = ", ".join(i.name for i in addressable(ctx.target))
        return Outcome.na(f"no RA on {names} sets the M flag: the network offers no DHCPv6")
    found: list[str] = []
    missing: list[str] = []
    for iface, ra in offered:
        ranges = _dhcp6_ranges(ctx.plan, iface.network)
        # dhcpcd may still be in its exchange (after `up`, a restart, a bounce).
        with NetlinkBell(ctx.netns()) as bell:
            bell.wait(partial(_has_lease, ctx, iface.name, ranges), ctx.options.deadline)
        where = (
            " or ".join(f"{lo}-{hi}" for lo, hi in ranges)
            if ranges
            else "a range unknown to the plan"
        )
        held = _leased(ctx, iface.name, ranges)
        if held:
            found.append(
                f"{held[0]} on {iface.name} from the DHCPv6 range {where} (M flag from {ra.source})"
            )
        else:
            missing.append(
                f"M flag from {ra.source} on {iface.name} but no lease from {where}"
                f" after {ctx.options.deadline:g} s"
            )
    if missing:
        return Outcome.failed("; ".join(missing + found))
    return Outcome.passed("; ".join(found))


def _has_lease(ctx: AuditContext, iface: str, ranges: list[Range]) -> bool:
    return bool(_leased(ctx, iface, ranges))


def _delegations(ctx: AuditContext) -> list[ipaddress.IPv6Network]:
    """Prefixes the node holds by delegation: dhcpcd's unreachable routes for them."""
    return [
        ipaddress.IPv6Network(r["dst"], strict=False)
        for r in ctx.ip_json(None, "-6", "route", "show", "proto", "dhcp")
        if r.get("type") == "unreachable" and ":" in str(r.get("dst", ""))
    ]


def _lan_observer(ctx: AuditContext, iface: InterfacePlan) -> tuple[NodePlan, str]:
    """Who looks at a LAN's RA: a running host on it if any, else the node itself."""
    others = [
        (n, i)
        for n in ctx.plan.nodes
        if n.name != ctx.target.name and running(ctx.session, n)
        for i in addressable(n)
        if i.network == iface.network
    ]
    others.sort(key=lambda p: p[0].kind != "host")
    return (others[0][0], others[0][1].name) if others else (ctx.target, iface.name)


def prefix_delegation(ctx: AuditContext) -> Outcome:
    """A router with a PD client holds a delegation and numbers its LANs from it.

    Judged on what the router does with its lease: the delegated prefix is in
    its routing table (dhcpcd's unreachable route for it), each LAN the plan
    assigns a share holds an address from the delegation, and the RA on that
    LAN, as a host there sees it, announces the /64.
    """
    client = ctx.target.pd_client
    if client is None:
        if ctx.target.kind == "host":
            return Outcome.na("a host: prefix delegation is for routers")
        return Outcome.na("a router with no prefix delegation client (no reqprefix on its WAN)")
    deadline = ctx.options.deadline
    with NetlinkBell(ctx.netns()) as bell:
        bell.wait(lambda: bool(_delegations(ctx)), deadline)
    held = _delegations(ctx)
    if not held:
        return Outcome.failed(f"no prefix delegated over {client.wan} after {deadline:g} s")
    parts = [
        f"delegated {', '.join(map(str, held))} over {client.wan}"
        + (
            ""
            if client.delegated is None
            else " (as planned)"
            if client.delegated in held
            else f" (the plan expected {client.delegated})"
        )
    ]
    bad = []
    for share in client.assignments:
        iface = ctx.target.interface(share.interface)
        inside = [
            a
            for a in ctx.addresses(None, iface.name)
            if a.scope == "global" and a.usable and any(a.address in p for p in held)
        ]
        if not inside:
            bad.append(f"{iface.name} holds no address from the delegation")
            continue
        lan = inside[0].interface_address.network
        observer, where = _lan_observer(ctx, iface)
        proc = ctx.run(observer, ["rdisc6", "-n", "-m", "-w", "1000", "-r", "1", where])
        announced = {p.prefix for ra in parse_rdisc6(proc.stdout) for p in ra.prefixes}
        seen = f"its RA seen by {observer.name} on {where}"
        if lan in announced:
            parts.append(f"{iface.name} holds {inside[0]} and {seen} announces {lan}")
        else:
            bad.append(f"{iface.name} holds {inside[0]} but {seen} does not announce {lan}")
    if bad:
        return Outcome.failed("; ".join(bad + parts))
    return Outcome.passed("; ".join(parts))
