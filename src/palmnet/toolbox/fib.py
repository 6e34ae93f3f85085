"""Which way packets go: read each router's forwarding table, follow the next hops.

The path from node A to an address is found the way a packet finds it: A's
FIB gives the next hop (a link-local on one of its interfaces), the plan
tells which node holds that link-local on that interface's network, and the
lookup repeats there until the node that owns the address. With ECMP (BIRD's
RIPng by default) a hop has several next hops: every branch is followed, so
a path is a list of chains (`laptop r1 r2 r3 dns` and `laptop r1 r4 r3 dns`).
Which branch the probes really take is told by the interfaces' transmit
counters (`used_chain`), not by guessing the kernel's flow hash.

Lookups are longest-prefix match over a netlink dump of the main table (the
lowest metric wins among equal prefixes; unreachable, blackhole and
prohibit routes are no route), so they cost one dump per router.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_GETROUTE, RTM_NEWLINK, RTM_NEWROUTE
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from palmnet.kernel import nsfs
from palmnet.plan.model import NodePlan, Plan

if TYPE_CHECKING:
    from palmnet.lab import LabSession

RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTN_LOCAL = 2
RTM_F_CLONED = 0x200

IPv6Addr = ipaddress.IPv6Address
IPv6Net = ipaddress.IPv6Network


@dataclass(frozen=True)
class NextHop:
    dev: str
    via: IPv6Addr | None  # None: on-link (the destination is on dev's network)


@dataclass(frozen=True)
class Route:
    dst: IPv6Net
    metric: int
    kind: int  # rtm_type: 1 unicast, 7 unreachable, 6 blackhole, 8 prohibit ...
    nexthops: tuple[NextHop, ...]
    protocol: int = 0


# -- netlink dumps -------------------------------------------------------------------
def _dump(netns_path: str, msg: object, kind: int, family: int) -> list:
    with nsfs.netns(netns_path):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        msg["header"]["type"] = kind  # type: ignore[index]
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP  # type: ignore[index]
        msg["header"]["sequence_number"] = 1  # type: ignore[index]
        msg["family"] = family  # type: ignore[index]
        msg.encode()  # type: ignore[attr-defined]
        sock.send(msg.data)  # type: ignore[attr-defined]
        marshal = MarshalRtnl()
        out: list[Any] = []
        while True:
            data = sock.recv(1 << 20)
            for reply in marshal.parse(data):
                t = reply["header"]["type"]
                if t == NLMSG_DONE:
                    return out
                if t == NLMSG_ERROR and reply.get("error"):
                    raise OSError(-reply["error"], f"netlink dump in {netns_path}")
                out.append(reply)
    finally:
        sock.close()


def link_names(netns_path: str) -> dict[int, str]:
    return {
        m["index"]: m.get_attr("IFLA_IFNAME")
        for m in _dump(netns_path, ifinfmsg(), RTM_GETLINK, socket.AF_UNSPEC)
        if m["header"]["type"] == RTM_NEWLINK
    }


def tx_packets(netns_path: str) -> dict[str, int]:
    """Packets each interface has sent (IFLA_STATS64), by name."""
    out = {}
    for m in _dump(netns_path, ifinfmsg(), RTM_GETLINK, socket.AF_UNSPEC):
        if m["header"]["type"] != RTM_NEWLINK:
            continue
        stats = m.get_attr("IFLA_STATS64") or m.get_attr("IFLA_STATS")
        out[m.get_attr("IFLA_IFNAME")] = int(stats["tx_packets"]) if stats else 0
    return out


def _gateway(value: object) -> IPv6Addr | None:
    if not value:
        return None
    try:
        return IPv6Addr(str(value))
    except ValueError:
        return None


def read_routes(netns_path: str) -> list[Route]:
    """The IPv6 main table of a namespace."""
    names = link_names(netns_path)
    out = []
    for m in _dump(netns_path, rtmsg(), RTM_GETROUTE, socket.AF_INET6):
        if m["header"]["type"] != RTM_NEWROUTE or m["flags"] & RTM_F_CLONED:
            continue
        table = m.get_attr("RTA_TABLE") or m["table"]
        if table != RT_TABLE_MAIN:
            continue
        dst = m.get_attr("RTA_DST") or "::"
        net = IPv6Net(f"{dst}/{m['dst_len']}", strict=False)
        hops: list[NextHop] = []
        multipath = m.get_attr("RTA_MULTIPATH")
        if multipath:
            for nh in multipath:
                hops.append(
                    NextHop(
                        names.get(nh["oif"], str(nh["oif"])), _gateway(nh.get_attr("RTA_GATEWAY"))
                    )
                )
        else:
            oif = m.get_attr("RTA_OIF")
            if oif is not None:
                hops.append(NextHop(names.get(oif, str(oif)), _gateway(m.get_attr("RTA_GATEWAY"))))
        out.append(
            Route(net, int(m.get_attr("RTA_PRIORITY") or 0), m["type"], tuple(hops), m["proto"])
        )
    return out


# -- lookups (pure) ------------------------------------------------------------------
def lookup(routes: list[Route], dest: IPv6Addr) -> tuple[Route | None, tuple[NextHop, ...]]:
    """Longest-prefix match: the route and its next hops (several for ECMP).

    Separate routes of one prefix and metric (older kernels list ECMP so) are
    merged. No route, or an unreachable one, gives no next hop.
    """
    matching = [r for r in routes if dest in r.dst]
    if not matching:
        return None, ()
    best_len = max(r.dst.prefixlen for r in matching)
    same = [r for r in matching if r.dst.prefixlen == best_len]
    best_metric = min(r.metric for r in same)
    chosen = [r for r in same if r.metric == best_metric]
    route = chosen[0]
    if route.kind != RTN_UNICAST:
        return route, ()
    hops = tuple(dict.fromkeys(h for r in chosen if r.kind == RTN_UNICAST for h in r.nexthops))
    return route, hops


@dataclass(frozen=True)
class Hop:
    node: str
    nexthops: tuple[tuple[str, str], ...]  # (next node, our interface) per next hop
    problem: str = ""  # "no route to ADDR", "next hop fe80::1 on eth0 is no node"


def _owner(plan: Plan, network: str, address: IPv6Addr) -> str | None:
    for node in plan.nodes:
        for i in node.interfaces:
            if i.network == network and any(a.ip == address for a in i.ipv6):
                return node.name
    return None


def _holds(node: NodePlan, address: IPv6Addr) -> bool:
    return any(a.ip == address for i in node.interfaces for a in i.ipv6)


def _network_of(node: NodePlan, dev: str) -> str | None:
    for i in node.interfaces:
        if i.name == dev:
            return i.network
    return None


def next_nodes(plan: Plan, node: str, routes: list[Route], dest: IPv6Addr) -> Hop:
    """Where `node` sends packets for `dest`: the neighbour node per next hop."""
    me = plan.node(node)
    route, hops = lookup(routes, dest)
    if not hops:
        why = "no route" if route is None else f"an unreachable route ({route.dst})"
        return Hop(node, (), f"{node} has {why} to {dest}")
    out = []
    problems = []
    for h in hops:
        network = _network_of(me, h.dev)
        target = h.via if h.via is not None else dest
        peer = _owner(plan, network, target) if network is not None else None
        if peer is None:
            problems.append(f"next hop {target} on {node} {h.dev} is no node of the lab")
            continue
        out.append((peer, h.dev))
    return Hop(node, tuple(dict.fromkeys(out)), "; ".join(problems) if not out else "")


@dataclass(frozen=True)
class Path:
    chains: tuple[tuple[str, ...], ...]  # every way from source to destination
    problem: str = ""  # why a chain stops short (no route, loop)
    hops: tuple[Hop, ...] = ()

    @property
    def complete(self) -> bool:
        return bool(self.chains) and not self.problem

    def to_json(self) -> dict[str, object]:
        return {"chains": [list(c) for c in self.chains], "problem": self.problem or None}


def trace(
    plan: Plan,
    source: str,
    dest: IPv6Addr,
    table_of: Callable[[str], list[Route]],
    limit: int = 32,
) -> Path:
    """Every chain of nodes from `source` to the node that holds `dest`;
    `table_of(node)` gives a node's routes (read only for nodes on the way)."""
    hops: dict[str, Hop] = {}
    chains: list[tuple[str, ...]] = []
    problems: list[str] = []

    def walk(chain: tuple[str, ...]) -> None:
        node = chain[-1]
        if _holds(plan.node(node), dest):
            chains.append(chain)
            return
        if len(chain) > limit:
            problems.append(f"path longer than {limit} hops")
            return
        if node not in hops:
            hops[node] = next_nodes(plan, node, table_of(node), dest)
        hop = hops[node]
        if not hop.nexthops:
            problems.append(hop.problem)
            chains.append((*chain, "?"))
            return
        for peer, _dev in hop.nexthops:
            if peer in chain:
                problems.append(f"routing loop at {peer}")
                chains.append((*chain, peer, "!loop"))
                continue
            walk((*chain, peer))

    walk((source,))
    return Path(tuple(chains), "; ".join(dict.fromkeys(problems)), tuple(hops.values()))


def trace_live(session: LabSession, source: str, dest: IPv6Addr) -> Path:
    """`trace` on the tables the kernel holds now (one dump per node on the way)."""
    return trace(session.plan, source, dest, lambda n: read_routes(session.running_node(n).netns))


def used_chain(path: Path, plan: Plan, sent: Mapping[str, Mapping[str, int]]) -> tuple[str, ...]:
    """The chain the probes took: at each fork, the interface that sent the most.

    `sent` holds, per node, how many packets each interface sent while the
    probes ran (a difference of two `tx_packets` readings).
    """
    by_node = {h.node: h for h in path.hops}
    if not path.chains:
        return ()
    chain = [path.chains[0][0]]
    while True:
        node = chain[-1]
        hop = by_node.get(node)
        if hop is None or not hop.nexthops:
            break
        choices = list(hop.nexthops)
        if len(choices) > 1:
            counts = sent.get(node, {})
            choices.sort(key=lambda c: -counts.get(c[1], 0))
        peer = choices[0][0]
        if peer in chain:
            break
        chain.append(peer)
    # the destination is reached when the last node holds it (a chain of path.chains ends there)
    for c in path.chains:
        if c[: len(chain)] == tuple(chain):
            return c if len(c) == len(chain) else tuple(chain)
    return tuple(chain)
