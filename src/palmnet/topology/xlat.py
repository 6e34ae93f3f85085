"""What 464XLAT needs of the whole lab: a CLAT has a NAT64 upstream.

A CLAT (`clat: true` on a host) translates the host's IPv4 into IPv6 towards
a PLAT's prefix; without a `nat64` router that its packets can reach, the host
would get an IPv4 default route into nothing. "Upstream" is what the host can
reach through forwarding nodes: its networks, the routers on them, their
other networks, and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from palmnet.topology.model import Node
from palmnet.topology.yaml_source import Path_

Report = Callable[[Path_, str], None]


def reachable_routers(host: Node, nodes: Mapping[str, Node]) -> list[Node]:
    """Forwarding nodes the host reaches over networks and other forwarding nodes."""
    on: dict[str, list[Node]] = {}
    for node in nodes.values():
        for iface in node.interfaces.values():
            on.setdefault(iface.network, []).append(node)
    seen_nets = {i.network for i in host.interfaces.values()}
    todo = list(seen_nets)
    found: dict[str, Node] = {}
    while todo:
        for node in on.get(todo.pop(), []):
            if node.kind == "host" or node.name in found:
                continue
            found[node.name] = node
            for iface in node.interfaces.values():
                if iface.network not in seen_nets:
                    seen_nets.add(iface.network)
                    todo.append(iface.network)
    return list(found.values())


def check_clat(nodes: Mapping[str, Node], report: Report) -> None:
    """Each `clat: true` entry (once, not per copy) has a NAT64 router upstream."""
    done: set[str] = set()
    for node in nodes.values():
        if not node.clat or node.template in done:
            continue
        done.add(node.template)
        if not any(r.nat64 is not None for r in reachable_routers(node, nodes)):
            where = node.origins.get("clat", ("nodes", node.template))
            report(
                (*where, "clat"),
                "no router with nat64: is upstream of this host's networks "
                f"({', '.join(sorted({i.network for i in node.interfaces.values()})) or 'none'}): "
                "a CLAT needs a PLAT to translate to",
            )
