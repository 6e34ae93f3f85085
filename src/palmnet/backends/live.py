"""What the kernel holds in a node, as `ls` shows it: shared by every backend,
since every node, namespace or container, is read through its network namespace."""

from __future__ import annotations

import ipaddress
import socket

from palmnet.backends.base import LiveInterface, LiveNode
from palmnet.kernel.dump import Link, dump_links
from palmnet.kernel.watch import IFA_F_DADFAILED, IFA_F_TENTATIVE
from palmnet.plan.model import InterfacePlan, NodePlan

IFA_F_PERMANENT = 0x80  # added by hand (or by palmnet), not by the kernel or a DHCP client


def source(planned: InterfacePlan | None, address: str, flags: int) -> str:
    """Who put an address there: the plan says for every address it planned;
    for the others the kernel's flags tell (a permanent one was added by hand, a
    dynamic IPv6 /128 is a DHCPv6 lease, another dynamic IPv6 one is SLAAC)."""
    iface = ipaddress.ip_interface(address)
    if planned is not None:
        known = planned.source_of(iface)
        if known is not None:
            return known
    if iface.version == 6 and iface.ip.is_link_local:
        return "link-local"
    if flags & IFA_F_PERMANENT:
        return "static"
    if iface.version == 4:
        return "dhcpv4"
    return "dhcpv6" if iface.network.prefixlen == 128 else "slaac"


def planned_sources(planned: InterfacePlan | None) -> dict[str, str]:
    """Each planned address as text, with its source: the kernel's text of the same
    address is the same string (inet_ntop and ipaddress both compress per RFC 5952),
    so `ls` looks most addresses up here instead of parsing each one (100 nodes: 8 ms
    to 2). A miss is not an answer: `source` decides it the slow, exact way."""
    if planned is None:
        return {}
    return {str(a): src for src, addrs in reversed(planned.sourced()) for a in addrs}


def live_interfaces(node: NodePlan, links: dict[int, Link]) -> tuple[LiveInterface, ...]:
    """A node's links: usable (non-tentative) addresses with their source, no lo."""
    planned = {i.name: i for i in node.interfaces}
    interfaces = []
    for _, link in sorted(links.items()):
        if link.name == "lo":
            continue
        usable = [
            (family, f"{addr}/{plen}", flags)
            for family, addr, plen, flags in link.addresses
            if not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)
        ]
        mine = planned.get(link.name)
        known = planned_sources(mine)
        interfaces.append(
            LiveInterface(
                name=link.name,
                network=mine.network if mine else "",
                mac=link.mac,
                ipv4=tuple(a for f, a, _ in usable if f == socket.AF_INET),
                ipv6=tuple(a for f, a, _ in usable if f == socket.AF_INET6),
                sources={a: known.get(a) or source(mine, a, flags) for _, a, flags in usable},
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
