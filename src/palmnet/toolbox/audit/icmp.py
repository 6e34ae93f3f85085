"""ICMPv6 essentials: what breaks IPv6 when a firewall or a stack drops it.

From the stimulus node, each probe and what must come back:
- Echo Request (the kernel's ping) to the target's GUA and link-local
  address: an Echo Reply;
- Neighbour Solicitation (ndisc6) for the target's address: a Neighbour
  Advertisement with the target's MAC;
- Router Solicitation (rdisc6, unicast to the target), on routers that
  advertise on the link: a Router Advertisement from it (hosts: not asked);
- Packet Too Big: an Echo Request with 1,400 bytes of data is answered by one
  unfragmented 1,448-byte reply; then a Packet Too Big (MTU 1280) quoting
  that reply is sent to the target, and the same request again must be
  answered in fragments of at most 1,280 bytes: the node lowered its path
  MTU to the stimulus node, as RFC 8201 asks. The cached path MTU is
  flushed afterwards (`ip -6 route flush cache` in the node).
"""

from __future__ import annotations

import ipaddress
import random

from scapy.layers.inet6 import ICMPv6EchoReply, IPv6, IPv6ExtHdrFragment
from scapy.packet import Packet

from palmnet.toolbox.audit.context import AuditContext
from palmnet.toolbox.audit.frames import LinkSocket, echo_frame, packet_too_big_frame
from palmnet.toolbox.audit.model import Outcome
from palmnet.toolbox.audit.rdisc import parse_ndisc6_mac, parse_rdisc6

PTB_MTU = 1280
BIG_DATA = 1400  # bytes of echo data: 1,448 bytes of IPv6 packet, above 1,280 and below 1,500
REPLY_WAIT = 3.0  # seconds for an echo reply (all its fragments) to come back


def _reply_parts(packets: list[Packet], src: ipaddress.IPv6Address, ident: int) -> list[Packet]:
    """The packets of the echo reply `ident` from `src`: whole, or its fragments."""
    out = []
    for p in packets:
        if IPv6 not in p or ipaddress.IPv6Address(p[IPv6].src) != src:
            continue
        echo = ICMPv6EchoReply in p and p[ICMPv6EchoReply].id == ident
        if echo or IPv6ExtHdrFragment in p:
            out.append(p)
    return out


def _complete(parts: list[Packet]) -> bool:
    if any(IPv6ExtHdrFragment not in p for p in parts):
        return True  # an unfragmented reply
    return any(p[IPv6ExtHdrFragment].m == 0 for p in parts) and len(parts) >= 2


def _big_echo(
    sock: LinkSocket,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    macs: tuple[str, str],
    ident: int,
    seq: int,
) -> list[Packet]:
    sock.drain()
    sock.send(
        echo_frame(
            src_mac=macs[0], dst_mac=macs[1], src=src, dst=dst, ident=ident, seq=seq, size=BIG_DATA
        )
    )
    got = sock.collect(lambda ps: _complete(_reply_parts(ps, dst, ident)), REPLY_WAIT)
    return _reply_parts(got, dst, ident)


def _packet_too_big(ctx: AuditContext) -> tuple[bool, str]:
    assert ctx.stimulus is not None and ctx.target_if is not None
    stim, iface = ctx.stimulus, ctx.target_if.name
    src = ctx.global_address(stim.node, stim.iface.name) or ctx.link_local(
        stim.node, stim.iface.name
    )
    dst = ctx.global_address(None, iface) or ctx.link_local(None, iface)
    if src is None or dst is None:
        return False, "PTB: no usable addresses"
    macs = (ctx.mac(stim.node, stim.iface.name), ctx.mac(None, iface))
    ident = random.randrange(1, 0xFFFF)
    try:
        listen = stim.iface.ports if stim.iface.kind == "bridge" else ()
        with LinkSocket(ctx.netns(stim.node), stim.iface.name, listen) as sock:
            first = _big_echo(sock, src, dst, macs, ident, 1)
            if len(first) != 1 or IPv6ExtHdrFragment in first[0]:
                return False, (
                    f"PTB: a {BIG_DATA + 48}-byte echo got {len(first)} reply packets before any"
                    " PTB (expected one whole reply)"
                )
            sock.send(
                packet_too_big_frame(
                    src_mac=macs[0],
                    dst_mac=macs[1],
                    src=src,
                    dst=dst,
                    mtu=PTB_MTU,
                    quoted=bytes(first[0][IPv6]),
                )
            )
            second = _big_echo(sock, src, dst, macs, ident, 2)
    finally:
        left = ctx.flush_route_cache()
    sizes = [len(bytes(p[IPv6])) for p in second]
    fragmented = len(second) >= 2 and all(IPv6ExtHdrFragment in p for p in second)
    if fragmented and max(sizes) <= PTB_MTU:
        return True, (
            f"PTB(mtu {PTB_MTU}) honoured: the {BIG_DATA + 48}-byte echo reply came whole,"
            f" then in {len(second)} fragments of {'+'.join(map(str, sizes))} bytes"
            + (f" ({left} cached routes left to expire)" if left else "")
        )
    return False, (
        f"PTB(mtu {PTB_MTU}) ignored: after it the {BIG_DATA + 48}-byte echo got"
        f" {len(second)} reply packets of {'+'.join(map(str, sizes)) or 'no'} bytes"
    )


def icmpv6_essentials(ctx: AuditContext) -> Outcome:
    assert ctx.stimulus is not None and ctx.target_if is not None
    stim, iface = ctx.stimulus, ctx.target_if.name
    sif = stim.iface.name
    good: list[str] = []
    bad: list[str] = []

    # Echo, to the GUA and to the link-local address.
    gua = ctx.global_address(None, iface)
    ll = ctx.link_local(None, iface)
    for address in (gua, ll):
        if address is None:
            continue
        rtt = ctx.ping(stim.node, address, sif)
        (good if rtt is not None else bad).append(
            f"echo {address}: reply in {rtt:g} ms" if rtt is not None else f"echo {address}: none"
        )

    # NS -> NA with the target's MAC.
    mac = ctx.mac(None, iface)
    asked = gua or ll
    if asked is not None:
        proc = ctx.run(stim.node, ["ndisc6", "-q", "-n", "-r", "3", "-w", "1000", str(asked), sif])
        got = parse_ndisc6_mac(proc.stdout)
        (good if got == mac else bad).append(
            f"NS for {asked}: NA with {got}" if got else f"NS for {asked}: no NA"
        )

    # RS -> RA, on routers of this link only.
    if ctx.target_if.sends_ra and ll is not None:
        proc = ctx.run(stim.node, ["rdisc6", "-n", "-r", "3", "-w", "1000", str(ll), sif])
        answered = any(ra.source == ll for ra in parse_rdisc6(proc.stdout))
        (good if answered else bad).append("RS: RA answered" if answered else "RS: no RA")
    else:
        good.append("RS: n/a (not a router of the link)")

    ok, text = _packet_too_big(ctx)
    (good if ok else bad).append(text)
    if bad:
        return Outcome.failed(f"from {stim}: " + "; ".join(bad + good))
    return Outcome.passed(f"from {stim}: " + "; ".join(good))
