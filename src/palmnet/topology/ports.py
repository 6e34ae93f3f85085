"""How many nodes one lab network can hold: a Linux bridge has at most 1,023 ports.

The kernel numbers a bridge's ports in 10 bits and keeps port 0 for itself
(net/bridge/br_private.h: BR_PORT_BITS 10, BR_MAX_PORTS 1 << 10); the 1,024th
`ip link set ... master` fails with EXFULL halfway through a bring-up. Every lab
network is one bridge (netns: in the lab's hidden namespace; LXD: a managed
bridge), and each node interface on it is a port, so `plan` refuses a network
with more, naming the limit, before anything is made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from palmnet.topology.conflicts import Entry

MAX_BRIDGE_PORTS = (1 << 10) - 1

Path_ = tuple[str | int, ...]


def check_bridge_ports(entries: list[Entry], report: Callable[[Path_, str], Any]) -> None:
    ports: Counter[str] = Counter()
    for entry in entries:
        for iface in entry.merged.interfaces.values():
            ports[iface.network] += len(entry.names)
    for network, count in sorted(ports.items()):
        if count > MAX_BRIDGE_PORTS:
            report(
                ("networks", network),
                f"network {network} would have {count:,} node interfaces: a Linux bridge "
                f"holds at most {MAX_BRIDGE_PORTS:,} ports (the kernel's BR_MAX_PORTS); "
                "spread the nodes over several networks",
            )
