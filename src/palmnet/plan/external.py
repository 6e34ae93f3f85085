"""External networks (issue 16): lab networks joined to the machine's own LAN.

The field notes' br0: the Pi's Ethernet enslaved to a host bridge, containers on it
taking their GUAs straight from the home router's RA. A lab network with
`external: {bridge: br0}` (or `{macvlan: eth0}`) puts its nodes there. palmnet
cannot know that LAN's prefix: the plan still knows every interface identifier
(EUI-64 of the planned MAC), so it prints those with "prefix learnt at up", or
the full SLAAC addresses when the file gives `prefix:`; `up` then waits for them,
which checks that the LAN's RA brought that prefix.

A lab is a guest on that LAN: nodes there accept its router's RA (their own
namespace's settings, never the host's), and every interface on it is guarded
(plan/guard.py) unless `advertise: true` lifts its RA guard, which `plan` says
loudly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import TYPE_CHECKING, Any

from palmnet.addressing.eui64 import interface_id
from palmnet.plan.model import ExternalPlan, InterfacePlan, NodePlan

if TYPE_CHECKING:  # types only: `ls` reads this module and need not load pydantic
    from palmnet.topology.model import Lab, Node

LEARNT_AT_UP = "prefix learnt at up"


def is_external(lab: Lab, network: str) -> bool:
    spec = lab.networks.get(network)
    return spec is not None and spec.external is not None


def external_plan(lab: Lab, network: str) -> ExternalPlan | None:
    spec = lab.networks[network].external
    if spec is None:
        return None
    return ExternalPlan(kind=spec.kind, parent=spec.parent, prefix=spec.prefix)


def external_prefixes(lab: Lab) -> dict[str, ipaddress.IPv6Network]:
    """Network -> the /64 the file says the LAN's router advertises there."""
    return {
        name: spec.external.prefix
        for name, spec in lab.networks.items()
        if spec.external is not None and spec.external.prefix is not None
    }


def guarded_here(lab: Lab, node: Node, iface: Any) -> bool:
    """Whether what `iface` of `node` advertises stays in the node: it is on an
    external network (a bridge inside the node: one of its ports is) and the file
    does not say `advertise: true` there."""
    names = (iface.name, *iface.ports)
    specs = [node.interfaces[n] for n in names if n in node.interfaces]
    if not any(is_external(lab, s.network) for s in specs):
        return False
    return not any(s.advertise for s in specs)


def with_external(lab: Lab, node: NodePlan) -> NodePlan:
    """The node with its interfaces on external networks marked (how they join, and
    whether the file lifts their RA guard)."""
    if not any(is_external(lab, i.network) for i in node.interfaces):
        return node
    spec = lab.nodes[node.name].interfaces
    ifaces = []
    for i in node.interfaces:
        ext = lab.networks[i.network].external if i.network in lab.networks else None
        if ext is not None and i.kind == "veth":  # a port of a bridge inside the node too
            wrote = spec.get(i.name)
            i = dataclasses.replace(
                i, external=ext.kind, advertise=wrote.advertise if wrote is not None else False
            )
        ifaces.append(i)
    return dataclasses.replace(node, interfaces=tuple(ifaces))


def interface_identifier(mac: str) -> str:
    """The EUI-64 interface identifier of a MAC as an address suffix (`::216:3eff:fe..`)."""
    return str(ipaddress.IPv6Address(interface_id(mac)))


def pending_identifier(iface: InterfacePlan, prefix: ipaddress.IPv6Network | None) -> str | None:
    """What `plan` shows for an external interface whose prefix it cannot know."""
    if iface.external is None or prefix is not None or iface.sends_ra or iface.master:
        return None
    return interface_identifier(iface.mac)


def external_notes(lab: Lab, nodes: list[NodePlan]) -> list[str]:
    """What `plan` and `up` say about external networks: where each joins the machine's
    LAN, and, loudly, every interface that may send router advertisements there."""
    notes = []
    for name, spec in lab.networks.items():
        ext = spec.external
        if ext is None:
            continue
        how = (
            f"host bridge {ext.bridge}"
            if ext.bridge
            else f"macvlan on host interface {ext.macvlan}"
        )
        learnt = f"prefix {ext.prefix}" if ext.prefix else LEARNT_AT_UP
        notes.append(f"network {name} is external: {how} ({learnt}); guarded")
    for node in nodes:
        for i in node.interfaces:
            if i.external is not None and i.sends_ra and not i.advertise:
                notes.append(
                    f"{node.name}:{i.name} sends router advertisements on external network "
                    f"{i.network}: the RA guard drops them there (advertise: true lifts it)"
                )
            if i.advertise:
                notes.append(
                    f"WARNING: {node.name}:{i.name} has advertise: true: its router "
                    f"advertisements reach the real LAN of network {i.network} (RA guard "
                    "lifted there); every device on that LAN may take an address and a "
                    "default route from it"
                )
    return notes
