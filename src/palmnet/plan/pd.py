"""Prefix delegation, allocated by the plan from the ISP down (DHCPv6-PD).

Every delegation is decided before `up`: the ISP's kea reserves each
router's prefix for its DUID (DUID-LL of its WAN MAC, so stable for
(lab, node)); a router divides its delegation as OpenWrt does (`ip6assign`
is each LAN's share, `ip6hint` picks which, the first /64 of the share is
announced on the LAN) and delegates the rest of a LAN's share to the routers
below it, /60 at a time. So delegated prefixes, and every host address below
them, are printed by `palmnet plan` and are the same after any restart.
A pool that runs out leaves the router without a prefix (its LANs keep
their ULA), as a real exhausted pool would.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from palmnet.addressing.pd import DOWNSTREAM_LEN
from palmnet.addressing.pd import first64 as _first64
from palmnet.addressing.pd import rest as _rest
from palmnet.addressing.pd import share as _share
from palmnet.plan.model import Delegation, LanAssignment, PdClientPlan, PdServerPlan
from palmnet.plan.openwrt import Iface
from palmnet.topology.model import DelegateSpec

Net6 = ipaddress.IPv6Network
MAX_CANDIDATES = 1 << 16
ULA = Net6("fc00::/7")


@dataclass
class PdDraft:
    """What allocation needs of a node (filled from the plan's drafts)."""

    name: str
    kind: str
    ifaces: list[Iface]
    delegate: DelegateSpec | None = None  # isp
    pd_request: tuple[str, int | None] | None = None  # openwrt wan6 reqprefix
    assignments: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass
class PdResult:
    servers: dict[str, list[PdServerPlan]] = field(default_factory=dict)
    clients: dict[str, PdClientPlan] = field(default_factory=dict)


def duid_ll(mac: str) -> str:
    """DUID-LL (RFC 8415 11.4): type 3, hardware type 1 (Ethernet), the MAC."""
    return "00030001" + mac.replace(":", "").lower()


def _slot(name: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % size


def _candidates(pools: list[Net6], length: int) -> list[Net6]:
    out: list[Net6] = []
    for pool in pools:
        if length < pool.prefixlen:
            continue
        count = 1 << (length - pool.prefixlen)
        step = 1 << (128 - length)
        base = int(pool.network_address)
        for i in range(min(count, MAX_CANDIDATES - len(out))):
            out.append(Net6((base + i * step, length)))
    return out


def allocate(
    drafts: list[PdDraft],
    mac_of: Callable[[str, str], str],
    guarded: Callable[[str, Iface], bool] = lambda _node, _iface: False,
) -> PdResult:
    """Every delegation the lab's servers make. A server interface that is `guarded`
    (on an external network: its DHCPv6 replies never leave) delegates nothing."""
    result = PdResult()
    by_name = {d.name: d for d in drafts}
    network_of = {(d.name, i.name): i.network for d in drafts for i in d.ifaces}
    requesters: dict[str, list[PdDraft]] = {}
    for d in drafts:
        if d.pd_request is not None:
            requesters.setdefault(network_of[(d.name, d.pd_request[0])], []).append(d)

    # (server node, server interface, pools, delegated length, lifetimes)
    queue: list[tuple[str, Iface, list[Net6], int, DelegateSpec]] = []
    for d in drafts:
        if d.kind == "isp" and d.delegate is not None:
            for iface in d.ifaces:
                if iface.ra and not guarded(d.name, iface):
                    queue.append((d.name, iface, [d.delegate.pool], d.delegate.length, d.delegate))

    while queue:
        server, iface, pools, length, life = queue.pop(0)
        clients = sorted(
            (
                c
                for c in requesters.get(iface.network, [])
                if c.name != server and c.name not in result.clients
            ),
            key=lambda c: c.name,
        )
        if not clients:
            continue
        candidates = _candidates(pools, length)
        taken: set[int] = set()
        reservations: list[Delegation] = []
        for client in clients:
            wan = client.pd_request[0]  # type: ignore[index]
            duid = duid_ll(mac_of(client.name, wan))
            prefix = None
            if len(taken) < len(candidates):
                slot = _slot(client.name, len(candidates))
                while slot in taken:
                    slot = (slot + 1) % len(candidates)
                taken.add(slot)
                prefix = candidates[slot]
            reservations.append(Delegation(client.name, duid, prefix))
            assignments = []
            for dev, alen, hint in client.assignments:
                share = _share(prefix, alen, hint) if prefix is not None else None
                lan = _first64(share) if share is not None else None
                assignments.append(LanAssignment(dev, alen, share, lan))
                if lan is None:
                    continue
                target = next(i for i in by_name[client.name].ifaces if i.name == dev)
                target.delegated.append(ipaddress.IPv6Interface(f"{lan.network_address + 1}/64"))
                if share is not None and share.prefixlen <= DOWNSTREAM_LEN:
                    keep = Net6((int(share.network_address), DOWNSTREAM_LEN))
                    queue.append((client.name, target, _rest(share, keep), DOWNSTREAM_LEN, life))
            result.clients[client.name] = PdClientPlan(
                wan=wan,
                duid=duid,
                request_len=client.pd_request[1],  # type: ignore[index]
                delegated=prefix,
                assignments=tuple(assignments),
            )
        routable = [
            a.network
            for a in (*iface.delegated, *iface.ipv6)
            if a.network.prefixlen == 64 and not a.is_link_local
        ]
        subnet = next((n for n in routable if not ULA.supernet_of(n)), None) or next(
            iter(routable), None
        )
        if subnet is None:
            continue
        result.servers.setdefault(server, []).append(
            PdServerPlan(
                interface=iface.name,
                subnet=subnet,
                pools=tuple(pools),
                delegated_len=length,
                reservations=tuple(reservations),
                t1=life.t1,
                t2=life.t2,
                preferred=life.preferred,
                valid=life.valid,
            )
        )
    return result
