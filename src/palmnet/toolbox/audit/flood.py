"""Resilience to an RA flood: a bounded burst of RAs with random /64 prefixes
(5,000 by default, at most that) from another node of the same link.

A good node caps the addresses of an interface (Linux's max_addresses, 16
before systemd; the field notes' systemd v232 and FreeBSD kept adding them)
and keeps answering. The RAs go unicast to the target (its MAC and
link-local address), so the other nodes of the link are not flooded; they
carry one Prefix Information option each: A set, L clear (addresses but no
on-link routes), valid and preferred lifetime 10 minutes.

Cleanup: RFC 4862 5.5.3 e) forbids cutting an address's valid lifetime
below two hours by RA, so the flood cannot be undone by RAs with lifetime 0.
The addresses it made are deleted inside the node instead (one `ip -batch`),
with the neighbour entries their DAD made (solicited-node groups) and any
in those prefixes.
"""

from __future__ import annotations

import ipaddress
import random
import time

from palmnet.addressing.multicast import solicited_node
from palmnet.toolbox.audit.context import AuditContext
from palmnet.toolbox.audit.frames import LinkSocket, ra_flood_frames, random_prefixes
from palmnet.toolbox.audit.model import Outcome

ADDRESS_LIMIT = 16  # the kernel's default before systemd; palmnet's for every node
FLOOD_LIFETIME = 600  # seconds: what is left behind expires on its own


def _lab_prefixes(ctx: AuditContext) -> list[ipaddress.IPv6Network]:
    nets = []
    for node in ctx.plan.nodes:
        for i in node.interfaces:
            nets += list(i.ra_prefixes) + [a.network for a in (*i.ipv6_static, *i.ipv6_slaac)]
    return nets


def ra_flood(ctx: AuditContext) -> Outcome:
    assert ctx.stimulus is not None and ctx.target_if is not None
    stim, iface = ctx.stimulus, ctx.target_if.name
    count = ctx.options.ra_count
    target_mac = ctx.mac(None, iface)
    target_ll = ctx.link_local(None, iface)
    stim_mac = ctx.mac(stim.node, stim.iface.name)
    stim_ll = ctx.link_local(stim.node, stim.iface.name)
    if target_ll is None or stim_ll is None:
        return Outcome.failed(f"no usable link-local address on {iface} or on {stim}")
    # A router of the link keeps its lifetime: an RA with 0 would withdraw the default route.
    router_lifetime = next(
        (ra.router_lifetime for ra in ctx.adverts(iface) if ra.source == stim_ll), 0
    )
    prefixes = random_prefixes(count, _lab_prefixes(ctx), random.Random())
    frames = ra_flood_frames(
        src_mac=stim_mac,
        dst_mac=target_mac,
        src=stim_ll,
        dst=target_ll,
        prefixes=prefixes,
        router_lifetime=router_lifetime,
        lifetime=FLOOD_LIFETIME,
    )
    flood = set(prefixes)
    globals_before = sum(1 for a in ctx.addresses(None, iface) if a.scope == "global")
    probe = ctx.global_address(None, iface) or target_ll  # chosen before the flood adds its own
    try:
        with LinkSocket(ctx.netns(stim.node), stim.iface.name) as sock:
            start = time.monotonic()
            sent = sock.send_all(frames)
            send_time = time.monotonic() - start
        # The echo reply comes back behind the RAs on the same path (veth,
        # bridge, veth, in order): when it is in, the node has taken every RA
        # it was going to take, and made its addresses (tentative ones too).
        rtt = ctx.ping(stim.node, probe, stim.iface.name, wait=ctx.options.deadline)
        addresses = [a for a in ctx.addresses(None, iface) if a.scope == "global"]
        from_flood = [a for a in addresses if in_prefixes(a.address, flood)]
    finally:
        removed = _clean(ctx, iface, flood)
    verdict_ok = len(addresses) <= ADDRESS_LIMIT and rtt is not None
    evidence = (
        f"{sent} RAs with random /64s from {stim} in {send_time * 1000:.0f} ms:"
        f" {ctx.target.name} then held {len(addresses)} global addresses on {iface}"
        f" ({len(from_flood)} from the flood, {globals_before} before; limit {ADDRESS_LIMIT})"
        + (
            f" and answered ping6 to {probe} in {rtt:g} ms"
            if rtt is not None
            else f" and did NOT answer ping6 to {probe} within {ctx.options.deadline:g} s"
        )
        + f"; cleanup removed {removed} flood addresses"
    )
    return Outcome.passed(evidence) if verdict_ok else Outcome.failed(evidence)


def in_prefixes(address: ipaddress.IPv6Address, prefixes: set[ipaddress.IPv6Network]) -> bool:
    """Whether the /64 of `address` is one of `prefixes` (all /64s)."""
    return ipaddress.IPv6Network((int(address) >> 64 << 64, 64)) in prefixes


def _clean(ctx: AuditContext, iface: str, flood: set[ipaddress.IPv6Network]) -> int:
    """Delete the flood's addresses and neighbour entries inside the node."""
    doomed = [
        a
        for a in ctx.addresses(None, iface)
        if a.scope == "global" and in_prefixes(a.address, flood)
    ]
    lines = [f"address del {a} dev {iface}" for a in doomed]
    # DAD of each flood address sent an NS to its solicited-node group, and
    # each group took an entry (NOARP) in the machine's neighbour table.
    groups = {solicited_node(a.address) for a in doomed}
    neigh = ctx.ip_json(None, "-6", "neigh", "show", "dev", iface, "nud", "all")
    for n in neigh:
        dst = ipaddress.IPv6Address(n["dst"]) if "dst" in n else None
        if dst is not None and (in_prefixes(dst, flood) or dst in groups):
            lines.append(f"neigh del {dst} dev {iface}")
    if lines:
        ctx.run(None, ["ip", "-force", "-batch", "-"], stdin="\n".join(lines) + "\n", timeout=120)
    return len(doomed)
