"""The audit's stimuli as Ethernet frames, and a socket to send them from a node.

Frames are built with scapy (a maintained packet library, as `ndp watch`
uses) and sent on an AF_PACKET socket opened with the thread inside the
sending node's network namespace: the socket stays there, so the frames
leave that node's interface and nothing else's. The RA flood patches one
template per prefix (16 bytes and the checksum) instead of asking scapy to
build 5,000 packets, which would take longer than sending them.
"""

from __future__ import annotations

import ipaddress
import random
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator

from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from palmnet.addressing.multicast import multicast_mac, solicited_node
from palmnet.kernel import nsfs

ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD
IPV6_ETHERTYPE = ETH_P_IPV6.to_bytes(2, "big")
ICMPV6 = 58
ETH_HLEN = 14
IPV6_HLEN = 40
CHECKSUM_AT = ETH_HLEN + IPV6_HLEN + 2  # ICMPv6 checksum, right after type and code

DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")
IPv6Net = ipaddress.IPv6Network
IPv6Addr = ipaddress.IPv6Address


def icmpv6_checksum(src: IPv6Addr, dst: IPv6Addr, message: bytes) -> int:
    """RFC 4443 2.3: one's complement sum over the pseudo-header and the message
    (its checksum field zero)."""
    data = src.packed + dst.packed + struct.pack("!IxxxB", len(message), ICMPV6) + message
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def random_prefixes(count: int, avoid: Iterable[IPv6Net], rng: random.Random) -> list[IPv6Net]:
    """`count` distinct random /64s of 2001:db8::/32 that overlap none of `avoid`."""
    avoid = list(avoid)
    out: dict[IPv6Net, None] = {}
    base = int(DOCUMENTATION.network_address)
    while len(out) < count:
        net = IPv6Net((base | (rng.getrandbits(32) << 64), 64))
        if not any(net.overlaps(a) for a in avoid):
            out[net] = None
    return list(out)


def random_hosts(
    prefix: IPv6Net, count: int, avoid: set[IPv6Addr], rng: random.Random
) -> list[IPv6Addr]:
    """`count` distinct random addresses in a /64, none of `avoid`."""
    out: dict[IPv6Addr, None] = {}
    base = int(prefix.network_address)
    while len(out) < count:
        addr = IPv6Addr(base | rng.getrandbits(64))
        if addr not in avoid and addr != prefix.network_address:
            out[addr] = None
    return list(out)


def ra_flood_frames(
    *,
    src_mac: str,
    dst_mac: str,
    src: IPv6Addr,
    dst: IPv6Addr,
    prefixes: list[IPv6Net],
    router_lifetime: int,
    lifetime: int,
) -> list[bytes]:
    """One RA per prefix, each with a single Prefix Information option (A set, L clear).

    L is clear so the flood adds addresses but no on-link routes; the router
    lifetime is the caller's to choose (0 unless the sender is a router of
    the link, whose default route an RA with lifetime 0 would withdraw).
    """
    template = bytes(
        Ether(src=src_mac, dst=dst_mac)
        / IPv6(src=str(src), dst=str(dst), hlim=255)
        / ICMPv6ND_RA(chlim=0, M=0, O=0, routerlifetime=router_lifetime)
        / ICMPv6NDOptPrefixInfo(
            prefixlen=64,
            L=0,
            A=1,
            validlifetime=lifetime,
            preferredlifetime=lifetime,
            prefix="::",
        )
    )
    frames = []
    for net in prefixes:
        frame = bytearray(template)
        frame[-16:] = net.network_address.packed  # the option's prefix ends the frame
        frame[CHECKSUM_AT : CHECKSUM_AT + 2] = b"\0\0"
        csum = icmpv6_checksum(src, dst, bytes(frame[ETH_HLEN + IPV6_HLEN :]))
        frame[CHECKSUM_AT : CHECKSUM_AT + 2] = csum.to_bytes(2, "big")
        frames.append(bytes(frame))
    return frames


def ns_frame(*, src_mac: str, src: IPv6Addr, target: IPv6Addr) -> bytes:
    """A Neighbour Solicitation for `target`, to its solicited-node group."""
    group = solicited_node(target)
    return bytes(
        Ether(src=src_mac, dst=multicast_mac(group))
        / IPv6(src=str(src), dst=str(group), hlim=255)
        / ICMPv6ND_NS(tgt=str(target))
        / ICMPv6NDOptSrcLLAddr(lladdr=src_mac)
    )


def echo_frame(
    *,
    src_mac: str,
    dst_mac: str,
    src: IPv6Addr,
    dst: IPv6Addr,
    ident: int,
    seq: int,
    size: int = 0,
) -> bytes:
    """An Echo Request with `size` bytes of data."""
    return bytes(
        Ether(src=src_mac, dst=dst_mac)
        / IPv6(src=str(src), dst=str(dst), hlim=64)
        / ICMPv6EchoRequest(id=ident, seq=seq, data=b"\xa5" * size)
    )


def packet_too_big_frame(
    *, src_mac: str, dst_mac: str, src: IPv6Addr, dst: IPv6Addr, mtu: int, quoted: bytes
) -> bytes:
    """A Packet Too Big from `src` to `dst` quoting a packet `dst` sent (cut to fit 1280)."""
    room = 1280 - IPV6_HLEN - 8
    return bytes(
        Ether(src=src_mac, dst=dst_mac)
        / IPv6(src=str(src), dst=str(dst), hlim=64)
        / ICMPv6PacketTooBig(mtu=mtu)
        / Raw(quoted[:room])
    )


class LinkSocket:
    """AF_PACKET sockets of a node: one sending on `iface`, others receiving IPv6.

    Frames are received on `listen` (default: `iface`). For a bridge, listen
    on its ports: with br_netfilter loaded (Docker hosts), bridged IPv6 goes
    through netfilter's defragmentation before the bridge device's own taps,
    which would then see reassembled packets instead of the fragments.
    """

    def __init__(self, netns_path: str, iface: str, listen: Iterable[str] = ()) -> None:
        self.iface = iface
        self.receivers: list[socket.socket] = []
        with nsfs.netns(netns_path):
            # Protocol 0: the sending socket receives nothing.
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                self.sock.bind((iface, 0))
                for name in list(listen) or [iface]:
                    # ETH_P_ALL: on a bridge port, only taps for every protocol
                    # run before the bridge takes the frame.
                    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                    self.receivers.append(rx)
                    rx.bind((name, ETH_P_ALL))
                    rx.setblocking(False)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        for sock in (self.sock, *self.receivers):
            sock.close()

    def __enter__(self) -> LinkSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, frame: bytes) -> None:
        # Blocking: a full device queue makes us wait, it never drops silently.
        self.sock.send(frame)

    def send_all(self, frames: Iterable[bytes]) -> int:
        sent = 0
        for frame in frames:
            self.sock.send(frame)
            sent += 1
        return sent

    def _read(self, rx: socket.socket) -> Iterator[bytes]:
        while True:
            try:
                data, addr = rx.recvfrom(1 << 16)
            except BlockingIOError:
                return
            if addr[2] != socket.PACKET_OUTGOING and data[12:14] == IPV6_ETHERTYPE:
                yield data

    def drain(self) -> None:
        """Forget what arrived so far."""
        for rx in self.receivers:
            for _ in self._read(rx):
                pass

    def collect(self, done: Callable[[list[Packet]], bool], timeout: float) -> list[Packet]:
        """Incoming IPv6 packets until `done(packets)` says enough, or the deadline."""
        deadline = time.monotonic() + timeout
        got: list[Packet] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            ready, _, _ = select.select(self.receivers, [], [], remaining)
            if not ready:
                return got
            for rx in ready:
                got += [Ether(data) for data in self._read(rx)]
            if done(got):
                return got
