"""How a router divides a delegated prefix, as OpenWrt's netifd does.

The same arithmetic as the plan's allocation (plan/pd.py), in a module that
imports nothing but `ipaddress`: dhcpcd's hook runs it on every lease, and
importing the plan's module would load the topology model (pydantic), 0.2 s
per lease. tests/unit/test_pd_hook.py checks both give the same answers.
"""

from __future__ import annotations

import ipaddress

Net6 = ipaddress.IPv6Network
DOWNSTREAM_LEN = 60  # what a router delegates to the routers on its LAN (plan/pd.py)


def share(delegated: Net6, length: int, hint: int) -> Net6 | None:
    """A LAN's share (`ip6assign` long) of the delegation: the hint is a /64 ID,
    masked to the share's alignment and to the bits the delegation leaves."""
    if length < delegated.prefixlen or length > 64:
        return None
    sla = hint & ((1 << (64 - delegated.prefixlen)) - 1) & ~((1 << (64 - length)) - 1)
    return Net6((int(delegated.network_address) | (sla << 64), length))


def first64(net: Net6) -> Net6:
    """The /64 a LAN announces: the first of its share."""
    return Net6((int(net.network_address), 64))


def rest(share_net: Net6, keep: Net6) -> list[Net6]:
    """The share without the block that holds the announced /64, in CIDR blocks."""
    if keep.prefixlen <= share_net.prefixlen:
        return []
    return sorted(share_net.address_exclude(keep))


def downstream_pools(share_net: Net6) -> list[Net6]:
    """What a LAN's share leaves to delegate to the routers below: all of it but
    the DOWNSTREAM_LEN block holding the announced /64."""
    if share_net.prefixlen > DOWNSTREAM_LEN:
        return []
    keep = Net6((int(share_net.network_address), DOWNSTREAM_LEN))
    return rest(share_net, keep)
