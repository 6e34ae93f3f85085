"""Addresses the plan would give to two interfaces.

The loader refuses a static address written twice in the lab file
(topology/conflicts.py). Only the plan sees the others: a static address equal
to another host's SLAAC address (the EUI-64 of the MAC palmnet pins), the
addresses an openwrt node reads from its UCI files (the same folder on two
nodes, or one node with `count:`), and the DHCP leases a LAN reserves. Any of
them held twice fails DAD at `up` on a shared link, or breaks routing across
links, so `plan` refuses them, each at the lab file's line of the node that
brings it. A link-local address is unique only on its link, and so is an IPv4
address here: the same private LAN behind two routers' NAT (the stock
198.51.100.1 on every openwrt node's br-lan, 192.168.1.1 on OpenWrt) is how
IPv4 is run, and each LAN's leases come from its own range.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from palmnet.plan.model import InterfacePlan, NodePlan
from palmnet.topology.model import Lab
from palmnet.topology.problems import Problem, TopologyError

UCI = "from its UCI network file"
Address = ipaddress.IPv6Interface | ipaddress.IPv4Interface


@dataclass(frozen=True)
class Holder:
    """Who would hold an address, and how it gets it."""

    node: str
    interface: str
    how: str

    def __str__(self) -> str:
        return f"{self.node}.{self.interface} ({self.how})"


# How each source of InterfacePlan.sourced() reads in a message ({mac}: the interface's).
HOW = {
    "link-local": "link-local of MAC {mac}",
    "delegated": "from its delegated prefix",
    "static": "static",
    "slaac": "SLAAC from MAC {mac}",
    "dhcpv6": "its DHCPv6 lease",
    "dhcpv4": "its DHCPv4 lease",
}


def _held(node: NodePlan, iface: InterfacePlan) -> Iterator[tuple[Address, str]]:
    for source, planned in iface.sourced():
        how = HOW[source].format(mac=iface.mac)
        if source == "static" and node.kind == "openwrt":
            how = UCI
        for address in planned:
            yield address, how


def check_addresses(lab: Lab, nodes: Sequence[NodePlan]) -> None:
    """Raise every address held twice as one `TopologyError` (exit 2)."""
    seen: dict[object, Holder] = {}
    problems: list[Problem] = []
    for node in nodes:
        for iface in node.interfaces:
            for address, how in _held(node, iface):
                ip = address.ip
                key = (iface.network, ip) if ip.version == 4 or ip.is_link_local else ip
                mine = Holder(node.name, iface.name, how)
                other = seen.setdefault(key, mine)
                if other is mine or (other.node, other.interface) == (node.name, iface.name):
                    continue
                keys = ("uci",) if how == UCI else ("interfaces", iface.name)
                line, path = lab.where(lab.nodes[node.name], *keys)
                problems.append(
                    Problem(
                        line or 0,
                        path,
                        f"{ip} would be held twice: by {other} and by {mine}; an "
                        "address belongs to one interface (on one link DAD or ARP conflicts "
                        "at `up`, across links routing breaks): give one of them another",
                    )
                )
    if problems:
        raise TopologyError(problems, file=str(lab.source))
