"""A small synchronous rtnetlink client for building labs, without pyroute2.

pyroute2's synchronous IPRoute runs an asyncio loop per call, which costs
more than the kernel's own work for most requests, and importing it costs
0.15-0.25 s of every `palmnet` command. The few messages a lab needs are
packed here with `struct` and sent on a plain netlink socket. Every request
asks for an ACK and a failure raises OSError naming what was asked (with the
kernel's extended ACK message when it gives one):

    with Rtnl.open("/run/netns/lab-sw") as rt:
        br = rt.add_bridge("br0")
        rt.add_veth("v1", "eth0", node_fd, "02:00:00:00:00:01", br, up=True)

Inside `with rt.pipeline():` requests that need no answer are queued, sent
several to a datagram (the kernel handles them in order, answering each) and
their ACKs are collected at the end; the first failure is raised there.

Not thread safe: one Rtnl per thread.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

from palmnet.kernel import nsfs

# linux/netlink.h
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an ACK: the request's payload is not echoed
NLM_F_ACK_TLVS = 0x200  # in an ACK: extended ACK attributes follow
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1

# linux/rtnetlink.h
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_NEWNEIGHTBL = 64
RTM_GETNEIGHTBL = 66
RTM_SETNEIGHTBL = 67
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100

# linux/if_link.h, linux/veth.h, linux/if_addr.h, linux/neighbour.h, linux/rtnetlink.h
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_NUM_TX_QUEUES = 31
IFLA_NUM_RX_QUEUES = 32
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_BRIDGE = 4
IFLA_BR_FORWARD_DELAY = 1
IFLA_BR_STP_STATE = 5
IFLA_BR_MCAST_SNOOPING = 23
IFLA_BR_MCAST_HASH_MAX = 27
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
NDTA_NAME = 1
NDTA_THRESH1 = 2
NDTA_THRESH2 = 3
NDTA_THRESH3 = 4
NDTA_CONFIG = 5
NDTA_PARMS = 6
NDTA_STATS = 7
NDTPA_IFINDEX = 1
NDTPA_RETRANS_TIME = 5
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_VIA = 18
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1
RTN_UNREACHABLE = 7
RTPROT_STATIC = 4

IFF_UP = 0x1
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
RTEXT_FILTER_SKIP_STATS = 1 << 3

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

RCVBUF = 4 << 20  # room for the ACKs of a full pipeline window
WINDOW = 256  # requests per pipelined flush; their ACKs must fit in RCVBUF
WINDOW_BYTES = 64 << 10  # one datagram; the kernel refuses more than sndbuf
ADD = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK

NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")
NDTMSG = struct.Struct("=B3x")
RTA = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")
_U32 = struct.Struct("=I")


# -- attributes ------------------------------------------------------------------------
def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = RTA.size + len(payload)
    return RTA.pack(size, kind) + payload + b"\0" * (-size % 4)


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, bytes((value,)))


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def attr_u64(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=Q", value))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind, b"".join(attrs))


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def iter_attrs(data: bytes | memoryview, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in data[start:end]."""
    while start + RTA.size <= end:
        size, kind = RTA.unpack_from(data, start)
        if size < RTA.size:
            return
        yield kind & 0x3FFF, start + RTA.size, start + size
        start += (size + 3) & ~3


def iter_messages(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, payload start, message end) of each message of a datagram."""
    offset, total = 0, len(data)
    while offset + NLMSG.size <= total:
        size, kind, flags, seq, _ = NLMSG.unpack_from(data, offset)
        if size < NLMSG.size:
            return
        yield kind, flags, seq, offset + NLMSG.size, offset + size
        offset += (size + 3) & ~3


# -- messages --------------------------------------------------------------------------
ONE_QUEUE = [attr_u32(IFLA_NUM_TX_QUEUES, 1), attr_u32(IFLA_NUM_RX_QUEUES, 1)]
"""veth's default is a queue per possible CPU, each end, each way: a netdev_queue,
a veth_rq (NAPI, XDP and ring state) and a kobject with its sysfs files apiece. A
lab's links carry pings and test traffic, not line rate (palmnet attaches no XDP),
so one of each is enough and saves memory on every link (numbers: issue 15)."""


def link_body(
    name: str | None = None, index: int = 0, up: bool | None = None, *attrs: bytes
) -> bytes:
    change = IFF_UP if up is not None else 0
    flags = IFF_UP if up else 0
    head = IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)
    named = attr_str(IFLA_IFNAME, name) if name is not None else b""
    return head + named + b"".join(attrs)


class _Pending:
    """One request waiting for its ACK (and, if `replies` is a list, its answers)."""

    __slots__ = ("done", "error", "replies", "what")

    def __init__(self, what: str, replies: list[tuple[int, bytes]] | None = None) -> None:
        self.what = what
        self.replies = replies  # (type, payload) of each answer; None: the ACK only
        self.done = False
        self.error: OSError | None = None


class NeighTable(NamedTuple):
    thresh1: int
    thresh2: int
    thresh3: int
    entries: int
    table_fulls: int


class LinkInfo(NamedTuple):
    index: int  # type: ignore[assignment]  # netlink's name; shadows tuple.index
    name: str
    mac: str
    up: bool


class AddrInfo(NamedTuple):
    family: int
    index: int  # type: ignore[assignment]  # netlink's name; shadows tuple.index
    address: str
    prefixlen: int
    flags: int


class Rtnl:
    """One NETLINK_ROUTE socket, bound to the namespace it was opened in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._seq = 0
        self._pending: dict[int, _Pending] = {}
        self._queue: list[bytes] = []  # encoded requests not sent yet (pipeline)
        self._queued_bytes = 0
        self._queued: list[int] = []
        self._errors: list[OSError] = []
        self._piped = 0  # nesting depth of pipeline()

    @classmethod
    def open(cls, netns_path: str | None = None) -> Rtnl:
        """A socket in the namespace at `netns_path` (None: this thread's own)."""
        if netns_path is None:
            sock = _socket()
        else:
            with nsfs.netns(netns_path):
                sock = _socket()
        try:
            sock.bind((0, 0))
            for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_NETLINK, option, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:  # not root: as much as net.core.rmem_max allows
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- links -------------------------------------------------------------------
    def add_bridge(
        self,
        name: str,
        up: bool = True,
        *,
        mac: str | None = None,
        mcast_hash_max: int | None = None,
    ) -> int:
        """Create bridge `name` with STP off and no forward delay; return its index.

        A `mac` given here stays: the bridge does not follow its ports' lowest
        MAC (which changes, with notifications, as ports come and go).
        """
        data = [attr_u32(IFLA_BR_STP_STATE, 0), attr_u32(IFLA_BR_FORWARD_DELAY, 0)]
        if mcast_hash_max is not None:
            data.append(attr_u32(IFLA_BR_MCAST_HASH_MAX, mcast_hash_max))
        extra = [attr(IFLA_ADDRESS, mac_bytes(mac))] if mac else []
        info = nest(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"), nest(IFLA_INFO_DATA, *data))
        self._submit(RTM_NEWLINK, ADD, link_body(name, 0, up, *extra, info), f"add bridge {name}")
        return self.index_of(name)

    def add_veth(
        self,
        name: str,
        peer: str,
        peer_netns_fd: int | None,
        peer_mac: str | None = None,
        master: int | None = None,
        up: bool = False,
        mtu: int | None = None,
    ) -> None:
        """Create veth pair `name`/`peer` in one request, one queue each way per end.

        The peer is made straight in the namespace open on `peer_netns_fd`
        (None: this one), with `peer_mac`, and stays down; `master` (a bridge
        index) and `up` apply to the local end; `mtu` (None: the kernel's 1500)
        to both.
        """
        both = [*([attr_u32(IFLA_MTU, mtu)] if mtu is not None else []), *ONE_QUEUE]
        peer_attrs = [attr_str(IFLA_IFNAME, peer), *both]
        if peer_mac is not None:
            peer_attrs.append(attr(IFLA_ADDRESS, mac_bytes(peer_mac)))
        if peer_netns_fd is not None:
            peer_attrs.append(attr_u32(IFLA_NET_NS_FD, peer_netns_fd))
        peer_msg = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + b"".join(peer_attrs)
        info = nest(
            IFLA_LINKINFO,
            attr_str(IFLA_INFO_KIND, "veth"),
            nest(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)),
        )
        extra = [attr_u32(IFLA_MASTER, master)] if master is not None else []
        body = link_body(name, 0, up, *extra, *both, info)
        self._submit(RTM_NEWLINK, ADD, body, f"add veth {name} (peer {peer})")

    def add_macvlan(self, name: str, parent: int, netns_fd: int, mac: str) -> None:
        """Create macvlan `name` in bridge mode on the link with index `parent` (in
        this namespace), made straight in the namespace open on `netns_fd` with
        `mac`, down. Bridge mode: the macvlans of one parent reach each other."""
        info = nest(
            IFLA_LINKINFO,
            attr_str(IFLA_INFO_KIND, "macvlan"),
            nest(IFLA_INFO_DATA, attr_u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE)),
        )
        body = link_body(
            name,
            0,
            None,
            attr_u32(IFLA_LINK, parent),
            attr(IFLA_ADDRESS, mac_bytes(mac)),
            attr_u32(IFLA_NET_NS_FD, netns_fd),
            info,
        )
        self._submit(RTM_NEWLINK, ADD, body, f"add macvlan {name} (parent #{parent})")

    def set_up(self, name: str | None = None, index: int | None = None, up: bool = True) -> None:
        """Bring a link up (or down), named or by index; a name needs no lookup."""
        if (name is None) == (index is None):
            raise ValueError("set_up needs a name or an index, not both")
        what = name if name is not None else f"#{index}"
        body = link_body(name, index or 0, up)
        self._submit(RTM_SETLINK, CHANGE, body, f"set link {what} {'up' if up else 'down'}")

    def set_master(self, name: str, master: int) -> None:
        """Make link `name` a port of the bridge with index `master`."""
        body = link_body(name, 0, None, attr_u32(IFLA_MASTER, master))
        self._submit(RTM_SETLINK, CHANGE, body, f"set link {name} master #{master}")

    def index_of(self, name: str) -> int:
        """The index of link `name` (one RTM_GETLINK, not a dump)."""
        body = link_body(name, 0, None, attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS))
        replies = self._submit(RTM_GETLINK, CHANGE, body, f"look up link {name}", True)
        for kind, payload in replies:
            if kind == RTM_NEWLINK:
                return IFINFO.unpack_from(payload)[2]
        raise OSError(errno.ENODEV, f"look up link {name}: no answer")

    def delete_link(self, name: str) -> None:
        """Delete link `name` (and, for a veth, its peer wherever it is)."""
        self._submit(RTM_DELLINK, CHANGE, link_body(name), f"delete link {name}")

    def links(self) -> list[LinkInfo]:
        """Every link of the namespace: index, name, MAC, up."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr_u32(
            IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS
        )
        out = []
        for kind, payload in self._dump(RTM_GETLINK, body, "list links"):
            if kind != RTM_NEWLINK:
                continue
            _, _, index, flags, _ = IFINFO.unpack_from(payload)
            name, mac = "", ""
            for akind, start, end in iter_attrs(payload, IFINFO.size, len(payload)):
                if akind == IFLA_IFNAME:
                    name = payload[start:end].split(b"\0", 1)[0].decode()
                elif akind == IFLA_ADDRESS:
                    mac = ":".join(f"{b:02x}" for b in payload[start:end])
            out.append(LinkInfo(index, name, mac, bool(flags & IFF_UP)))
        return out

    # -- addresses, neighbour settings, routes -----------------------------------
    def add_address(self, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        """Add an IPv4 or IPv6 address; `flags` such as IFA_F_NODAD go in IFA_FLAGS."""
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        # IFA_LOCAL alone: the kernel takes it as IFA_ADDRESS too (no peer)
        body = IFADDR.pack(family, prefixlen, flags & 0xFF, 0, index) + attr(IFA_LOCAL, ip.packed)
        if flags:
            body += attr_u32(IFA_FLAGS, flags)
        self._submit(RTM_NEWADDR, ADD, body, f"add address {ip}/{prefixlen} on link #{index}")

    def addresses(self) -> list[AddrInfo]:
        """Every address of the namespace (IFA_FLAGS preferred to the 8-bit flags)."""
        out = []
        body = IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for kind, payload in self._dump(RTM_GETADDR, body, "list addresses"):
            if kind == RTM_NEWADDR:
                found = decode_address(payload)
                if found is not None:
                    out.append(found)
        return out

    def neigh_table(self, family: int = socket.AF_INET6) -> NeighTable:
        """The kernel's neighbour table (ndisc_cache for IPv6): its limits, entries and
        how often it was full. One table for the whole machine, readable from any
        network namespace, also one of a user namespace, where /proc/net/stat and the
        gc_thresh sysctls are not shown (measured: Linux 6.18)."""
        name = "ndisc_cache" if family == socket.AF_INET6 else "arp_cache"
        for kind, payload in self._dump(RTM_GETNEIGHTBL, NDTMSG.pack(family), "neigh tables"):
            if kind != RTM_NEWNEIGHTBL:
                continue
            values: dict[int, bytes] = {}
            for akind, start, end in iter_attrs(payload, NDTMSG.size, len(payload)):
                values[akind] = bytes(payload[start:end])
            if values.get(NDTA_NAME, b"").split(b"\0", 1)[0].decode() != name:
                continue
            thresh = [
                struct.unpack_from("=I", values[k])[0] if k in values else 0
                for k in (NDTA_THRESH1, NDTA_THRESH2, NDTA_THRESH3)
            ]
            # struct ndt_config: key_len, entry_size (u16), entries (u32), ...
            entries = struct.unpack_from("=HHI", values[NDTA_CONFIG])[2]
            # struct ndt_stats: 11 u64, table_fulls last (Linux >= 4.x)
            stats = values.get(NDTA_STATS, b"")
            fulls = struct.unpack_from("=Q", stats, 80)[0] if len(stats) >= 88 else 0
            return NeighTable(thresh[0], thresh[1], thresh[2], entries, fulls)
        raise OSError(f"the kernel has no {name} table")

    def set_neigh_retrans(self, index: int, ms: int, family: int = socket.AF_INET6) -> None:
        """The neighbour retransmit time of one link (DAD waits one of it per probe).

        The same value as /proc/sys/net/ipv6/neigh/IF/retrans_time_ms, set by
        netlink: no file to open per interface, and it pipelines.
        """
        table = "ndisc_cache" if family == socket.AF_INET6 else "arp_cache"
        parms = nest(NDTA_PARMS, attr_u32(NDTPA_IFINDEX, index), attr_u64(NDTPA_RETRANS_TIME, ms))
        body = NDTMSG.pack(family) + attr_str(NDTA_NAME, table) + parms
        self._submit(RTM_SETNEIGHTBL, CHANGE, body, f"set retrans_time {ms} ms on link #{index}")

    def add_route(
        self,
        dst: str,
        gateway: str | None,
        oif: int | None,
        proto: int = RTPROT_STATIC,
        replace: bool = True,
        kind: int = RTN_UNICAST,
    ) -> None:
        """Add (or replace) a route in the main table: `dst` is a prefix; `kind` is the
        route's type (RTN_UNREACHABLE: no next hop, ICMP unreachable to the sender)."""
        net = ipaddress.ip_network(dst, strict=False)
        family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
        head = RTMSG.pack(
            family,
            net.prefixlen,
            0,
            0,
            RT_TABLE_MAIN,
            proto,
            RT_SCOPE_UNIVERSE,
            kind,
            0,
        )
        attrs = [attr(RTA_DST, net.network_address.packed)] if net.prefixlen else []
        if gateway is not None:
            gw = ipaddress.ip_address(gateway)
            if gw.version == net.version:
                attrs.append(attr(RTA_GATEWAY, gw.packed))
            else:  # an IPv4 route via an IPv6 next hop
                gw_family = socket.AF_INET6 if gw.version == 6 else socket.AF_INET
                attrs.append(attr(RTA_VIA, struct.pack("=H", gw_family) + gw.packed))
        if oif is not None:
            attrs.append(attr_u32(RTA_OIF, oif))
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
        flags |= NLM_F_REPLACE if replace else NLM_F_EXCL
        via = f" via {gateway}" if gateway else ""
        self._submit(RTM_NEWROUTE, flags, head + b"".join(attrs), f"add route {net}{via}")

    # -- pipelining --------------------------------------------------------------
    @contextlib.contextmanager
    def pipeline(self) -> Iterator[Rtnl]:
        """Queue requests that need no answer; collect their ACKs on exit.

        Requests that return something (add_bridge, index_of) still run at
        once, after what is queued. The first failure is raised on exit (the
        requests after it were still made); the count of the others is in
        its message.
        """
        self._piped += 1
        try:
            yield self
        except BaseException:
            if self._piped == 1:
                with contextlib.suppress(OSError):
                    self._flush()
                self._errors.clear()
            raise
        finally:
            self._piped -= 1
        if self._piped == 0:
            self._flush()
            self._raise_errors()

    def flush(self) -> None:
        """Inside a pipeline: send what is queued now and collect its ACKs (failures
        are still raised when the pipeline ends)."""
        self._flush()

    # -- transport ---------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _submit(
        self, kind: int, flags: int, body: bytes, what: str, want_replies: bool = False
    ) -> list[tuple[int, bytes]]:
        seq = self._next_seq()
        pending = _Pending(what, [] if want_replies else None)
        self._pending[seq] = pending
        self._queue.append(NLMSG.pack(NLMSG.size + len(body), kind, flags, seq, 0) + body)
        self._queued_bytes += NLMSG.size + len(body)
        self._queued.append(seq)
        if self._piped and not want_replies:
            if len(self._queued) >= WINDOW or self._queued_bytes >= WINDOW_BYTES:
                self._flush()
            return []
        self._flush()
        if not self._piped:
            self._raise_errors()
        elif pending.error is not None:  # an answer was wanted: fail now
            self._errors.remove(pending.error)
            raise pending.error
        return pending.replies or []

    def _dump(self, kind: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """A dump request: every answer up to NLMSG_DONE (after what is queued)."""
        self._flush()
        seq = self._next_seq()
        pending = _Pending(what, [])
        self._pending[seq] = pending
        flags = NLM_F_REQUEST | NLM_F_DUMP
        self.sock.send(NLMSG.pack(NLMSG.size + len(body), kind, flags, seq, 0) + body)
        try:
            while not pending.done:
                self._receive()
        finally:
            self._pending.pop(seq, None)
        if pending.error is not None:
            raise pending.error
        return pending.replies or []

    def _flush(self) -> None:
        """Send what is queued as one datagram and wait for every answer to it."""
        if not self._queued:
            return
        data, seqs = b"".join(self._queue), self._queued
        self._queue = []
        self._queued = []
        self._queued_bytes = 0
        try:
            self.sock.send(data)
        except OSError as exc:
            for seq in seqs:
                del self._pending[seq]
            what = f"{len(seqs)} requests" if len(seqs) > 1 else "request"
            raise OSError(exc.errno, f"send {what}: {exc.strerror}") from exc
        # The kernel answers in order: once the last request is acknowledged,
        # so is every one before it (a lost answer raises ENOBUFS instead).
        while not self._pending[seqs[-1]].done:
            self._receive()
        for seq in seqs:
            pending = self._pending.pop(seq)
            if not pending.done:
                raise OSError(errno.EPROTO, f"{pending.what}: no answer from the kernel")
            if pending.error is not None:
                self._errors.append(pending.error)

    def _receive(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped answers: state unknown
                waiting = [p.what for p in self._pending.values() if not p.done]
                self._pending.clear()
                raise OSError(
                    errno.ENOBUFS,
                    f"netlink answers lost (receive buffer full) for: {', '.join(waiting)}",
                ) from exc
            raise
        for kind, flags, seq, start, end in iter_messages(data):
            pending = self._pending.get(seq)
            if pending is None:
                continue  # an answer to a request given up on
            if kind == NLMSG_DONE:
                pending.done = True
                continue
            if kind != NLMSG_ERROR:
                if pending.replies is not None:
                    pending.replies.append((kind, data[start:end]))
                continue
            pending.done = True
            code = -_ERRNO.unpack_from(data, start)[0]
            if code:
                pending.error = _error(code, pending.what, data, flags, start, end)

    def _raise_errors(self) -> None:
        if not self._errors:
            return
        first, others = self._errors[0], len(self._errors) - 1
        self._errors.clear()
        if others:
            more = f" (and {others} more failed request{'s' if others > 1 else ''})"
            raise OSError(first.errno, f"{first.strerror}{more}")
        raise first


def decode_address(payload: bytes) -> AddrInfo | None:
    """An RTM_NEWADDR/RTM_DELADDR payload (None if it names no address)."""
    family, prefixlen, flags, _, index = IFADDR.unpack_from(payload)
    address = local = None
    for kind, start, end in iter_attrs(payload, IFADDR.size, len(payload)):
        if kind == IFA_ADDRESS:
            address = payload[start:end]
        elif kind == IFA_LOCAL:
            local = payload[start:end]
        elif kind == IFA_FLAGS:
            flags = _U32.unpack_from(payload, start)[0]
    raw = address or local
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return AddrInfo(family, index, socket.inet_ntop(family, raw), prefixlen, flags)


def _socket() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )


def _error(code: int, what: str, data: bytes, flags: int, start: int, end: int) -> OSError:
    text = f"{what}: {os.strerror(code)}"
    if flags & NLM_F_ACK_TLVS:
        # nlmsgerr: error, the request's header (and its payload unless capped), TLVs
        tlvs = start + _ERRNO.size + NLMSG.size
        if not flags & NLM_F_CAPPED:
            tlvs = start + _ERRNO.size + ((NLMSG.unpack_from(data, start + 4)[0] + 3) & ~3)
        for kind, a, b in iter_attrs(data, tlvs, end):
            if kind == NLMSGERR_ATTR_MSG:
                detail = data[a:b].split(b"\0", 1)[0].decode(errors="replace")
                if detail:
                    text += f" ({detail})"
    return OSError(code, text)
