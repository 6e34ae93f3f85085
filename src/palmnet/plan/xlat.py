"""NAT64 routers and CLAT hosts in the plan (issue 14), after every address is known.

A `nat64` router gets a `Nat64Plan`: TAYGA's own address is the first of
pool4 (TAYGA takes it out of the dynamic pool), DNS64 where the router serves
the lab's DNS (an openwrt node's dnsmasq), and the exemption from the WAN
zone's masquerade on openwrt (fw4 would otherwise hide pool4 behind the WAN
address). What would break the lab is refused here, at the `nat64` line:
pool4 overlapping an IPv4 subnet of the lab (the stock OpenWrt LAN's
198.51.100.0/24 included), a prefix overlapping the lab's IPv6 prefixes.

A `clat` host gets a `ClatPlan`: its translator's IPv6 address is a
dedicated one in the /64 its uplink forms SLAAC addresses in, with an
interface identifier hashed from (lab, node) so that it is as stable as the
SLAAC address beside it and never equal to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress

from palmnet.errors import InputError
from palmnet.plan.model import ClatPlan, Nat64Plan, NodePlan, Plan
from palmnet.topology.model import Lab
from palmnet.topology.xlat import reachable_routers


def _fail(lab: Lab, name: str, message: str, *keys: str) -> InputError:
    node = lab.nodes[name]
    line, key = lab.where(node, *keys)
    return InputError(message, file=str(lab.source), line=line, key=key)


def _check_overlaps(lab: Lab, nodes: list[NodePlan]) -> None:
    for me in nodes:
        spec = lab.nodes[me.name].nat64
        if spec is None:
            continue
        for other in nodes:
            for iface in other.interfaces:
                for addr4 in iface.ipv4:
                    if addr4.network.overlaps(spec.pool4):
                        raise _fail(
                            lab,
                            me.name,
                            f"pool4 {spec.pool4} overlaps {addr4.network} of {other.name}'s "
                            f"{iface.name}: the NAT64's addresses must be its own, routed to it",
                            "nat64",
                            "pool4",
                        )
                for addr6 in iface.ipv6:
                    if not addr6.is_link_local and addr6.network.overlaps(spec.prefix):
                        raise _fail(
                            lab,
                            me.name,
                            f"prefix {spec.prefix} overlaps {addr6.network} of {other.name}'s "
                            f"{iface.name}: the NAT64 prefix is routed to the translator",
                            "nat64",
                            "prefix",
                        )


def _clat_address(lab: str, node: str, prefix: ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    digest = hashlib.sha256(f"palmnet/{lab}/{node}/clat".encode()).digest()
    iid = int.from_bytes(digest[:8], "big") & ~(0x0200 << 48)  # u/l bit 0: not an EUI-64
    return prefix.network_address + iid


def _clat(lab: Lab, node: NodePlan) -> ClatPlan:
    uplink = next((i for i in node.interfaces if i.ipv6_slaac), None)
    if uplink is None:
        raise _fail(
            lab,
            node.name,
            "no router advertises a /64 on this host's networks: the CLAT takes its "
            "IPv6 address from one",
            "clat",
        )
    upstream = [r for r in reachable_routers(lab.nodes[node.name], lab.nodes) if r.nat64]
    return ClatPlan(
        uplink=uplink.name,
        ipv6=_clat_address(lab.name, node.name, uplink.ipv6_slaac[0].network),
        expected_prefix=upstream[0].nat64.prefix if upstream and upstream[0].nat64 else None,
    )


def plan_xlat(lab: Lab, nodes: list[NodePlan]) -> list[NodePlan]:
    """Each nat64 router's PLAT and each clat host's CLAT; overlaps refused."""
    _check_overlaps(lab, nodes)
    out = []
    for n in nodes:
        spec = lab.nodes[n.name].nat64
        if spec is not None:
            n = dataclasses.replace(
                n,
                nat64=Nat64Plan(
                    prefix=spec.prefix,
                    pool4=spec.pool4,
                    address4=spec.pool4.network_address + 1,
                    dns64=n.kind == "openwrt",
                    unmasqueraded=n.kind == "openwrt",
                ),
            )
        if lab.nodes[n.name].clat:
            n = dataclasses.replace(n, clat=_clat(lab, n))
        _check_device_names(lab, n)
        out.append(n)
    return out


def _check_device_names(lab: Lab, node: NodePlan) -> None:
    """The translator's tun device takes a name in the node (TAYGA's `nat64`, the
    CLAT's `clat`): an interface of the lab file by that name would make TAYGA fail
    to attach at `up` ("Unable to attach tun device ... Invalid argument")."""
    for key, xlat in (("nat64", node.nat64), ("clat", node.clat)):
        if xlat is not None and any(i.name == xlat.device for i in node.interfaces):
            raise _fail(
                lab,
                node.name,
                f"interface {xlat.device} has the name of this node's {key} translator "
                f"device (TAYGA's tun, made at up): rename the interface",
                "interfaces",
                xlat.device,
            )


def xlat_notes(nodes: list[NodePlan]) -> list[str]:
    """What `plan` says of the translators (addresses no interface table shows)."""
    notes = []
    for n in nodes:
        if n.nat64 is not None:
            dns = ", DNS64 (unbound)" if n.nat64.dns64 else ""
            notes.append(
                f"{n.name}: NAT64 {n.nat64.prefix} -> pool4 {n.nat64.pool4} "
                f"(TAYGA at {n.nat64.address4}){dns}"
            )
        if n.clat is not None:
            notes.append(
                f"{n.name}: CLAT {n.clat.ipv4.ip} <-> {n.clat.ipv6} on {n.clat.uplink} "
                "(prefix by RFC 7050)"
            )
    return notes


def backend_problem(plan: Plan, backend: str) -> str | None:
    """NAT64 and CLAT need TAYGA and unbound in the node: the netns backend runs the
    host's; the LXD router image does not carry them (yet)."""
    if backend == "netns":
        return None
    users = [n.name for n in plan.nodes if n.nat64 is not None or n.clat is not None]
    if not users:
        return None
    return (
        f"nat64 and clat run on the netns backend only (TAYGA and unbound are not in "
        f"the {backend} images yet): {', '.join(users)}"
    )
