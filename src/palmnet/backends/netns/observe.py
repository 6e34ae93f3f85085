"""Read back what the kernel holds in each node: links, MACs, usable addresses."""

from __future__ import annotations

import socket

from palmnet.backends.base import LiveInterface, LiveNode
from palmnet.backends.netns import namespaces, nsfs
from palmnet.backends.netns.dump import Link, dump_links
from palmnet.backends.netns.watch import IFA_F_DADFAILED, IFA_F_TENTATIVE
from palmnet.plan.model import NodePlan


def observe_node(node: NodePlan, stopped: bool) -> LiveNode:
    if stopped:
        return LiveNode(node.name, node.kind, "STOPPED", ())
    if not namespaces.netns_exists(node.netns):
        return LiveNode(node.name, node.kind, "ERROR", ())
    links = dump_links(nsfs.netns_path(node.netns))
    return LiveNode(node.name, node.kind, "RUNNING", live_interfaces(node, links))


def live_interfaces(node: NodePlan, links: dict[int, Link]) -> tuple[LiveInterface, ...]:
    """A node's links as `ls` shows them: usable (non-tentative) addresses, no lo.
    Shared by every backend that reads a node's namespace (netns, LXD)."""
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
