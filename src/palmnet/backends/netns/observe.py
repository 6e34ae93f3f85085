"""Read back what the kernel holds in each node: links, MACs, usable addresses."""

from __future__ import annotations

import socket

from pyroute2.iproute.linux import IPRoute

from palmnet.backends.base import LiveInterface, LiveNode
from palmnet.backends.netns import namespaces, nsfs
from palmnet.backends.netns.watch import IFA_F_DADFAILED, IFA_F_TENTATIVE
from palmnet.plan.model import NodePlan


def observe_node(node: NodePlan, stopped: bool) -> LiveNode:
    if stopped:
        return LiveNode(node.name, node.kind, "STOPPED", ())
    if not namespaces.netns_exists(node.netns):
        return LiveNode(node.name, node.kind, "ERROR", ())
    with nsfs.netns(nsfs.netns_path(node.netns)):
        ipr = IPRoute()
    try:
        links = {
            link["index"]: (link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_ADDRESS"))
            for link in ipr.get_links()
        }
        v4: dict[int, list[str]] = {}
        v6: dict[int, list[str]] = {}
        for msg in ipr.get_addr():
            flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
            if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                continue
            text = f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"
            target = v6 if msg["family"] == socket.AF_INET6 else v4
            target.setdefault(msg["index"], []).append(text)
    finally:
        ipr.close()
    network = {i.name: i.network for i in node.interfaces}
    interfaces = []
    for index, (name, mac) in sorted(links.items()):
        if name == "lo":
            continue
        interfaces.append(
            LiveInterface(
                name=name,
                network=network.get(name, ""),
                mac=mac or "",
                ipv4=tuple(v4.get(index, [])),
                ipv6=tuple(v6.get(index, [])),
            )
        )
    return LiveNode(node.name, node.kind, "RUNNING", tuple(interfaces))
