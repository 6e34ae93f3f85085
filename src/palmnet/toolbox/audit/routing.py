"""Routing: the default route's next hop is link-local (RFC 4861 routers are
known by their link-local address: GUAs may be renumbered, link-locals are
not), and the RA's RDNSS/DNSSL reach the node's resolver.

A host's resolver is its resolv.conf, which rdnssd fills from the RA. A router
resolves through its own DNS server, as OpenWrt does (resolv.conf names
127.0.0.1/::1, or nothing, which the C library reads as 127.0.0.1, and dnsmasq
forwards to the upstream servers learnt on the WAN): there the RA's RDNSS is
not expected in resolv.conf, but behind the local server.
"""

from __future__ import annotations

import ipaddress
import time

from palmnet.toolbox.audit.context import AuditContext, addressable
from palmnet.toolbox.audit.model import Outcome

RESOLVER_SETTLE = 3.0  # seconds for rdnssd to write resolv.conf after the RA
RESOLVER_POLL = 0.1

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _next_hops(routes: list[dict]) -> list[tuple[str | None, str, str]]:
    """(gateway, device, protocol) of every unicast default route, multipath expanded."""
    out = []
    for r in routes:
        if r.get("type", "unicast") != "unicast":
            continue  # unreachable / blackhole defaults carry no next hop
        proto = str(r.get("protocol", "?"))
        for hop in r.get("nexthops") or [r]:
            out.append((hop.get("gateway"), str(hop.get("dev", r.get("dev", "?"))), proto))
    return out


def default_route_ll(ctx: AuditContext) -> Outcome:
    hops = _next_hops(ctx.ip_json(None, "-6", "route", "show", "default"))
    if not hops:
        routers = [
            f"{ra.source} on {i.name}"
            for i in addressable(ctx.target)
            for ra in ctx.adverts(i.name)
            if ra.router_lifetime > 0
        ]
        if routers:
            return Outcome.failed(
                f"no IPv6 default route, although {', '.join(routers)} advertises a default router"
            )
        return Outcome.na("no IPv6 default route and no RA offers one (the top of the lab)")
    shown = []
    bad = []
    for gateway, dev, proto in hops:
        if gateway is None:
            shown.append(f"default dev {dev} with no next hop (proto {proto})")
            bad.append(dev)
            continue
        hop = ipaddress.IPv6Address(gateway.split("%")[0])
        shown.append(f"default via {hop}%{dev} (proto {proto})")
        if not hop.is_link_local:
            bad.append(str(hop))
    if bad:
        return Outcome.failed(
            f"next hop not link-local: {', '.join(bad)}; the routes: {'; '.join(shown)}"
        )
    return Outcome.passed("; ".join(shown))


def parse_resolv_conf(text: str) -> tuple[list[ipaddress.IPv6Address], list[str]]:
    """IPv6 name servers (zone dropped) and search domains of a resolv.conf."""
    servers = [a for a in name_servers(text, default=False) if isinstance(a, ipaddress.IPv6Address)]
    search: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] in ("search", "domain"):
            search += [w.rstrip(".").lower() for w in words[1:]]
    return servers, search


LOCAL_RESOLVER = ipaddress.IPv4Address("127.0.0.1")


def name_servers(text: str, default: bool = True) -> list[IPAddress]:
    """Every name server of a resolv.conf, IPv4 and IPv6 (zone dropped), in order.

    With `default`, a file that names none gives 127.0.0.1: the C library then
    asks the name server on the local machine (resolv.conf(5)).
    """
    servers: list[IPAddress] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                servers.append(ipaddress.ip_address(words[1].split("%")[0]))
            except ValueError:
                continue
    return servers or ([LOCAL_RESOLVER] if default else [])


def forwarders(upstream: tuple[str, ...]) -> list[IPAddress]:
    """The addresses of dnsmasq `server` values (OpenWrt `list server`):
    ADDRESS[#PORT] or /DOMAIN/[ADDRESS[#PORT]]."""
    out: list[IPAddress] = []
    for value in upstream:
        text = value.rsplit("/", 1)[-1].split("#", 1)[0]
        try:
            out.append(ipaddress.ip_address(text))
        except ValueError:
            continue  # /domain/ alone: answered locally
    return out


def lookup(ctx: AuditContext, server: IPAddress, name: str) -> list[str]:
    """The A and AAAA records `server` gives for `name`, asked from the node."""
    out = []
    for rtype in ("AAAA", "A"):
        proc = ctx.run(None, ["dig", "+short", "+time=2", "+tries=1", f"@{server}", rtype, name])
        for word in proc.stdout.split():
            try:
                out.append(str(ipaddress.ip_address(word)))
            except ValueError:
                continue  # a CNAME on the way, or ';; connection timed out'
    return out


def _own_resolver(
    ctx: AuditContext, text: str, rdnss: list[ipaddress.IPv6Address], offered: str
) -> Outcome | None:
    """The verdict on a router that resolves through its own DNS server (resolv.conf
    names only loopback addresses, or none), None when it does not."""
    servers = name_servers(text)
    if ctx.target.kind == "host" or not all(a.is_loopback for a in servers):
        return None
    server = servers[0]
    where = (
        f"resolv.conf names {', '.join(map(str, servers))}"
        if name_servers(text, default=False)
        else f"resolv.conf names no server, so {server}"
    )
    name = f"{ctx.target.name}.{ctx.plan.domain}"
    answers = lookup(ctx, server, name)
    if not answers and ctx.target.dns is not None:
        return Outcome.failed(
            f"{offered}; a router, and {where}, where its own DNS server (planned) does "
            f"not answer {name}: is dnsmasq running? (palmnet ls shows its daemons)"
        )
    if not answers:
        return Outcome.na(
            f"{offered}; a router, and {where}, where no DNS server answers {name}:"
            " it does not take its resolver from RAs (those are for hosts)"
        )
    own = f"{offered}; {where}: its own DNS server, which answers {name} ({answers[0]})"
    upstream = forwarders(ctx.target.dns.upstream) if ctx.target.dns is not None else []
    forwarded = [a for a in rdnss if a in upstream]
    if forwarded:
        return Outcome.passed(f"{own} and forwards to {', '.join(map(str, forwarded))}")
    forwards = (
        f"forwards to {', '.join(map(str, upstream))}" if upstream else "forwards to no server"
    )
    return Outcome.na(
        f"{own}, as an OpenWrt router's does; it {forwards} (OpenWrt `list server`), not to"
        " the RA's RDNSS: the RA's DNS options are for the hosts of the link"
    )


def rdnss_dnssl(ctx: AuditContext) -> Outcome:
    rdnss: list[ipaddress.IPv6Address] = []
    dnssl: list[str] = []
    sources = []
    for iface in addressable(ctx.target):
        for ra in ctx.adverts(iface.name):
            if ra.rdnss or ra.dnssl:
                sources.append(f"{ra.source} on {iface.name}")
            rdnss += [a for a in ra.rdnss if a not in rdnss]
            dnssl += [d.lower() for d in ra.dnssl if d.lower() not in dnssl]
    if not rdnss and not dnssl:
        return Outcome.na("no RA carries RDNSS or DNSSL")
    wanted_servers = rdnss[:3]  # a resolv.conf holds three name servers (MAXNS)

    def missing(text: str) -> tuple[list, list]:
        servers, search = parse_resolv_conf(text)
        return (
            [a for a in wanted_servers if a not in servers],
            [d for d in dnssl if d not in search],
        )

    # rdnssd writes a host's resolv.conf after the RA; a router's is written at start.
    deadline = time.monotonic() + (RESOLVER_SETTLE if ctx.target.kind == "host" else 0)
    while True:
        text = ctx.read_file("/etc/resolv.conf") or ""
        lost_servers, lost_domains = missing(text)
        if not (lost_servers or lost_domains) or time.monotonic() > deadline:
            break
        time.sleep(RESOLVER_POLL)  # poll: rdnssd tells nobody when it has written the file
    offered = (
        f"RA from {', '.join(sources)} carries RDNSS {', '.join(map(str, rdnss)) or '-'}"
        f" and DNSSL {', '.join(dnssl) or '-'}"
    )
    if lost_servers:
        own = _own_resolver(ctx, text, rdnss, offered)
        if own is not None:
            return own
    if lost_servers or lost_domains:
        lost = [f"nameserver {a}" for a in lost_servers] + [f"search {d}" for d in lost_domains]
        has = [
            " ".join(line.split())
            for line in text.splitlines()
            if line.split()[:1] in (["nameserver"], ["search"], ["domain"])
        ]
        return Outcome.failed(
            f"{offered}; /etc/resolv.conf lacks {', '.join(lost)}"
            f" (it has: {'; '.join(has) or 'nothing'})"
        )
    return Outcome.passed(f"{offered}; /etc/resolv.conf has them")
