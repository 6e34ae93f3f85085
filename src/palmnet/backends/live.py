"""What the kernel holds in a node, as `ls` shows it: shared by every backend,
since every node, namespace or container, is read through its network namespace."""

from __future__ import annotations

import socket

from palmnet.backends.base import LiveInterface, LiveNode
from palmnet.kernel.dump import Link, dump_links
from palmnet.kernel.watch import IFA_F_DADFAILED, IFA_F_TENTATIVE
from palmnet.plan.model import NodePlan


def live_interfaces(node: NodePlan, links: dict[int, Link]) -> tuple[LiveInterface, ...]:
    """A node's links: usable (non-tentative) addresses, no lo."""
    network = {i.name: i.network for i in node.interfaces}
    interfaces = []
    for _, link in sorted(links.items()):
        if link.name == "lo":
            continue
        usable = [
            (family, f"{addr}/{plen}")
            for family, addr, plen, flags in link.addresses
            if not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)
        ]
        interfaces.append(
            LiveInterface(
                name=link.name,
                network=network.get(link.name, ""),
                mac=link.mac,
                ipv4=tuple(a for f, a in usable if f == socket.AF_INET),
                ipv6=tuple(a for f, a in usable if f == socket.AF_INET6),
            )
        )
    return tuple(interfaces)


def observe_netns(node: NodePlan, netns_path: str) -> LiveNode:
    """A running node read through its network namespace (ERROR if it cannot be read)."""
    try:
        links = dump_links(netns_path)
    except OSError:
        return LiveNode(node.name, node.kind, "ERROR", ())
    return LiveNode(node.name, node.kind, "RUNNING", live_interfaces(node, links))
