"""Wait for planned addresses on netlink events, never by sleeping.

One netlink socket per node, opened inside the node's namespace and
subscribed to address notifications before its links come up, so no event
is missed. An address counts when the kernel reports it without the
TENTATIVE flag (DAD done) or as OPTIMISTIC; a DADFAILED address fails at once.

Events are decoded here with `struct`, for the three attributes looked at
(address, local, flags), and compared as packed bytes: a 500-node lab sends
thousands of them while it comes up.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from palmnet.diagnostics import progress
from palmnet.errors import LabError
from palmnet.kernel import nsfs
from palmnet.kernel.rtnl import (
    IFA_ADDRESS,
    IFA_FLAGS,
    IFA_LOCAL,
    IFADDR,
    IFINFO,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG,
    RTM_GETADDR,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    iter_attrs,
    iter_messages,
)

IFA_F_DADFAILED = 0x08
IFA_F_OPTIMISTIC = 0x04
IFA_F_TENTATIVE = 0x40
IFLA_OPERSTATE = 16
IF_OPER_UP = 6
_U32 = struct.Struct("=I")


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address.split("/")[0]).packed


def _text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def open_socket(subscribed: bool = True) -> socket.socket:
    """An address-event socket in this thread's namespace (call it inside the node).

    With `subscribed=False` it joins no group yet (`subscribe` does, from any thread): the
    kernel walks every socket that joined a NETLINK_ROUTE group, in every namespace,
    for each notification it sends anywhere. A thousand sockets listening while a
    thousand namespaces are made cost about 1 CPU-second of those walks (perf, 1,000
    hosts), and their links are not up yet: nothing for them to hear.
    """
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
        if subscribed:
            subscribe(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def subscribe(sock: socket.socket) -> None:
    """Join the address and link groups: events from now on queue on the socket."""
    sock.bind((0, RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_IFADDR | RTMGRP_LINK))


@dataclass
class _Watched:
    node: str
    sock: socket.socket
    pending: set[bytes]
    tentative: set[bytes] = field(default_factory=set)
    up: set[int] = field(default_factory=set)  # links the kernel reported operstate UP


class AddressWatch:
    """Collects address events of many nodes until every planned one is usable."""

    def __init__(self) -> None:
        self._by_fd: dict[int, _Watched] = {}

    def watch(
        self,
        node: str,
        netns_path: str,
        expected: Iterable[str],
        sock: socket.socket | None = None,
    ) -> None:
        """Follow `node`'s addresses; `sock` is one from `open_socket()` made earlier
        inside the node (its events since then are kept), else one is opened now."""
        if sock is None:
            with nsfs.netns(netns_path):
                sock = open_socket()
        self._by_fd[sock.fileno()] = _Watched(node, sock, {_packed(a) for a in expected})

    def dump(self, nodes: Iterable[str] | None = None) -> None:
        """Ask nodes for the addresses they already hold (static IPv4 is never tentative,
        so it may be there before anyone listens)."""
        chosen = set(nodes) if nodes is not None else None
        body = IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        request = NLMSG.pack(NLMSG.size + len(body), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        for w in self._by_fd.values():
            if chosen is None or w.node in chosen:
                w.sock.send(request + body)

    def _handle(self, w: _Watched, data: bytes) -> None:
        for kind, _, _, start, end in iter_messages(data):
            if kind == RTM_NEWLINK:
                self._link(w, data, start, end)
                continue
            if kind != RTM_NEWADDR:  # deletions, the end of a dump, errors
                continue
            flags = data[start + 2]
            raw = local = None
            for akind, a, b in iter_attrs(data, start + IFADDR.size, end):
                if akind == IFA_ADDRESS:
                    raw = data[a:b]
                elif akind == IFA_LOCAL:
                    local = data[a:b]
                elif akind == IFA_FLAGS:
                    flags = _U32.unpack_from(data, a)[0]
            raw = raw or local
            if raw is None:
                continue
            if flags & IFA_F_DADFAILED:
                raise LabError(
                    f"{w.node}: duplicate address detected for {_text(raw)} (DAD failed)"
                )
            if raw in w.pending:
                if flags & IFA_F_TENTATIVE and not flags & IFA_F_OPTIMISTIC:
                    w.tentative.add(raw)
                else:
                    w.pending.discard(raw)
                    w.tentative.discard(raw)

    @staticmethod
    def _link(w: _Watched, data: bytes, start: int, end: int) -> None:
        index = IFINFO.unpack_from(data, start)[2]
        for akind, a, _ in iter_attrs(data, start + IFINFO.size, end):
            if akind == IFLA_OPERSTATE:
                if data[a] == IF_OPER_UP:
                    w.up.add(index)
                else:
                    w.up.discard(index)

    def wait(
        self,
        timeout: float,
        nodes: Iterable[str] | None = None,
        only: dict[str, set[str]] | None = None,
        stall: bool = False,
    ) -> None:
        """Return when the nodes hold their planned addresses (or, with `only`, those
        of them); LabError at the deadline. With `stall`, the deadline moves on each
        time a node is done: it fires only after `timeout` s without progress, so a
        big lab that converges slowly but steadily is not called failed.

        Events of other watched nodes are read too (and kept) when they share
        a select round, so nothing is lost between two waits.
        """
        deadline = time.monotonic() + timeout
        chosen = set(nodes) if nodes is not None else None
        wanted = {k: {_packed(a) for a in v} for k, v in (only or {}).items()}

        def waiting(w: _Watched) -> bool:
            if chosen is not None and w.node not in chosen:
                return False
            if only is not None:
                return bool(w.pending & wanted.get(w.node, set()))
            return bool(w.pending)

        # What arrived before this wait (events queue from the socket's creation).
        for w in self._by_fd.values():
            if waiting(w):
                self._drain(w)
        open_fds = {fd for fd, w in self._by_fd.items() if waiting(w)}
        # epoll, not poll(): poll scans every registered fd on each call, and a node
        # that reaches its addresses is one call; with 5,000 nodes that was 25
        # million fd checks. (Not select() either: it stops at fd 1023.)
        with select.epoll() as poller:
            for fd in open_fds:
                poller.register(fd, select.EPOLLIN)
            total = len(open_fds)
            while open_fds:
                progress.step("addresses", total - len(open_fds), total)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabError(self._timeout_message(timeout, chosen, stall))
                for fd, _ in poller.poll(left):
                    w = self._by_fd[fd]
                    self._drain(w)
                    if not waiting(w):
                        open_fds.discard(fd)
                        poller.unregister(fd)
                        if stall:
                            deadline = time.monotonic() + timeout

    def links_down(
        self, links: dict[str, int], fewer_than: int | None = None, timeout: float = 0.0
    ) -> int:
        """How many of the nodes' links (node -> how many) the kernel has not reported up
        yet (operstate UP: its linkwatch has taken them up), after reading what arrived.
        With `fewer_than`, first waits up to `timeout` s for the count to drop below it;
        never fails: it paces, the deadline is elsewhere."""
        watched = [w for w in self._by_fd.values() if w.node in links]

        def count() -> int:
            return sum(max(0, links[w.node] - len(w.up)) for w in watched)

        for w in watched:
            self._drain(w)
        left = count()
        if fewer_than is None or left < fewer_than:
            return left
        deadline = time.monotonic() + timeout
        with select.epoll() as poller:
            for w in watched:
                if len(w.up) < links[w.node]:
                    poller.register(w.sock.fileno(), select.EPOLLIN)
            while left >= fewer_than and (wait := deadline - time.monotonic()) > 0:
                for fd, _ in poller.poll(wait):
                    self._drain(self._by_fd[fd])
                left = count()
        return left

    def _drain(self, w: _Watched) -> None:
        while True:
            try:
                data = w.sock.recv(1 << 16)
            except BlockingIOError:
                return
            self._handle(w, data)

    def _timeout_message(self, timeout: float, only: set[str] | None, stall: bool) -> str:
        missing = []
        for w in self._by_fd.values():
            if only is not None and w.node not in only:
                continue
            for raw in sorted(w.pending):
                state = "still tentative (DAD not finished)" if raw in w.tentative else "absent"
                missing.append(f"  {w.node}: {_text(raw)} {state}")
        shown = "\n".join(missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        when = f"no node got them in the last {timeout:g} s" if stall else f"after {timeout:g} s"
        return (
            f"addresses not ready: {when} ({len(missing)} missing); "
            f"no router advertisement reached them, or DAD did not finish:\n{shown}{more}"
        )

    def close(self) -> None:
        for w in self._by_fd.values():
            w.sock.close()
        self._by_fd.clear()
