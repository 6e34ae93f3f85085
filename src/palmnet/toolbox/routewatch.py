"""Route changes in many routers, as the kernel announces them (churn).

One netlink socket per router, opened inside its namespace and subscribed to
RTMGRP_IPV6_ROUTE, so every RTM_NEWROUTE / RTM_DELROUTE of the IPv6 main
table is seen with the time it arrived; one thread reads them all with
poll(). Cached clones (PMTU exceptions) and other tables are not routing
changes and are left out. Events are kept in arrival order.

Each event carries the route's next hops (`fe80::1%eth0`, or `eth2` on
link). A daemon rewrites a kernel route whenever one of its attributes
changes (BIRD does on every Babel metric change) even when packets keep
going the same way: `moves` tells the changes of next hops from the
rewrites, starting from the tables read when the watch began (`initial`).
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pyroute2.netlink.rtnl import RTM_DELROUTE, RTM_NEWROUTE, RTMGRP_IPV6_ROUTE
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from palmnet.kernel import nsfs

RT_TABLE_MAIN = 254
RTM_F_CLONED = 0x200
RCVBUF = 1 << 20

Via = tuple[str, ...]


@dataclass(frozen=True)
class RouteEvent:
    at: float  # time.monotonic() when it was read
    node: str
    op: str  # add | del
    dst: str  # prefix, `::/0` for the default route
    protocol: int  # rtm_protocol: 2 kernel, 3 boot, 4 static, 9 ra, 12 bird ...
    via: Via = ()  # sorted next hops: `fe80::1%eth0`, or `eth2` for on-link


def via_of(hops: Iterable[tuple[str | None, str]]) -> Via:
    """(gateway or None, device) pairs as a sorted tuple of `gw%dev` / `dev`."""
    return tuple(sorted(f"{gw}%{dev}" if gw else dev for gw, dev in hops))


def moves(events: Iterable[RouteEvent], initial: Mapping[tuple[str, str], Via]) -> list[RouteEvent]:
    """The events that changed where a prefix goes (a deletion, or other next hops
    than the router had for it before), from `initial` ((node, prefix) -> next hops)."""
    known = dict(initial)
    out = []
    for e in events:
        now: Via = () if e.op == "del" else e.via
        if known.get((e.node, e.dst), ()) != now:
            out.append(e)
        known[(e.node, e.dst)] = now
    return out


class RouteWatch:
    """Subscribe now, `start()` the reader, `stop()` and read `events`."""

    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self.events: list[RouteEvent] = []
        self.initial: dict[tuple[str, str], Via] = {}
        self.overruns: list[str] = []  # routers whose socket overflowed (events lost)
        self._names: dict[str, dict[int, str]] = {}
        self._lock = threading.Lock()
        self._socks: dict[int, tuple[str, socket.socket]] = {}
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        try:
            for node, path in namespaces.items():
                with nsfs.netns(path):
                    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                self._socks[sock.fileno()] = (node, sock)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE
                sock.bind((0, RTMGRP_IPV6_ROUTE))
            self._read_initial(namespaces)  # after subscribing: no change falls between
        except BaseException:
            self.close()
            raise

    def _read_initial(self, namespaces: Mapping[str, str]) -> None:
        from palmnet.toolbox.fib import link_names, read_routes

        for node, path in namespaces.items():
            self._names[node] = link_names(path)
            for route in read_routes(path):
                key = (node, str(route.dst))
                self.initial[key] = via_of(
                    (str(h.via) if h.via else None, h.dev) for h in route.nexthops
                )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="routewatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        for fd in self._socks:
            poller.register(fd, select.POLLIN)
        poller.register(self._stop_r.fileno(), select.POLLIN)
        marshal = MarshalRtnl()
        while True:
            for fd, _ in poller.poll():
                if fd == self._stop_r.fileno():
                    return
                node, sock = self._socks[fd]
                try:
                    data = sock.recv(1 << 20)
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        self.overruns.append(node)
                        continue
                    raise
                now = time.monotonic()
                found = [e for e in (self._event(node, now, m) for m in marshal.parse(data)) if e]
                if found:
                    with self._lock:
                        self.events.extend(found)

    def _event(self, node: str, now: float, msg: object) -> RouteEvent | None:
        kind = msg["header"]["type"]  # type: ignore[index]
        if kind not in (RTM_NEWROUTE, RTM_DELROUTE):
            return None
        if msg["flags"] & RTM_F_CLONED:  # type: ignore[index]
            return None
        table = msg.get_attr("RTA_TABLE") or msg["table"]  # type: ignore[attr-defined,index]
        if table != RT_TABLE_MAIN:
            return None
        dst = msg.get_attr("RTA_DST") or "::"  # type: ignore[attr-defined]
        names = self._names.get(node, {})
        hops: list[tuple[str | None, str]] = []
        multipath = msg.get_attr("RTA_MULTIPATH")  # type: ignore[attr-defined]
        if multipath:
            for nh in multipath:
                hops.append((nh.get_attr("RTA_GATEWAY"), names.get(nh["oif"], str(nh["oif"]))))
        else:
            oif = msg.get_attr("RTA_OIF")  # type: ignore[attr-defined]
            if oif is not None:
                hops.append((msg.get_attr("RTA_GATEWAY"), names.get(oif, str(oif))))  # type: ignore[attr-defined]
        return RouteEvent(
            now,
            node,
            "add" if kind == RTM_NEWROUTE else "del",
            f"{dst}/{msg['dst_len']}",  # type: ignore[index]
            int(msg["proto"]),  # type: ignore[index]
            via_of(hops),
        )

    def snapshot(self) -> list[RouteEvent]:
        with self._lock:
            return list(self.events)

    def last_at(self) -> float | None:
        with self._lock:
            return self.events[-1].at if self.events else None

    def stop(self) -> None:
        if self._thread is not None:
            self._stop_w.send(b"x")
            self._thread.join(timeout=5)
            self._thread = None
        self.close()

    def close(self) -> None:
        for _, sock in self._socks.values():
            sock.close()
        self._socks.clear()
        self._stop_r.close()
        self._stop_w.close()
