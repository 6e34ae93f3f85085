"""What every check needs: the lab (a session of the Lab API), the target node,
the stimulus node, and a few ways to look at a node from outside it.

Nodes are reached through their handles (backends/base.py), so the audit works
on every backend: the host's own tools (ip, rdisc6, ndisc6, ping) run in the
node's network namespace (`run`), so a container image needs none of them;
a file the node holds (its resolv.conf) is read as the node sees it. What a
node holds is read the way a user reads it, `ip -j` in the node; waits are on
the node's own netlink events with a deadline (`NetlinkBell`), never a sleep.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import select
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from palmnet.errors import InputError, LabError
from palmnet.kernel import nsfs
from palmnet.kernel.processes import run_in_netns
from palmnet.lab import LabAPI, LabSession
from palmnet.plan.model import InterfacePlan, NodePlan, Plan
from palmnet.toolbox.audit.rdisc import RouterAdvert, parse_rdisc6, unique_routers

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400

ULA = ipaddress.IPv6Network("fc00::/7")
MAX_RA_COUNT = 5000  # the bound of an RA flood (issue 6)
MAX_SCAN_COUNT = 256  # the bound of an ND scan: the neighbour table is the machine's


@dataclass(frozen=True)
class AuditOptions:
    ra_count: int = MAX_RA_COUNT
    scan_count: int = MAX_SCAN_COUNT
    deadline: float = 20.0  # seconds any one wait may take before the check fails

    def check(self) -> None:
        if not 1 <= self.ra_count <= MAX_RA_COUNT:
            raise InputError(f"--ra-count {self.ra_count}: must be 1..{MAX_RA_COUNT}")
        if not 1 <= self.scan_count <= MAX_SCAN_COUNT:
            raise InputError(f"--scan-count {self.scan_count}: must be 1..{MAX_SCAN_COUNT}")
        if self.deadline <= 0:
            raise InputError(f"--deadline {self.deadline}: must be more than 0")


@dataclass(frozen=True)
class Address:
    """One IPv6 address as `ip -j addr` shows it."""

    interface: str
    address: ipaddress.IPv6Address
    prefixlen: int
    scope: str
    flags: frozenset[str] = frozenset()

    @property
    def usable(self) -> bool:
        return not {"tentative", "dadfailed"} & self.flags

    @property
    def interface_address(self) -> ipaddress.IPv6Interface:
        return ipaddress.IPv6Interface(f"{self.address}/{self.prefixlen}")

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"


_FLAG_KEYS = (
    "tentative",
    "dadfailed",
    "deprecated",
    "temporary",
    "secondary",
    "dynamic",
    "permanent",
    "mngtmpaddr",
    "noprefixroute",
    "stable-privacy",
    "optimistic",
)


def parse_ip_addr(data: list[dict]) -> list[Address]:
    """IPv6 addresses of `ip -j -6 addr show` output."""
    out = []
    for link in data:
        for info in link.get("addr_info", []):
            if info.get("family") != "inet6" or "local" not in info:
                continue
            out.append(
                Address(
                    interface=link.get("ifname", ""),
                    address=ipaddress.IPv6Address(info["local"]),
                    prefixlen=int(info.get("prefixlen", 128)),
                    scope=info.get("scope", ""),
                    flags=frozenset(k for k in _FLAG_KEYS if info.get(k)),
                )
            )
    return out


def addressable(node: NodePlan) -> list[InterfacePlan]:
    """Interfaces that hold addresses (a bridge port carries none: its bridge does)."""
    return [i for i in node.interfaces if i.master is None]


def running(session: LabSession, node: NodePlan) -> bool:
    return session.node(node.name).running()


@dataclass(frozen=True)
class Endpoint:
    node: NodePlan
    iface: InterfacePlan

    def __str__(self) -> str:
        return f"{self.node.name} ({self.iface.name})"


def pick_stimulus(
    session: LabSession, target: NodePlan, from_node: str | None
) -> tuple[InterfacePlan, Endpoint] | None:
    """The target's interface and the node that sends the stimuli to it.

    Another running node on one of the target's networks: a host if there is
    one (a host's traffic is what a LAN sees; a router may be what the target
    depends on), else any node. `from_node` chooses it.
    """
    plan = session.plan
    if from_node is not None:
        if from_node == target.name:
            raise InputError(f"--from {from_node}: the stimulus must come from another node")
        try:
            chosen = plan.node(from_node)
        except KeyError:
            raise InputError(f"--from {from_node}: no such node in lab {plan.lab}") from None
        if not running(session, chosen):
            raise InputError(f"--from {from_node}: the node is not running")
    for tif in addressable(target):
        candidates = [
            Endpoint(n, i)
            for n in plan.nodes
            if n.name != target.name and (from_node is None or n.name == from_node)
            for i in addressable(n)
            if i.network == tif.network
        ]
        candidates = [c for c in candidates if running(session, c.node)]
        candidates.sort(key=lambda c: c.node.kind != "host")  # stable: plan order within
        if candidates:
            return tif, candidates[0]
    if from_node is not None:
        raise InputError(f"--from {from_node}: it shares no network with {target.name}")
    return None


class NetlinkBell:
    """A netlink socket in a node that rings on link, address and route events.

    Checks wait on it with a deadline: test the condition, and if it does
    not hold yet, sleep in select() until the kernel reports a change.
    """

    def __init__(self, netns_path: str) -> None:
        with nsfs.netns(netns_path):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind(
                (0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)
            )
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NetlinkBell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:  # ENOBUFS after a burst: the condition is re-read anyway
                continue

    def wait(self, condition: Callable[[], bool], timeout: float) -> float | None:
        """Seconds until `condition()` held, or None at the deadline."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            self._drain()
            if condition():
                return time.monotonic() - start
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            select.select([self.sock], [], [], remaining)


@dataclass
class AuditContext:
    api: LabAPI
    session: LabSession
    target: NodePlan
    options: AuditOptions = field(default_factory=AuditOptions)
    target_if: InterfacePlan | None = None  # the interface shared with the stimulus
    stimulus: Endpoint | None = None
    _adverts: dict[str, list[RouterAdvert]] = field(default_factory=dict)

    @property
    def plan(self) -> Plan:
        return self.session.plan

    @property
    def lab(self) -> str:
        return self.plan.lab

    def netns(self, node: NodePlan | None = None) -> str:
        return self.session.node((node or self.target).name).netns

    def forget_handles(self) -> None:
        """After a restart: a container's init (and so its namespace path) changed."""
        self.session.forget_nodes()

    # -- running things in nodes ---------------------------------------------------
    def run(
        self,
        node: NodePlan | None,
        argv: list[str],
        stdin: str | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """A program of the host in a node's network namespace (default: the target)."""
        return self.session.running_node((node or self.target).name).tool(argv, stdin, timeout)

    def read_file(self, path: str, node: NodePlan | None = None) -> str | None:
        """A file as the node sees it (its own /etc)."""
        return self.session.running_node((node or self.target).name).read_file(path)

    def ip_json(self, node: NodePlan | None, *args: str) -> list[dict]:
        proc = self.run(node, ["ip", "-j", *args])
        if proc.returncode != 0:
            raise LabError(f"ip {' '.join(args)} in {(node or self.target).name}: {proc.stderr}")
        return json.loads(proc.stdout or "[]")

    def switch_ip(self, *args: str, port: str | None = None) -> None:
        """`ip` in the namespace of the lab's switch (its bridges and ports), or of
        the one that holds `port` (an LXD cluster: each member's own)."""
        switch = self.session.switch()
        netns = switch.netns_of(port) if port else switch.netns
        proc = run_in_netns(netns, ["ip", *args], timeout=30)
        if proc.returncode != 0:
            raise LabError(f"ip {' '.join(args)} in the lab's switch: {proc.stderr.strip()}")

    def addresses(self, node: NodePlan | None = None, iface: str | None = None) -> list[Address]:
        args = ["-6", "addr", "show"] + (["dev", iface] if iface else [])
        return parse_ip_addr(self.ip_json(node, *args))

    def link_local(self, node: NodePlan | None, iface: str) -> ipaddress.IPv6Address | None:
        for a in self.addresses(node, iface):
            if a.scope == "link" and a.usable:
                return a.address
        return None

    def global_address(self, node: NodePlan | None, iface: str) -> ipaddress.IPv6Address | None:
        """A usable global address: GUAs before ULAs, SLAAC (/64) before leases."""
        found = [a for a in self.addresses(node, iface) if a.scope == "global" and a.usable]
        found.sort(key=lambda a: (a.address in ULA, a.prefixlen != 64, "deprecated" in a.flags))
        return found[0].address if found else None

    def mac(self, node: NodePlan | None, iface: str) -> str:
        links = self.ip_json(node, "link", "show", "dev", iface)
        return str(links[0].get("address", "")).lower() if links else ""

    def ping(
        self, node: NodePlan, address: ipaddress.IPv6Address, iface: str, wait: float = 2.0
    ) -> float | None:
        """Round trip in ms of one echo request from `node`, or None if unanswered."""
        dest = f"{address}%{iface}" if address.is_link_local else str(address)
        proc = self.run(
            node, ["ping", "-6", "-n", "-c", "1", "-W", f"{wait:g}", dest], timeout=wait + 5
        )
        m = re.search(r"time[=<]([\d.]+)\s*ms", proc.stdout)
        if proc.returncode == 0 and m:
            return float(m.group(1))
        return None

    def flush_route_cache(self, node: NodePlan | None = None) -> int:
        """Drop the node's cached routes (path MTUs, Redirects); how many are left.

        `ip -6 route flush cache` deletes each exception through the route it
        hangs on; an exception on a less specific route than its destination's
        (a Redirect learnt through the default route) cannot be found that way
        and ip retries forever: it gets 3 s, and what is left expires on its own.
        """
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run(node, ["ip", "-6", "route", "flush", "cache"], timeout=3)
        return len(self.ip_json(node, "-6", "route", "show", "cache"))

    # -- what the link offers --------------------------------------------------------
    def adverts(self, iface: str) -> list[RouterAdvert]:
        """RAs that answer an RS sent by the target on `iface` (its own RAs left out).

        One short try (300 ms); where the plan expects a router on the link,
        three more of a second each before giving up (radvd answers at once,
        but a router may be busy or rate-limit its answers).
        """
        if iface not in self._adverts:
            own = {a.address for a in self.addresses(None) if a.scope == "link"}
            tries = [["-w", "300", "-r", "1"]]
            if set(self.target.interface(iface).routers) - own:
                tries.append(["-w", "1000", "-r", "3"])
            found: list[RouterAdvert] = []
            for args in tries:
                proc = self.run(None, ["rdisc6", "-n", "-m", *args, iface], timeout=10)
                found = [
                    ra for ra in unique_routers(parse_rdisc6(proc.stdout)) if ra.source not in own
                ]
                if found:
                    break
            self._adverts[iface] = found
        return self._adverts[iface]

    def forget_adverts(self) -> None:
        self._adverts.clear()
