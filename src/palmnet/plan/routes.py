"""Static routes of the topology, their next hops resolved by the plan.

`via: NODE` or `via: NODE:IFACE` becomes that node's link-local address on
the network both share (for IPv6; for an IPv4 route, its IPv4 address in a
subnet this node has an address in too, as the kernel needs the gateway on
link), as a router's neighbours see it; `via: ADDRESS` is used as written,
on the interface whose network holds it (`ADDRESS%IFACE` names the interface,
which a link-local next hop needs). So the upstream reaches a LAN prefix
before prefix delegation exists, and the route survives restarts (stable MACs).

Everything the kernel would refuse at `up` is refused here, at the route's
line: a next hop that is the node itself or one of its own addresses, an
interface the node lacks, a gateway not on any of its links, a destination
routed twice.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from palmnet.errors import InputError
from palmnet.plan.model import InterfacePlan, IPAddr, IPNet, NodePlan, RoutePlan
from palmnet.topology.describe import reason, shown
from palmnet.topology.model import Lab, RouteSpec


class _RouteError(Exception):
    """A route that cannot be made: the key ("to" or "via") and why."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _usable(node: NodePlan) -> list[InterfacePlan]:
    return [i for i in node.interfaces if i.master is None]


def _on_link(
    node: NodePlan, iface: InterfacePlan
) -> list[ipaddress.IPv6Interface | ipaddress.IPv4Interface]:
    """Addresses whose prefixes are on link when the node's routes are added: a
    router's own statics (its SLAAC and DHCP ones come later), a host's all."""
    if node.kind == "host":
        return [*iface.ipv6, *iface.ipv4]
    return [iface.link_local, *iface.ipv6_static, *iface.ipv6_delegated, *iface.ipv4_static]


def _own(node: NodePlan, addr: IPAddr) -> str | None:
    for iface in node.interfaces:
        held: list[IPAddr] = [a.ip for a in iface.ipv6] + [a.ip for a in iface.ipv4]
        if addr in held:
            return iface.name
    return None


def _check_host_part(addr: IPAddr, net: IPNet) -> None:
    """The kernel refuses an IPv4 gateway that is its subnet's broadcast address
    ("Nexthop has invalid gateway"), and the network address is no neighbour."""
    if net.version != 4 or net.prefixlen > 30:
        return
    if addr in (net.broadcast_address, net.network_address):
        which = "broadcast" if addr == net.broadcast_address else "network"
        raise _RouteError(
            "via", f"{addr} is the {which} address of {net}, not a neighbour: use a host's"
        )


def _via_address(me: NodePlan, spec: RouteSpec, to: IPNet) -> RoutePlan:
    via = spec.via
    text, _, dev = via.partition("%")
    addr = ipaddress.ip_address(text)
    if addr.version != to.version:
        raise _RouteError("via", f"{via} and {spec.to} are of different IP versions")
    mine = _own(me, addr)
    if mine is not None:
        raise _RouteError(
            "via", f"{addr} is {me.name}'s own address (on {mine}): a next hop is a neighbour"
        )
    if addr.is_multicast or addr.is_unspecified or addr.is_loopback:
        raise _RouteError("via", f"{addr} cannot be a next hop (not a unicast address)")
    names = [i.name for i in _usable(me)]
    if dev:
        if dev not in names:
            raise _RouteError(
                "via", f"no interface {shown(dev)} on {me.name} (interfaces: {', '.join(names)})"
            )
        return RoutePlan(to, addr, dev)
    if addr.is_link_local:
        raise _RouteError(
            "via",
            f"a link-local next hop needs its interface: {addr}%{names[0] if names else 'IF'}",
        )
    for i in _usable(me):
        for a in _on_link(me, i):
            if addr in a.network:
                _check_host_part(addr, a.network)
                return RoutePlan(to, addr, i.name)
    raise _RouteError("via", f"{addr}: no interface of {me.name} has an address on its network")


def _via_node(nodes: dict[str, NodePlan], me: NodePlan, spec: RouteSpec, to: IPNet) -> RoutePlan:
    peer_name, _, peer_if = spec.via.partition(":")
    if peer_name == me.name:
        raise _RouteError("via", f"{spec.via} is this node itself: a next hop is a neighbour")
    peer = nodes.get(peer_name)
    if peer is None:
        raise _RouteError("via", f"no node {shown(peer_name)} in the lab")
    theirs_all = _usable(peer)
    if peer_if and peer_if not in {i.name for i in theirs_all}:
        known = ", ".join(i.name for i in theirs_all)
        raise _RouteError("via", f"no interface {shown(peer_if)} on {peer_name} ({known})")
    shared = [
        (mine, theirs)
        for mine in _usable(me)
        for theirs in theirs_all
        if theirs.network == mine.network and (not peer_if or theirs.name == peer_if)
    ]
    if not shared:
        raise _RouteError("via", f"{peer_name} shares no network with {me.name}")
    if to.version == 6:
        mine, theirs = shared[0]
        return RoutePlan(to, theirs.link_local.ip, mine.name)
    for mine, theirs in shared:
        subnets = [a.network for a in _on_link(me, mine) if a.version == 4]
        for gateway in theirs.ipv4:
            if any(gateway.ip in net for net in subnets):
                return RoutePlan(to, gateway.ip, mine.name)
    raise _RouteError(
        "via",
        f"{peer_name} has no IPv4 address in a subnet of {me.name}'s on the networks they "
        f"share ({', '.join(dict.fromkeys(m.network for m, _ in shared))}): an IPv4 next "
        "hop must be on link",
    )


def _one(nodes: dict[str, NodePlan], me: NodePlan, spec: RouteSpec) -> RoutePlan:
    try:
        to = ipaddress.ip_network(spec.to, strict=True)
    except ValueError as exc:
        raise _RouteError("to", f"{shown(spec.to)} is not a prefix ({reason(exc)})") from None
    try:
        ipaddress.ip_address(spec.via.partition("%")[0])
    except ValueError:
        return _via_node(nodes, me, spec, to)
    return _via_address(me, spec, to)


def resolve_routes(lab: Lab, nodes: list[NodePlan]) -> list[NodePlan]:
    """Every node's `routes:` resolved; a route `up` could not add is an InputError
    at the line that wrote it."""
    by_name = {n.name: n for n in nodes}
    out = []
    for n in nodes:
        node = lab.nodes.get(n.name)
        specs = node.routes if node is not None else ()
        routed = {r.to: "the UCI gateway option" for r in n.routes}
        resolved = []
        for index, spec in enumerate(specs):
            try:
                route = _one(by_name, n, spec)
                if route.to in routed:
                    raise _RouteError("to", f"{route.to} is already routed by {routed[route.to]}")
            except _RouteError as exc:
                assert node is not None
                line, key = lab.where(node, "routes", index, exc.key)
                raise InputError(exc.message, file=str(lab.source), line=line, key=key) from None
            routed[route.to] = f"routes[{index}]"
            resolved.append(route)
        if resolved:
            n = dataclasses.replace(n, routes=(*n.routes, *resolved))
        out.append(n)
    return out
