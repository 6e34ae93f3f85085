"""Build the plan from a resolved topology: pure, no root, no I/O.

Every address the kernel will hold is decided here: the link-local and SLAAC
addresses follow from the stable MAC (EUI-64, `addr_gen_mode` 0) and the /64s
that routers advertise on the node's network, so `palmnet plan` can print
them before anything exists.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from palmnet.addressing.eui64 import eui64_address, link_local
from palmnet.addressing.mac import assign_macs, mac_key, stable_mac
from palmnet.plan.model import InterfacePlan, NetworkPlan, NodePlan, Plan
from palmnet.plan.names import node_netns, outer_ifname, switch_netns
from palmnet.topology.model import Lab, Node


def _advertised(lab: Lab) -> dict[str, list[tuple[str, ipaddress.IPv6Network]]]:
    """Per network: (node, /64) pairs that some interface advertises with ra: true."""
    out: dict[str, list[tuple[str, ipaddress.IPv6Network]]] = defaultdict(list)
    for node in lab.nodes.values():
        for spec in node.interfaces.values():
            if not spec.ra:
                continue
            for addr in spec.ipv6:
                net = addr.network
                if net.prefixlen == 64 and not net.is_link_local:
                    out[spec.network].append((node.name, net))
    return out


def _outer_names(lab: Lab) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for node in sorted(lab.nodes):
        for iface in sorted(lab.nodes[node].interfaces):
            attempt = 0
            name = outer_ifname(node, iface)
            while name in used:
                attempt += 1
                name = outer_ifname(node, iface, attempt)
            used.add(name)
            names[(node, iface)] = name
    return names


def _accepts_ra(node: Node) -> bool:
    # Routers forward; the kernel ignores RAs on forwarding interfaces.
    return node.kind == "host"


def plan_lab(lab: Lab) -> Plan:
    keys = [mac_key(lab.name, n.name, i) for n in lab.nodes.values() for i in n.interfaces]
    macs = assign_macs(keys)
    notes = [
        f"MAC clash resolved: {key.split('/', 1)[1]} moved to {mac}"
        for key, mac in macs.items()
        if mac != stable_mac(*key.split("/"))
    ]
    advertised = _advertised(lab)
    outer = _outer_names(lab)
    ll_of = {
        (n.name, i): link_local(macs[mac_key(lab.name, n.name, i)])
        for n in lab.nodes.values()
        for i in n.interfaces
    }
    senders: dict[str, list[ipaddress.IPv6Address]] = defaultdict(list)
    for n in lab.nodes.values():
        for i, spec in n.interfaces.items():
            if spec.ra and ll_of[(n.name, i)] not in senders[spec.network]:
                senders[spec.network].append(ll_of[(n.name, i)])

    nodes: list[NodePlan] = []
    ports: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for node in lab.nodes.values():
        ifaces: list[InterfacePlan] = []
        for name, spec in node.interfaces.items():
            mac = macs[mac_key(lab.name, node.name, name)]
            ll = ll_of[(node.name, name)]
            slaac: list[ipaddress.IPv6Interface] = []
            routers: list[ipaddress.IPv6Address] = []
            if _accepts_ra(node):
                static = {a.ip for a in spec.ipv6}
                for sender, prefix in advertised.get(spec.network, []):
                    if sender == node.name:
                        continue
                    addr = eui64_address(mac, prefix)
                    if addr not in static:
                        slaac.append(ipaddress.IPv6Interface(f"{addr}/64"))
                routers = [r for r in senders.get(spec.network, []) if r != ll]
            ifaces.append(
                InterfacePlan(
                    name=name,
                    network=spec.network,
                    mac=mac,
                    outer=outer[(node.name, name)],
                    link_local=ipaddress.IPv6Interface(f"{ll}/64"),
                    ipv6_static=tuple(spec.ipv6),
                    ipv4_static=tuple(spec.ipv4),
                    ipv6_slaac=tuple(dict.fromkeys(slaac)),
                    ra_prefixes=tuple(
                        dict.fromkeys(
                            a.network
                            for a in spec.ipv6
                            if spec.ra and a.network.prefixlen == 64 and not a.is_link_local
                        )
                    ),
                    routers=tuple(routers),
                )
            )
            ports[spec.network].append((node.name, name))
        nodes.append(
            NodePlan(
                name=node.name,
                kind=node.kind,
                netns=node_netns(lab.name, node.name),
                interfaces=tuple(ifaces),
                dad=node.dad,
                service=node.service,
                template=node.template,
            )
        )
    networks = tuple(
        NetworkPlan(name=name, bridge=name, ports=tuple(ports.get(name, ())))
        for name in lab.networks
    )
    return Plan(
        lab=lab.name,
        domain=lab.domain,
        source=str(lab.source),
        switch_netns=switch_netns(lab.name),
        networks=networks,
        nodes=tuple(nodes),
        dad=lab.dad,
        notes=tuple(notes),
    )
