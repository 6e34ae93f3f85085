"""Solicited-node multicast groups (RFC 4291 2.7.1) and their Ethernet MACs.

Neighbour Discovery never broadcasts: a node asking for fe80::216:3eff:fe01:e0a3
sends its Neighbour Solicitation to ff02::1:ff01:e0a3, the group made of the low
24 bits of the target, and only the few nodes sharing those bits listen. DAD
does the same for a tentative address. Knowing the group (and the MAC it maps
to on Ethernet, RFC 2464 7) is what you need to read a capture of NS traffic.
"""

from __future__ import annotations

import ipaddress

from palmnet.errors import InputError

SOLICITED_NODE_PREFIX = ipaddress.IPv6Network("ff02::1:ff00:0/104")
_LOW_24 = (1 << 24) - 1


def solicited_node(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The solicited-node group a node joins for a unicast or anycast address."""
    if address.is_multicast:
        raise InputError(
            f"{address} is multicast: only unicast addresses have a solicited-node group"
        )
    if address == ipaddress.IPv6Address("::"):
        raise InputError(":: is never assigned to an interface, so it has no solicited-node group")
    return ipaddress.IPv6Address(
        int(SOLICITED_NODE_PREFIX.network_address) | (int(address) & _LOW_24)
    )


def multicast_mac(group: ipaddress.IPv6Address) -> str:
    """The Ethernet destination of an IPv6 multicast group: 33:33 and its low 32 bits."""
    if not group.is_multicast:
        raise InputError(f"{group} is not a multicast address")
    low = (int(group) & 0xFFFFFFFF).to_bytes(4, "big")
    return ":".join(f"{b:02x}" for b in (0x33, 0x33, *low))
