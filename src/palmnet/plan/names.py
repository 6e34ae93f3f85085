"""Kernel object names a lab uses.

Names inside a node are the user's (`eth0`, `br-lan`). Names in the lab's
hidden namespace are derived from a hash so they fit in 15 bytes whatever the
node and interface names are. Namespace names carry the `palmnet-` prefix and
the lab name, so a lab can find and remove its own namespaces and nothing else:
lab names have no dots, so `palmnet-LAB.NODE` is never ambiguous.
"""

from __future__ import annotations

import hashlib

NETNS_PREFIX = "palmnet-"


def switch_netns(lab: str) -> str:
    """The lab's hidden namespace: bridges and the outer veth ends."""
    return f"{NETNS_PREFIX}{lab}"


def node_netns(lab: str, node: str) -> str:
    return f"{NETNS_PREFIX}{lab}.{node}"


def outer_ifname(node: str, interface: str, attempt: int = 0) -> str:
    """Name of the veth end on the lab's bridge: 'v' + 10 hex digits (11 bytes)."""
    text = f"{node}/{interface}" + (f"#{attempt}" if attempt else "")
    return "v" + hashlib.sha256(text.encode()).hexdigest()[:10]
