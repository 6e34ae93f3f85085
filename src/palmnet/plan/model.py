"""What a lab will be, derived from the topology before anything is created.

The plan is plain data: backends read it, nothing in it knows a backend.
Addresses are `ipaddress` objects; `to_json` gives the contract shape of
DESIGN.md §3.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

IPv6If = ipaddress.IPv6Interface
IPv4If = ipaddress.IPv4Interface


@dataclass(frozen=True)
class InterfacePlan:
    name: str  # as the user wrote it, seen inside the node
    network: str
    mac: str
    outer: str  # the veth end on the lab's bridge, in the hidden namespace
    link_local: IPv6If
    ipv6_static: tuple[IPv6If, ...] = ()  # configured by palmnet
    ipv4_static: tuple[IPv4If, ...] = ()
    ipv6_slaac: tuple[IPv6If, ...] = ()  # formed by the kernel from RAs
    ra_prefixes: tuple[ipaddress.IPv6Network, ...] = ()  # /64s this interface advertises
    routers: tuple[ipaddress.IPv6Address, ...] = ()  # link-locals of RA senders on the link

    @property
    def ipv6(self) -> tuple[IPv6If, ...]:
        """Every IPv6 address the kernel will hold, link-local first."""
        return (self.link_local, *self.ipv6_static, *self.ipv6_slaac)

    @property
    def sends_ra(self) -> bool:
        return bool(self.ra_prefixes)


@dataclass(frozen=True)
class NodePlan:
    name: str
    kind: str
    netns: str  # name under /run/netns
    interfaces: tuple[InterfacePlan, ...]
    dad: bool = True
    service: str | None = None
    template: str = ""

    @property
    def forwarding(self) -> bool:
        return self.kind != "host"

    @property
    def sends_ra(self) -> bool:
        return any(i.sends_ra for i in self.interfaces)

    def interface(self, name: str) -> InterfacePlan:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise KeyError(name)


@dataclass(frozen=True)
class NetworkPlan:
    name: str
    bridge: str  # ifname of the bridge in the hidden namespace
    ports: tuple[tuple[str, str], ...] = ()  # (node, interface) attached to it


@dataclass(frozen=True)
class Plan:
    lab: str
    domain: str
    source: str
    switch_netns: str  # the lab's hidden namespace holding bridges and outer veths
    networks: tuple[NetworkPlan, ...]
    nodes: tuple[NodePlan, ...]
    dad: bool = True
    notes: tuple[str, ...] = field(default=())  # what the plan resolved (MAC clashes, ...)

    def node(self, name: str) -> NodePlan:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_json(self, state: str = "PLANNED") -> list[dict[str, Any]]:
        return [node_json(n, state) for n in self.nodes]


def node_json(node: NodePlan, state: str) -> dict[str, Any]:
    return {
        "name": node.name,
        "kind": node.kind,
        "state": state,
        "interfaces": [
            {
                "name": i.name,
                "network": i.network,
                "mac": i.mac,
                "ipv4": [str(a) for a in i.ipv4_static],
                "ipv6": [str(a) for a in i.ipv6],
            }
            for i in node.interfaces
        ],
    }
