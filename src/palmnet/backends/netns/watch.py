"""Wait for planned addresses on netlink events, never by sleeping.

One netlink socket per node, opened inside the node's namespace and
subscribed to address notifications before its links come up, so no event
is missed. An address counts when the kernel reports it without the
TENTATIVE flag (DAD done) or as OPTIMISTIC; a DADFAILED address fails at once.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_GETADDR,
    RTM_NEWADDR,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from palmnet.backends.netns import nsfs
from palmnet.errors import LabError

IFA_F_DADFAILED = 0x08
IFA_F_OPTIMISTIC = 0x04
IFA_F_TENTATIVE = 0x40


def _canon(address: str) -> str:
    return str(ipaddress.ip_address(address.split("/")[0]))


@dataclass
class _Watched:
    node: str
    sock: socket.socket
    pending: set[str]
    tentative: set[str] = field(default_factory=set)


class AddressWatch:
    """Collects address events of many nodes until every planned one is usable."""

    def __init__(self) -> None:
        self._by_fd: dict[int, _Watched] = {}
        self._marshal = MarshalRtnl()

    def watch(self, node: str, netns_path: str, expected: Iterable[str]) -> None:
        with nsfs.netns(netns_path):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_IFADDR))
        sock.setblocking(False)
        self._by_fd[sock.fileno()] = _Watched(node, sock, {_canon(a) for a in expected})

    def dump(self, nodes: Iterable[str] | None = None) -> None:
        """Ask nodes for the addresses they already hold (static IPv4 is never tentative,
        so it may be there before anyone listens)."""
        chosen = set(nodes) if nodes is not None else None
        for w in self._by_fd.values():
            if chosen is not None and w.node not in chosen:
                continue
            msg = ifaddrmsg()
            msg["header"]["type"] = RTM_GETADDR
            msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
            msg["header"]["sequence_number"] = 1
            msg["family"] = socket.AF_UNSPEC
            msg.encode()
            w.sock.send(msg.data)

    def _handle(self, w: _Watched, data: bytes) -> None:
        for msg in self._marshal.parse(data):
            kind = msg["header"]["type"]
            if kind not in (RTM_NEWADDR, RTM_DELADDR) or msg["header"].get("error"):
                continue
            addr = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
            if not addr:
                continue
            addr = _canon(addr)
            flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
            if kind == RTM_DELADDR:
                continue
            if flags & IFA_F_DADFAILED:
                raise LabError(f"{w.node}: duplicate address detected for {addr} (DAD failed)")
            if addr in w.pending:
                if flags & IFA_F_TENTATIVE and not flags & IFA_F_OPTIMISTIC:
                    w.tentative.add(addr)
                else:
                    w.pending.discard(addr)
                    w.tentative.discard(addr)

    def wait(
        self,
        timeout: float,
        nodes: Iterable[str] | None = None,
        only: dict[str, set[str]] | None = None,
    ) -> None:
        """Return when the nodes hold their planned addresses (or, with `only`, those
        of them); LabError at the deadline.

        Events of other watched nodes are read too (and kept) when they share
        a select round, so nothing is lost between two waits.
        """
        deadline = time.monotonic() + timeout
        chosen = set(nodes) if nodes is not None else None
        wanted = {k: {_canon(a) for a in v} for k, v in (only or {}).items()}

        def waiting(w: _Watched) -> bool:
            if chosen is not None and w.node not in chosen:
                return False
            if only is not None:
                return bool(w.pending & wanted.get(w.node, set()))
            return bool(w.pending)

        open_fds = {fd for fd, w in self._by_fd.items() if waiting(w)}
        poller = select.poll()  # not select(): a 500-node lab holds fds above 1023
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(self._timeout_message(timeout, chosen))
            for fd, _ in poller.poll(left * 1000):
                w = self._by_fd[fd]
                while True:
                    try:
                        data = w.sock.recv(1 << 16)
                    except BlockingIOError:
                        break
                    self._handle(w, data)
                if not waiting(w):
                    open_fds.discard(fd)
                    poller.unregister(fd)

    def _timeout_message(self, timeout: float, only: set[str] | None) -> str:
        missing = []
        for w in self._by_fd.values():
            if only is not None and w.node not in only:
                continue
            for addr in sorted(w.pending):
                state = "still tentative (DAD not finished)" if addr in w.tentative else "absent"
                missing.append(f"  {w.node}: {addr} {state}")
        shown = "\n".join(missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        return (
            f"addresses not ready after {timeout:g} s ({len(missing)} missing); "
            f"no router advertisement reached them, or DAD did not finish:\n{shown}{more}"
        )

    def close(self) -> None:
        for w in self._by_fd.values():
            w.sock.close()
        self._by_fd.clear()
