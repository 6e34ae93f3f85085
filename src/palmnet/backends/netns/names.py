"""The names the netns backend gives a lab's kernel objects.

Names inside a node are the user's (`eth0`, `br-lan`). Namespace names carry
the `palmnet-` prefix and the lab name, so a lab finds and removes its own
namespaces and nothing else: lab names have no dots, so `palmnet-LAB.NODE` is
never ambiguous, and `ip -n palmnet-LAB.NODE` works. In the lab's hidden
namespace (`palmnet-LAB`) each bridge carries its network's name (network
names are valid interface names) and the outer end of each veth pair a name
derived from a hash, so it fits in 15 bytes whatever the node and interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from palmnet.plan.model import Plan

NETNS_PREFIX = "palmnet-"
IMPAIR_TABLE = "palmnet_impair"  # the netdev table of link impairments, hidden namespace


def switch_netns(lab: str) -> str:
    """The lab's hidden namespace: bridges and the outer veth ends."""
    return f"{NETNS_PREFIX}{lab}"


def node_netns(lab: str, node: str) -> str:
    return f"{NETNS_PREFIX}{lab}.{node}"


def lab_of_netns(name: str) -> str | None:
    """The lab a palmnet namespace name belongs to (None for other names)."""
    if not name.startswith(NETNS_PREFIX):
        return None
    return name[len(NETNS_PREFIX) :].split(".", 1)[0]


def outer_ifname(node: str, interface: str, attempt: int = 0) -> str:
    """Name of the veth end on the lab's bridge: 'v' + 10 hex digits (11 bytes)."""
    text = f"{node}/{interface}" + (f"#{attempt}" if attempt else "")
    import hashlib  # here: `exec` and `ls` import this module and never name a veth

    return "v" + hashlib.sha256(text.encode()).hexdigest()[:10]


def outer_names(plan: Plan) -> dict[tuple[str, str], str]:
    """(node, interface) -> its outer veth end, for every port of a lab network.

    Derived in sorted order with a counter on a clash (40 bits of hash: a clash
    is unlikely, but two would break the lab), so the names do not depend on the
    order of the file."""
    names: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for node in sorted(plan.nodes, key=lambda n: n.name):
        for iface in sorted(node.veths, key=lambda i: i.name):
            if iface.external is not None:  # on the machine's LAN (netns/external.py)
                continue
            attempt = 0
            name = outer_ifname(node.name, iface.name)
            while name in used:
                attempt += 1
                name = outer_ifname(node.name, iface.name, attempt)
            used.add(name)
            names[(node.name, iface.name)] = name
    return names
