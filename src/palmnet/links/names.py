"""Link names: `A:B` (the network nodes A and B share) or `A:IFACE` (A's interface).

A link is a lab network (one bridge of the lab's switch), seen from its
ports: every node interface on it. Where each port plugs into the bridge is
the backend's to say (backends/base.py `Switch`). On a point-to-point network (the ring's
`ring12`) that is the two routers; on a shared LAN it is every node on it,
so failing the link fails the whole segment, as a dead switch would.

Pure: reads the plan, never the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from palmnet.errors import InputError
from palmnet.plan.model import InterfacePlan, NodePlan, Plan


@dataclass(frozen=True)
class LinkEnd:
    node: str
    interface: str  # the name inside the node (eth0)


@dataclass(frozen=True)
class Link:
    name: str  # canonical: A:B on a two-node network, else NODE:IFACE of its first port
    network: str
    ends: tuple[LinkEnd, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.node for e in self.ends))

    def describe(self) -> str:
        """`r1:r2 (network ring12: r1 eth1, r2 eth0)`."""
        ends = ", ".join(f"{e.node} {e.interface}" for e in self.ends)
        return f"{self.name} (network {self.network}: {ends})"


def _plugged(node: NodePlan) -> list[InterfacePlan]:
    """The node's interfaces that are ports of a lab network (not a bridge inside it,
    nor a port on the machine's own LAN: an external network is no link of the lab's
    switch, and palmnet never fails the user's LAN)."""
    return [i for i in node.veths if i.external is None]


def _networks_of(node: NodePlan) -> list[str]:
    """Lab networks the node is on, in interface order (a bridge inside the node
    counts by its ports' network)."""
    return list(dict.fromkeys(i.network for i in _plugged(node)))


def _ends(plan: Plan, network: str) -> tuple[LinkEnd, ...]:
    ends = []
    for node in plan.nodes:
        for i in _plugged(node):
            if i.network == network:
                ends.append(LinkEnd(node.name, i.name))
    return tuple(ends)


def link_of_network(plan: Plan, network: str) -> Link:
    """The link a network is, named as `link show` names it."""
    ends = _ends(plan, network)
    nodes = list(dict.fromkeys(e.node for e in ends))
    if len(nodes) == 2:
        name = f"{nodes[0]}:{nodes[1]}"
    elif ends:
        name = f"{ends[0].node}:{ends[0].interface}"
    else:
        name = network
    return Link(name, network, ends)


def links_of(plan: Plan) -> list[Link]:
    """Every link of the lab (one per network with ports)."""
    out = []
    for net in plan.networks:
        link = link_of_network(plan, net.name)
        if link.ends:
            out.append(link)
    return out


def _hint(plan: Plan, node: NodePlan) -> str:
    """`r1:eth0 (ring12), r1:eth1 (ring41)`: how to name each of a node's links."""
    parts = []
    for i in node.interfaces:
        if (i.kind == "veth" and i.master is None) or (i.kind == "bridge" and i.ports):
            parts.append(f"{node.name}:{i.name} ({i.network})")
    return ", ".join(parts) or "none"


def _node(plan: Plan, name: str) -> NodePlan:
    try:
        return plan.node(name)
    except KeyError:
        names = [n.name for n in plan.nodes]
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        raise InputError(f"no node '{name}' in lab {plan.lab} (nodes: {shown})") from None


def _interface_network(node: NodePlan, name: str) -> str | None:
    """The lab network of the node's interface `name`, None if it has none."""
    for i in node.interfaces:
        if i.name != name:
            continue
        if i.kind == "veth":
            return i.network
        if i.kind == "bridge" and i.ports:
            return i.network  # a bridge inside the node: its ports' network
        return None
    return None


def resolve_link(plan: Plan, text: str) -> Link:
    """`A:B` or `A:IFACE` -> the link; InputError (exit 2) when it names none."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise InputError(
            f"'{text}' is not a link: write A:B (two nodes that share a network) "
            "or A:IFACE (a node's interface)"
        )
    first, second = parts
    a = _node(plan, first)
    names = {n.name for n in plan.nodes}
    own_network = _interface_network(a, second)
    if second in names and second != first:
        b = plan.node(second)
        shared = [n for n in _networks_of(a) if n in set(_networks_of(b))]
        if len(shared) == 1:
            link = link_of_network(plan, shared[0])
            if len(link.nodes) == 2:
                return Link(text, link.network, link.ends)
            return link
        if not shared and own_network is None:
            raise InputError(
                f"{first} and {second} share no network: {text} is not a link "
                f"({first}'s links: {_hint(plan, a)})"
            )
        if len(shared) > 1 and own_network is None:
            raise InputError(
                f"{first} and {second} share several networks ({', '.join(shared)}): "
                f"name one end as NODE:IFACE ({_hint(plan, a)})"
            )
    if own_network is not None:
        return link_of_network(plan, own_network)
    if second == first:
        raise InputError(f"{text} is not a link: a link joins two nodes (or write {first}:IFACE)")
    if any(i.name == second for i in a.interfaces):
        raise InputError(f"{first}:{second} is on no lab network (a bridge port or no link)")
    raise InputError(
        f"'{second}' is neither a node nor an interface of {first}: {text} is not a link "
        f"({first}'s links: {_hint(plan, a)})"
    )
