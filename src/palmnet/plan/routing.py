"""The routing section of a router, resolved: router id, interfaces, timers.

BIRD needs a router id when a router has no IPv4 address
(reference/routing-notes.md); it is derived from (lab, node) so it is the
same on every start. Interfaces default to every interface of the node that
carries addresses (bridge ports do not), and each takes the node's
`defaults:` overlaid by its own entry.
"""

from __future__ import annotations

import hashlib
import ipaddress

from palmnet.plan.model import InterfacePlan, RoutingInterface, RoutingPlan
from palmnet.topology.model import BfdSpec, RoutingInterfaceSpec, RoutingSpec


def router_id(lab: str, node: str) -> ipaddress.IPv4Address:
    digest = hashlib.sha256(f"palmnet/{lab}/{node}/router-id".encode()).digest()
    value = int.from_bytes(digest[:4], "big") or 1
    return ipaddress.IPv4Address(value)


def _merge(base: RoutingInterfaceSpec, own: RoutingInterfaceSpec | None) -> dict[str, object]:
    out = base.model_dump(exclude_none=True)
    if own is not None:
        out.update(own.model_dump(exclude_none=True))
    return out


def plan_routing(
    lab: str, node: str, spec: RoutingSpec, interfaces: tuple[InterfacePlan, ...]
) -> RoutingPlan:
    names = (
        list(spec.interfaces)
        if spec.interfaces is not None
        else [i.name for i in interfaces if i.master is None]
    )
    ifaces = tuple(
        RoutingInterface(name=n, **_merge(spec.defaults, (spec.interfaces or {}).get(n)))  # type: ignore[arg-type]
        for n in names
    )
    bfd = spec.bfd
    interval = None
    multiplier = 3
    if isinstance(bfd, BfdSpec):
        interval, multiplier = bfd.interval, bfd.multiplier
    elif bfd:
        interval = BfdSpec().interval
    return RoutingPlan(
        protocol=spec.protocol,
        router_id=router_id(lab, node),
        interfaces=ifaces,
        bfd_interval=interval,
        bfd_multiplier=multiplier,
    )
