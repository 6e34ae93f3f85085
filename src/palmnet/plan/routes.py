"""Static routes of the topology, their next hops resolved by the plan.

`via: NODE` or `via: NODE:IFACE` becomes that node's link-local address on
the network both share (for IPv6; its IPv4 address there for an IPv4 route),
as a router's neighbours see it; `via: ADDRESS` is used as written, on the
interface whose network holds it. So the upstream reaches a LAN prefix before
prefix delegation exists, and the route survives restarts (stable MACs).
"""

from __future__ import annotations

import dataclasses
import ipaddress

from palmnet.errors import InputError
from palmnet.plan.model import InterfacePlan, NodePlan, RoutePlan
from palmnet.topology.model import Lab, RouteSpec


def _err(lab: Lab, node: str, index: int, message: str) -> InputError:
    line = lab.nodes[node].line if node in lab.nodes else None
    return InputError(message, file=str(lab.source), line=line, key=f"nodes.{node}.routes.{index}")


def _usable(node: NodePlan) -> list[InterfacePlan]:
    return [i for i in node.interfaces if i.master is None]


def _one(
    lab: Lab, nodes: dict[str, NodePlan], me: NodePlan, index: int, spec: RouteSpec
) -> RoutePlan:
    try:
        to = ipaddress.ip_network(spec.to, strict=True)
    except ValueError as exc:
        raise _err(lab, me.name, index, f"to: {spec.to!r} is not a prefix ({exc})") from None
    v6 = to.version == 6
    via = spec.via
    try:
        addr = ipaddress.ip_address(via.split("%")[0])
    except ValueError:
        addr = None
    if addr is not None:
        if addr.version != to.version:
            raise _err(lab, me.name, index, f"via {via} and to {spec.to} are different families")
        if "%" in via:
            dev = via.split("%", 1)[1]
            return RoutePlan(to, addr, dev)
        for i in _usable(me):
            nets = [a.network for a in (*i.ipv6, *i.ipv4)]
            if any(addr in n for n in nets):
                return RoutePlan(to, addr, i.name)
        raise _err(lab, me.name, index, f"via {via}: no interface of {me.name} is on its network")
    peer_name, _, peer_if = via.partition(":")
    peer = nodes.get(peer_name)
    if peer is None:
        raise _err(lab, me.name, index, f"via {via}: no node {peer_name!r}")
    for mine in _usable(me):
        for theirs in _usable(peer):
            if theirs.network != mine.network or (peer_if and theirs.name != peer_if):
                continue
            if v6:
                return RoutePlan(to, theirs.link_local.ip, mine.name)
            if theirs.ipv4:
                return RoutePlan(to, theirs.ipv4[0].ip, mine.name)
    raise _err(
        lab,
        me.name,
        index,
        f"via {via}: {peer_name} shares no network with {me.name}"
        + ("" if v6 else " where it has an IPv4 address"),
    )


def resolve_routes(lab: Lab, nodes: list[NodePlan]) -> list[NodePlan]:
    by_name = {n.name: n for n in nodes}
    out = []
    for n in nodes:
        specs = lab.nodes[n.name].routes if n.name in lab.nodes else ()
        if specs:
            resolved = tuple(_one(lab, by_name, n, i, s) for i, s in enumerate(specs))
            n = dataclasses.replace(n, routes=(*n.routes, *resolved))
        out.append(n)
    return out
