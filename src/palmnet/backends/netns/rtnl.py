"""A small synchronous rtnetlink client for building labs.

pyroute2's synchronous IPRoute runs an asyncio loop per call, which costs
more than the kernel's own work for most requests. Here each request is a
pyroute2 message (ifinfmsg, ifaddrmsg), encoded by pyroute2 and sent on a
plain netlink socket; answers are decoded by pyroute2's MarshalRtnl. Every
request asks for an ACK and a failure raises OSError naming what was asked:

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
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    nlmsg,
)
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_SETLINK,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from palmnet.backends.netns import nsfs

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RTEXT_FILTER_SKIP_STATS = 1 << 3

SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

RCVBUF = 4 << 20  # room for the ACKs of a full pipeline window
WINDOW = 256  # requests per pipelined flush; their ACKs must fit in RCVBUF
WINDOW_BYTES = 64 << 10  # one datagram; the kernel refuses more than sndbuf
ADD = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
CHANGE = NLM_F_REQUEST | NLM_F_ACK


class _ifinfhead(ifinfmsg):
    """An ifinfmsg decoded only up to its fixed part (index, flags).

    Decoding every attribute of a link costs pyroute2 about 0.4 ms; the
    answers here are read for their index only.
    """

    nla_map = ()


@dataclass
class _Pending:
    what: str
    replies: list[nlmsg] | None = None  # None: only the ACK is wanted
    done: bool = False
    error: OSError | None = None


class Rtnl:
    """One NETLINK_ROUTE socket, bound to the namespace it was opened in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._marshal = MarshalRtnl()
        self._marshal.msg_map[RTM_NEWLINK] = _ifinfhead
        self._seq = 0
        self._pending: dict[int, _Pending] = {}
        self._queue = bytearray()  # encoded requests not sent yet (pipeline)
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
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
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

    # -- requests ----------------------------------------------------------------
    def add_bridge(self, name: str, up: bool = True) -> int:
        """Create bridge `name` with STP off and no forward delay; return its index."""
        msg = _link(RTM_NEWLINK, ADD, name=name, up=up)
        msg["attrs"].append(
            (
                "IFLA_LINKINFO",
                {
                    "attrs": [
                        ("IFLA_INFO_KIND", "bridge"),
                        (
                            "IFLA_INFO_DATA",
                            {
                                "attrs": [
                                    ("IFLA_BR_STP_STATE", 0),
                                    ("IFLA_BR_FORWARD_DELAY", 0),
                                ]
                            },
                        ),
                    ]
                },
            )
        )
        self._submit(msg, f"add bridge {name}")
        return self.index_of(name)

    def add_veth(
        self,
        name: str,
        peer: str,
        peer_netns_fd: int | None,
        peer_mac: str | None = None,
        master: int | None = None,
        up: bool = False,
    ) -> None:
        """Create veth pair `name`/`peer` in one request.

        The peer is made straight in the namespace open on `peer_netns_fd`
        (None: this one), with `peer_mac`, and stays down; `master` (a bridge
        index) and `up` apply to the local end.
        """
        peer_attrs: list[tuple[str, object]] = [("IFLA_IFNAME", peer)]
        if peer_mac is not None:
            peer_attrs.append(("IFLA_ADDRESS", peer_mac))
        if peer_netns_fd is not None:
            peer_attrs.append(("IFLA_NET_NS_FD", peer_netns_fd))
        msg = _link(RTM_NEWLINK, ADD, name=name, up=up)
        if master is not None:
            msg["attrs"].append(("IFLA_MASTER", master))
        msg["attrs"].append(
            (
                "IFLA_LINKINFO",
                {
                    "attrs": [
                        ("IFLA_INFO_KIND", "veth"),
                        (
                            "IFLA_INFO_DATA",
                            {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]},
                        ),
                    ]
                },
            )
        )
        self._submit(msg, f"add veth {name} (peer {peer})")

    def set_up(self, name: str | None = None, index: int | None = None, up: bool = True) -> None:
        """Bring a link up (or down), named or by index; a name needs no lookup."""
        if (name is None) == (index is None):
            raise ValueError("set_up needs a name or an index, not both")
        msg = _link(RTM_SETLINK, CHANGE, name=name, index=index or 0, up=up)
        what = name if name is not None else f"#{index}"
        self._submit(msg, f"set link {what} {'up' if up else 'down'}")

    def index_of(self, name: str) -> int:
        """The index of link `name` (one RTM_GETLINK, not a dump)."""
        msg = _link(RTM_GETLINK, CHANGE, name=name)
        msg["attrs"].append(("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS))
        replies = self._submit(msg, f"look up link {name}", want_replies=True)
        for reply in replies:
            if reply["header"]["type"] == RTM_NEWLINK:
                return int(reply["index"])
        raise OSError(errno.ENODEV, f"look up link {name}: no answer")

    def add_address(self, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        """Add an IPv4 or IPv6 address; `flags` such as IFA_F_NODAD go in IFA_FLAGS."""
        ip = ipaddress.ip_address(address)
        msg = ifaddrmsg()
        msg["header"]["type"] = RTM_NEWADDR
        msg["header"]["flags"] = ADD
        msg["family"] = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        msg["prefixlen"] = prefixlen
        msg["flags"] = flags & 0xFF
        msg["index"] = index
        # IFA_LOCAL alone: the kernel takes it as IFA_ADDRESS too (no peer)
        msg["attrs"] = [("IFA_LOCAL", str(ip))]
        if flags:
            msg["attrs"].append(("IFA_FLAGS", flags))
        self._submit(msg, f"add address {ip}/{prefixlen} on link #{index}")

    def delete_link(self, name: str) -> None:
        """Delete link `name` (and, for a veth, its peer wherever it is)."""
        msg = _link(RTM_DELLINK, CHANGE, name=name)
        self._submit(msg, f"delete link {name}")

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

    # -- transport ---------------------------------------------------------------
    def _submit(self, msg: nlmsg, what: str, want_replies: bool = False) -> list[nlmsg]:
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF or 1
        msg["header"]["sequence_number"] = seq
        msg.encode()
        pending = _Pending(what, [] if want_replies else None)
        self._pending[seq] = pending
        self._queue += msg.data
        self._queued.append(seq)
        if self._piped and not want_replies:
            if len(self._queued) >= WINDOW or len(self._queue) >= WINDOW_BYTES:
                self._flush()
            return []
        self._flush()
        if not self._piped:
            self._raise_errors()
        elif pending.error is not None:  # an answer was wanted: fail now
            self._errors.remove(pending.error)
            raise pending.error
        return pending.replies or []

    def _flush(self) -> None:
        """Send what is queued as one datagram and wait for every answer to it."""
        if not self._queued:
            return
        data, seqs = bytes(self._queue), self._queued
        self._queue = bytearray()
        self._queued = []
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
        for reply in self._marshal.parse(data):
            pending = self._pending.get(reply["header"]["sequence_number"])
            if pending is None:
                continue  # an answer to a request given up on
            if reply["header"]["type"] != NLMSG_ERROR:
                if pending.replies is not None:
                    pending.replies.append(reply)
                continue
            pending.done = True
            code = abs(reply["error"])
            if code:
                pending.error = _error(code, pending.what, reply)

    def _raise_errors(self) -> None:
        if not self._errors:
            return
        first, others = self._errors[0], len(self._errors) - 1
        self._errors.clear()
        if others:
            more = f" (and {others} more failed request{'s' if others > 1 else ''})"
            raise OSError(first.errno, f"{first.strerror}{more}")
        raise first


def _socket() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )


def _link(
    kind: int, flags: int, name: str | None = None, index: int = 0, up: bool | None = None
) -> ifinfmsg:
    msg = ifinfmsg()
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    if up is not None:
        msg["change"] = IFF_UP
        msg["flags"] = IFF_UP if up else 0
    msg["attrs"] = [("IFLA_IFNAME", name)] if name is not None else []
    return msg


def _error(code: int, what: str, reply: nlmsg) -> OSError:
    text = f"{what}: {os.strerror(code)}"
    detail = reply.get_attr("NLMSGERR_ATTR_MSG")
    if detail:
        text += f" ({detail})"
    return OSError(code, text)
