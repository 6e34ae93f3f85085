"""Capture Neighbour Discovery on a node's interfaces, from outside the node.

One AF_PACKET socket per interface is opened with this thread inside the
node's network namespace (a socket stays bound to the namespace it was made
in), then handed to scapy's `sniff(opened_socket=...)` in the caller's
namespace. Why not scapy's own `L2ListenSocket`: it resolves interface names
through scapy's global interface list, which holds the host's interfaces, not
the node's, and it needs tcpdump or libpcap to compile a filter. The filter
here is a fixed classic BPF program, so it needs neither.

ETH_P_ALL, not ETH_P_IPV6: the kernel copies outgoing frames only to ETH_P_ALL
taps, and a node's own DAD probes and solicitations are outgoing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.supersocket import SuperSocket

from palmnet.errors import InputError
from palmnet.kernel import nsfs
from palmnet.toolbox.ndp import NdpMessage, decode, is_ndp

ETH_P_ALL = 0x0003
ARPHRD_ETHER = 1
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26

# Classic BPF: Ethernet, IPv6, next header ICMPv6 (58), type 133..137.
# ND messages never carry extension headers (they would break the hop
# limit 255 check of RFC 4861 6.1), so the ICMPv6 type is at offset 54.
NDP_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 12),  # ldh [12]            ethertype
    (0x15, 0, 6, 0x86DD),  # jeq IPv6, else drop
    (0x30, 0, 0, 20),  # ldb [20]            IPv6 next header
    (0x15, 0, 4, 58),  # jeq ICMPv6, else drop
    (0x30, 0, 0, 54),  # ldb [54]            ICMPv6 type
    (0x35, 0, 2, 133),  # jge 133, else drop
    (0x25, 1, 0, 137),  # jgt 137 -> drop
    (0x06, 0, 0, 0x40000),  # accept the whole frame
    (0x06, 0, 0, 0),  # drop
)


def attach_ndp_filter(sock: socket.socket) -> None:
    """Let the kernel pass only ND frames to this socket."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in NDP_FILTER)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = struct.pack("HL", len(NDP_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


class NdpListenSocket(SuperSocket):
    """A receive-only scapy socket over one AF_PACKET socket we opened ourselves.

    Each packet it returns carries the kernel's packet type in `direction`
    (PACKET_OUTGOING for the node's own messages, which is what DAD and RS are).
    """

    desc = "ND capture on one interface of a node"

    def __init__(self, sock: socket.socket, iface: str) -> None:
        self.ins = sock
        self.outs = None  # type: ignore[assignment]
        self.iface = iface

    def recv_raw(self, x: int = 65535) -> tuple[type[Packet] | None, bytes | None, float | None]:
        try:
            data, sa_ll = self.ins.recvfrom(x)
        except OSError as exc:
            # The interface went down (or was down when we bound): the kernel
            # reports ENETDOWN once, then delivers again when it comes up.
            if exc.errno == errno.ENETDOWN:
                return None, None, None
            raise
        self._pkttype = int(sa_ll[2])
        return Ether, data, time.time()

    def recv(self, x: int = 65535, **kwargs: object) -> Packet | None:
        packet = super().recv(x, **kwargs)
        if packet is not None:
            packet.direction = self._pkttype
        return packet

    def send(self, x: Packet) -> int:
        raise OSError(errno.EOPNOTSUPP, "ND capture sockets do not send")


def node_interfaces(netns: str | None) -> list[str]:
    """Names of the interfaces in the namespace (the host's when netns is None)."""
    with _in_netns(netns):
        return [name for _, name in socket.if_nameindex() if name != "lo"]


def open_sockets(
    netns: str | None, interfaces: list[str] | None, node: str = "host"
) -> dict[NdpListenSocket, str]:
    """One filtered capture socket per Ethernet interface: {socket: interface name}.

    Named interfaces must exist and be Ethernet; without names, every
    Ethernet interface of the node is watched (the others are skipped).
    """
    explicit = interfaces is not None
    names = interfaces if interfaces is not None else node_interfaces(netns)
    sockets: dict[NdpListenSocket, str] = {}
    try:
        with _in_netns(netns):
            for name in names:
                opened = _open_one(name, node, explicit)
                if opened is not None:
                    sockets[NdpListenSocket(opened, name)] = name
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise InputError(f"node {node} has no Ethernet interface to watch")
    return sockets


def _open_one(name: str, node: str, explicit: bool) -> socket.socket | None:
    # Protocol 0 first: the socket sees nothing until bind, so no frame
    # slips in before the filter is attached.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        attach_ndp_filter(sock)
        try:
            sock.bind((name, ETH_P_ALL))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise InputError(f"node {node} has no interface {name}") from None
            raise
        if sock.getsockname()[3] != ARPHRD_ETHER:
            if explicit:
                raise InputError(f"{name} in node {node} is not an Ethernet interface")
            sock.close()
            return None
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _in_netns(path: str | None) -> Iterator[None]:
    if path is None:
        yield
    else:
        with nsfs.netns(path):
            yield


def watch(
    sockets: dict[NdpListenSocket, str],
    on_message: Callable[[NdpMessage], None],
    *,
    count: int = 0,
    timeout: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Decode ND messages as they arrive until `count` of them or `timeout` seconds,
    or until `stop` is set (seen at the next frame: the web UI's reader went away).

    Returns how many messages were seen. Ctrl-C ends the watch quietly
    (scapy's sniff swallows KeyboardInterrupt), as for tcpdump.
    """
    from scapy.sendrecv import sniff

    seen = 0

    def handle(packet: Packet) -> None:
        nonlocal seen
        direction = "out" if packet.direction == PACKET_OUTGOING else "in"
        message = decode(packet, interface=str(packet.sniffed_on), direction=direction)
        if message is not None:
            seen += 1
            on_message(message)

    try:
        sniff(
            opened_socket=sockets,
            lfilter=is_ndp,
            prn=handle,
            count=count,
            timeout=timeout,
            store=False,
            stop_filter=(lambda _packet: stop.is_set()) if stop is not None else None,
        )
    finally:
        for sock in sockets:
            sock.close()
    return seen
