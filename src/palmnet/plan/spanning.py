"""A lab whose networks span machines (an LXD cluster): its links' MTU, said offline.

Between cluster members each lab network is carried in a VXLAN tunnel over the
members' own network (backends/lxd/cluster.py). VXLAN over IPv4 adds 50 bytes
(outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8) to every frame, so on a 1500-byte
underlay the lab's links get MTU 1450: the nodes then never send a frame that the
tunnel would have to drop (VXLAN does not fragment, and the dropped frame would
raise no Packet Too Big). IPv6 needs 1280 at least, which 1450 keeps.

A lab says it is meant for a cluster with `placement:` or a node's `member:`;
then `plan` knows the MTU and prints it, and one machine runs the lab with the
same MTU, so the lab behaves the same on one machine and on a cluster.
"""

from __future__ import annotations

from palmnet.topology.model import Lab

UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = 50  # outer Ethernet + IPv4 + UDP + VXLAN headers
TUNNEL_MTU = UNDERLAY_MTU - VXLAN_OVERHEAD


def spans_machines(lab: Lab) -> bool:
    """Whether the lab file places its nodes on cluster members."""
    return lab.placement is not None or any(n.member for n in lab.nodes.values())


def link_mtu(lab: Lab) -> int | None:
    """The MTU of the lab's links; None: the backend's default (1500)."""
    return TUNNEL_MTU if spans_machines(lab) else None


def notes(lab: Lab) -> list[str]:
    """What `plan` says about the links' MTU of a lab on LXD."""
    if spans_machines(lab):
        return [
            f"links: MTU {TUNNEL_MTU} (lab networks cross LXD cluster members in VXLAN "
            f"tunnels: {UNDERLAY_MTU} - {VXLAN_OVERHEAD} bytes of VXLAN over IPv4); "
            f"placement: {lab.placement or 'spread'}"
        ]
    if lab.backend == "lxd":
        return [
            f"links: MTU 1500 on one LXD; on an LXD cluster {TUNNEL_MTU} (VXLAN between "
            "members): say `placement:` in the lab file to plan it"
        ]
    return []
