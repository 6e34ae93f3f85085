"""NAT64, DNS64 and 464XLAT, judged by what the node gets (issue 14).

- `nat64_prefix`: the node's resolver (its own resolv.conf, learnt from the RA)
  answers `ipv4only.arpa` with synthesised AAAA records, and the prefix found
  in them (RFC 7050) is what the lab's NAT64 translates;
- `dns64_synthesis`: a name of the lab that has only A records gets AAAA
  records from that resolver, each the A record embedded in the prefix (RFC
  6052), so an IPv6-only host can reach it by name;
- `clat_ipv4_literal`: with a CLAT, an IPv4 address of the lab behind the
  NAT64 answers a ping from the node by its literal, through the CLAT's device.

Each is N/A where it cannot apply: no NAT64 in the lab, no IPv4-only name, no
CLAT on the node, and for the first two a node with no IPv6 path to the NAT64
(no usable global IPv6 address, or no route to the prefix: an IPv4-only node
on the translator's IPv4 side is not its client).
"""

from __future__ import annotations

import ipaddress

from palmnet.addressing.nat64 import IPV4ONLY_NAME, discover_prefix, extract
from palmnet.plan.model import NodePlan
from palmnet.toolbox.audit.context import AuditContext
from palmnet.toolbox.audit.model import Outcome
from palmnet.toolbox.audit.routing import IPAddress, name_servers

DIG_TIMEOUT = ["+time=2", "+tries=2"]


def _nat64_nodes(ctx: AuditContext) -> list[NodePlan]:
    return [n for n in ctx.plan.nodes if n.nat64 is not None]


def _resolver(ctx: AuditContext) -> IPAddress:
    """The node's first name server (127.0.0.1 where resolv.conf names none)."""
    return name_servers(ctx.read_file("/etc/resolv.conf") or "")[0]


def _not_a_client(ctx: AuditContext, plats: list[NodePlan]) -> str | None:
    """Why the node cannot use the lab's NAT64 (None if it can): no usable global
    IPv6 address, or no route to the prefix, as the kernel says."""
    if not any(a.scope == "global" and a.usable for a in ctx.addresses(None)):
        return "the node has no global IPv6 address: it is not a NAT64 client"
    prefixes = [n.nat64.prefix for n in plats if n.nat64 is not None]
    for prefix in prefixes:
        if ctx.run(None, ["ip", "-6", "route", "get", str(prefix[1])]).returncode == 0:
            return None
    shown = ", ".join(map(str, prefixes))
    return f"the node has no IPv6 route to the NAT64 prefix {shown}: it is not a NAT64 client"


def _aaaa(ctx: AuditContext, server: IPAddress, name: str) -> list[ipaddress.IPv6Address]:
    proc = ctx.run(None, ["dig", "+short", *DIG_TIMEOUT, f"@{server}", "AAAA", name])
    out = []
    for word in proc.stdout.split():
        try:
            out.append(ipaddress.IPv6Address(word))
        except ValueError:
            continue  # a CNAME on the way
    return out


def _discovered(ctx: AuditContext) -> tuple[ipaddress.IPv6Network | None, str]:
    """The prefix RFC 7050 finds through the node's resolver, and how it was found."""
    server = _resolver(ctx)
    answers = _aaaa(ctx, server, IPV4ONLY_NAME)
    prefix = discover_prefix(answers)
    shown = ", ".join(map(str, answers)) or "none"
    return prefix, f"{IPV4ONLY_NAME} AAAA from {server}: {shown}"


def nat64_prefix(ctx: AuditContext) -> Outcome:
    plats = _nat64_nodes(ctx)
    if not plats:
        return Outcome.na("no node of the lab runs nat64")
    why = _not_a_client(ctx, plats)
    if why is not None:
        return Outcome.na(why)
    prefix, how = _discovered(ctx)
    offered = {n.nat64.prefix for n in plats if n.nat64 is not None}
    if prefix is None:
        return Outcome.failed(f"no NAT64 prefix found (RFC 7050): {how}")
    if prefix not in offered:
        names = ", ".join(str(p) for p in offered)
        return Outcome.failed(
            f"found {prefix}, which no NAT64 of the lab translates ({names}): {how}"
        )
    return Outcome.passed(f"prefix {prefix} (RFC 7050): {how}")


def _ipv4_only_names(ctx: AuditContext) -> list[tuple[str, ipaddress.IPv4Address]]:
    out = []
    for node in ctx.plan.nodes:
        v4 = [a.ip for i in node.interfaces for a in i.ipv4_static]
        v6 = [a for i in node.interfaces for a in i.ipv6 if not a.is_link_local]
        if v4 and not v6:
            out.append((f"{node.name}.{ctx.plan.domain}", v4[0]))
    return out


def dns64_synthesis(ctx: AuditContext) -> Outcome:
    plats = _nat64_nodes(ctx)
    if not plats:
        return Outcome.na("no node of the lab runs nat64")
    names = _ipv4_only_names(ctx)
    if not names:
        return Outcome.na("no name of the lab has only IPv4 addresses")
    why = _not_a_client(ctx, plats)
    if why is not None:
        return Outcome.na(why)
    prefix, how = _discovered(ctx)
    server = _resolver(ctx)
    if prefix is None:
        return Outcome.failed(f"no DNS64 prefix to check against: {how}")
    name, ipv4 = names[0]
    answers = _aaaa(ctx, server, name)
    if not answers:
        return Outcome.failed(f"{name} (A {ipv4}) has no AAAA from {server}: nothing synthesised")
    wrong = [a for a in answers if a not in prefix or extract(prefix, a) != ipv4]
    if wrong:
        return Outcome.failed(
            f"{name} (A {ipv4}): AAAA {', '.join(map(str, wrong))} is not {ipv4} in {prefix}"
        )
    return Outcome.passed(f"{name} (A {ipv4}) -> AAAA {', '.join(map(str, answers))} from {server}")


def _ipv4_target(ctx: AuditContext) -> ipaddress.IPv4Address | None:
    for _, ipv4 in _ipv4_only_names(ctx):
        return ipv4
    for node in ctx.plan.nodes:
        if node.name != ctx.target.name:
            for iface in node.interfaces:
                if iface.ipv4_static:
                    return iface.ipv4_static[0].ip
    return None


def clat_ipv4_literal(ctx: AuditContext) -> Outcome:
    clat = ctx.target.clat
    if clat is None:
        return Outcome.na("no CLAT on this node (clat: true)")
    target = _ipv4_target(ctx)
    if target is None:
        return Outcome.na("no IPv4 address in the lab to reach")
    route = ctx.run(None, ["ip", "-4", "route", "get", str(target)])
    if f"dev {clat.device}" not in route.stdout:
        said = (route.stdout + route.stderr).strip()
        return Outcome.failed(f"no IPv4 route to {target} through {clat.device}: {said}")
    for _ in range(3):  # the first packet may wait for neighbour discovery on the way
        proc = ctx.run(None, ["ping", "-4", "-n", "-c", "1", "-W", "2", str(target)], timeout=10)
        if proc.returncode == 0:
            line = next((x for x in proc.stdout.splitlines() if "time=" in x), "").strip()
            return Outcome.passed(f"{target} by its literal through {clat.device}: {line}")
    return Outcome.failed(f"{target} does not answer a ping through {clat.device}")
