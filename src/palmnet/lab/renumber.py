"""`palmnet isp renumber`: an ISP changes its pool, and every level follows.

1. The journal keeps the new pool (meta `pd_pools`) and the plan re-made with
   it, which allocates every delegation from the new pool: the new prefixes
   and host addresses are known before anything moves.
2. The ISP's kea gets the re-rendered pool and reloads it on its control
   socket (the answer comes once the new pool is in use).
3. Nudging (default): the routers the ISP delegates to get SIGUSR1 (dhcpcd:
   renew now; SIGHUP would rebind and leave the old ::1 on the LAN,
   reference/pd-notes.md). Their PD hook rewrites radvd and their own kea;
   the next level is nudged only once its upstream kea serves the new shares
   (poking earlier renews the old prefix and costs a whole T1, pd-notes).
   Routers of one level are nudged together. Without nudging, each router
   moves at its own T1.
4. Hosts: their new addresses are awaited on netlink (subscribed before the
   first nudge, so none is missed), each host's time recorded.
5. DNS: every DNS server re-reads the lab's names from the new plan
   (`refresh`), so the names answer the new AAAA.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from palmnet.errors import InputError, LabError
from palmnet.plan.model import NodePlan, Plan

if TYPE_CHECKING:
    from palmnet.backends.base import NodeHandle
    from palmnet.lab.api import LabSession

Report = Callable[[str], None]
STATE_POLL = 0.005


@dataclass
class RouterStep:
    name: str
    prefix: str | None  # its new delegation (planned)
    seconds: float | None  # from the start until it held it (and its kea served it)


@dataclass
class RenumberResult:
    lab: str
    isp: str
    old_pool: str
    new_pool: str
    nudged: bool
    isp_seconds: float = 0.0
    routers: list[RouterStep] = field(default_factory=list)
    hosts: dict[str, float | None] = field(default_factory=dict)
    dns_seconds: float | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "lab": self.lab,
            "isp": self.isp,
            "old_pool": self.old_pool,
            "new_pool": self.new_pool,
            "nudged": self.nudged,
            "isp_seconds": round(self.isp_seconds, 3),
            "routers": [
                {
                    "name": r.name,
                    "prefix": r.prefix,
                    "seconds": None if r.seconds is None else round(r.seconds, 3),
                }
                for r in self.routers
            ],
            "hosts": {h: None if s is None else round(s, 3) for h, s in self.hosts.items()},
            "dns_seconds": None if self.dns_seconds is None else round(self.dns_seconds, 3),
            "seconds": round(self.seconds, 3),
        }


# -- who delegates to whom -----------------------------------------------------------------
def levels(plan: Plan, top: str, skip: Iterable[str] = ()) -> list[list[NodePlan]]:
    """Routers below `top`, level by level (the ISP's clients, theirs, ...)."""
    skipped = set(skip)
    out: list[list[NodePlan]] = []
    current = [plan.node(top)]
    seen = {top}
    while current:
        below = []
        for server in current:
            for pd in server.pd_servers:
                for r in pd.reservations:
                    if r.client in seen or r.client in skipped:
                        continue
                    seen.add(r.client)
                    below.append(plan.node(r.client))
        if below:
            out.append(below)
        current = below
    return out


def new_addresses(old: Plan, new: Plan, nodes: Iterable[str]) -> dict[str, set[str]]:
    """The addresses each node holds in the new plan and not in the old one."""
    out = {}
    for name in nodes:
        before = {str(a.ip) for i in old.node(name).interfaces if i.master is None for a in i.ipv6}
        after = {str(a.ip) for i in new.node(name).interfaces if i.master is None for a in i.ipv6}
        if after - before:
            out[name] = after - before
    return out


# -- the parts ---------------------------------------------------------------------------
def reload_isp(session: LabSession, plan: Plan, isp: str) -> None:
    """Render the ISP's kea from the plan and make kea use it before returning."""
    from palmnet.services.kea import Kea, control

    handle = session.running_node(isp)
    current = handle.service("kea")
    assert isinstance(current, Kea)  # the adapter service_named("kea") gives
    svc = type(current)(plan, plan.node(isp), current.dir.parent, current.host_root, current.python)
    handle.write(svc.render())
    sock = svc.host(svc.socket_path)
    try:
        answer = control(sock, "config-reload")
    except OSError as exc:
        raise LabError(f"{isp}: kea did not answer on {sock}: {exc}") from None
    if answer.get("result") != 0:
        raise LabError(f"{isp}: kea refused the new pool: {answer.get('text')}")


def pd_state(handle: NodeHandle) -> dict[str, object]:
    """What the router's PD hook last did (pd/hook.py), {} before its first lease."""
    from palmnet.services.dhcpcd import PD_STATE

    try:
        svc = handle.service("dhcpcd")
        return dict(json.loads(svc.host(svc.dir / PD_STATE).read_text()))
    except (OSError, ValueError, LabError):
        return {}


def _serves(state: dict[str, object], prefix: str, downstream: bool) -> bool:
    if state.get("prefix") != prefix:
        return False
    return not downstream or state.get("kea_prefix") == prefix


def wait_routers(
    session: LabSession, routers: list[NodePlan], start: float, deadline: float
) -> dict[str, float | None]:
    """When each router holds its planned delegation and its kea serves the shares."""
    waiting = {
        r.name: (str(r.pd_client.delegated), bool(r.pd_servers))
        for r in routers
        if r.pd_client is not None and r.pd_client.delegated is not None
    }
    done: dict[str, float | None] = {r.name: None for r in routers}
    while waiting:
        for name, (prefix, downstream) in list(waiting.items()):
            if _serves(pd_state(session.node(name)), prefix, downstream):
                done[name] = time.monotonic() - start
                del waiting[name]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(STATE_POLL)  # poll: the hook's state file is the only sign; no event
    return done


class HostWatch:
    """Waits on netlink for addresses in many nodes; records when each node had all."""

    def __init__(self, namespaces: dict[str, str], expected: dict[str, set[str]]) -> None:
        """`namespaces`: each node's network namespace (a path setns() takes)."""
        from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR

        from palmnet.kernel import nsfs

        self.pending = {n: set(a) for n, a in expected.items()}
        self.done: dict[str, float | None] = dict.fromkeys(expected)
        self.socks: dict[int, tuple[str, socket.socket]] = {}
        for name in expected:
            with nsfs.netns(namespaces[name]):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            self.socks[sock.fileno()] = (name, sock)

    def dump(self) -> None:
        from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
        from pyroute2.netlink.rtnl import RTM_GETADDR
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

        for _, sock in self.socks.values():
            msg = ifaddrmsg()
            msg["header"]["type"] = RTM_GETADDR
            msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
            msg["header"]["sequence_number"] = 1
            msg["family"] = socket.AF_INET6
            msg.encode()
            sock.send(msg.data)

    def wait(self, start: float, deadline: float) -> dict[str, float | None]:
        from pyroute2.netlink.rtnl import RTM_NEWADDR
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        # Usable = out of DAD and preferred: an address of a pool renumbered back may
        # still be there, deprecated, from before.
        unusable = 0x40 | 0x08 | 0x20  # IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED
        marshal = MarshalRtnl()
        poller = select.poll()
        for fd in self.socks:
            poller.register(fd, select.POLLIN)
        open_fds = {fd for fd, (name, _) in self.socks.items() if self.pending[name]}
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                name, sock = self.socks[fd]
                while True:
                    try:
                        data = sock.recv(1 << 16)
                    except BlockingIOError:
                        break
                    for msg in marshal.parse(data):
                        if msg["header"]["type"] != RTM_NEWADDR:
                            continue
                        addr = msg.get_attr("IFA_ADDRESS")
                        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
                        if addr and not flags & unusable:
                            self.pending[name].discard(str(ipaddress.ip_address(addr)))
                if not self.pending[name] and self.done[name] is None:
                    self.done[name] = time.monotonic() - start
                    open_fds.discard(fd)
                    poller.unregister(fd)
        return self.done

    def close(self) -> None:
        for _, sock in self.socks.values():
            sock.close()


# -- the verb ------------------------------------------------------------------------------
def _move_pool(name: str, isp: str, pool: ipaddress.IPv6Network) -> tuple[Plan, str]:
    """Record the new pool in the journal (under the lab lock) with the plan it makes;
    (old plan, old pool). A pool too small is refused, nothing changed."""
    from palmnet.lab import store
    from palmnet.lab.api import _replan

    with store.locked(name), store.journal(name) as j:
        old = store.stored_plan(j)
        node = next((n for n in old.nodes if n.name == isp), None)
        if node is None or node.kind != "isp" or not node.pd_servers:
            isps = ", ".join(n.name for n in old.nodes if n.kind == "isp") or "none"
            raise InputError(
                f"no isp node '{isp}' delegating prefixes in lab {name} (isp nodes: {isps})"
            )
        pools = {**j.meta("pd_pools", {}), isp: str(pool)}
        plan = _replan(j, j.meta("launched", {}), pools, old)  # InputError: nothing recorded
        j.set_meta("pd_pools", pools)
        store.store_plan(j, plan)
        return old, str(node.pd_servers[0].pools[0])


def _nudge(
    session: LabSession, isp: str, start: float, deadline: float,
    result: RenumberResult, say: Report,
) -> None:  # fmt: skip
    """SIGUSR1 the routers level by level; each level once its upstream serves it."""
    for level in levels(session.plan, isp, session.stopped):
        for router in level:
            pid = session.node(router.name).service_pid("dhcpcd")
            if pid is not None:
                os.kill(pid, signal.SIGUSR1)
        times = wait_routers(session, level, start, deadline)
        for router in level:
            seconds = times.get(router.name)
            delegated = router.pd_client.delegated if router.pd_client else None
            result.routers.append(
                RouterStep(router.name, str(delegated) if delegated else None, seconds)
            )
            if seconds is None:
                say(f"{router.name}: no new delegation before the deadline")
            else:
                say(f"{router.name}: holds {delegated} ({seconds:.3f} s)")


def pools_of(plan: Plan) -> dict[str, str]:
    """Each delegating ISP's pool in a plan."""
    return {
        n.name: str(n.pd_servers[0].pools[0])
        for n in plan.nodes
        if n.kind == "isp" and n.pd_servers and n.pd_servers[0].pools
    }


def follow(
    session: LabSession,
    old: Plan,
    *,
    nudge: bool = True,
    wait: bool | None = None,
    timeout: float = 60.0,
    report: Report | None = None,
) -> RenumberResult:
    """Make a running lab follow its new plan's ISP pools (the session's plan, already
    stored in the journal). Takes no lock: `renumber` holds none while it waits, and a
    reconciling `up` already holds the lab's."""
    plan = session.plan
    say = report or (lambda _m: None)
    wait = nudge if wait is None else wait
    before, after = pools_of(old), pools_of(plan)
    moved = [isp for isp, pool in after.items() if before.get(isp) != pool]
    start = time.monotonic()
    deadline = start + timeout
    first = moved[0] if moved else next(iter(after), "")
    result = RenumberResult(plan.lab, first, before.get(first, ""), after.get(first, ""), nudge)
    watch: HostWatch | None = None
    try:
        stopped = session.stopped
        if wait:
            hosts = [n.name for n in plan.nodes if n.kind == "host" and n.name not in stopped]
            expected = new_addresses(old, plan, hosts)
            watch = HostWatch({h: session.running_node(h).netns for h in expected}, expected)
            watch.dump()
        for isp in moved:
            reload_isp(session, plan, isp)
            say(f"{isp}: kea delegates from {after[isp]} ({time.monotonic() - start:.3f} s)")
        result.isp_seconds = time.monotonic() - start
        if not wait:
            _refresh_dns(session, old, deadline)
            result.dns_seconds = time.monotonic() - start
            say("DNS answers the new addresses; routers renew at their T1")
        if nudge:
            for isp in moved:
                _nudge(session, isp, start, deadline, result, say)
        if watch is not None:
            result.hosts = watch.wait(start, deadline)
            for host, seconds in result.hosts.items():
                if seconds is None:
                    say(f"{host}: new addresses missing at the deadline")
                else:
                    say(f"{host}: new addresses ({seconds:.3f} s)")
            _refresh_dns(session, old, deadline)
            result.dns_seconds = time.monotonic() - start
            say(f"DNS answers the new addresses ({result.dns_seconds:.3f} s)")
    finally:
        if watch is not None:
            watch.close()
    result.seconds = time.monotonic() - start
    missing = [h for h, s in result.hosts.items() if s is None]
    if wait and missing:
        raise LabError(
            f"renumbered {', '.join(moved)}, but after {timeout:g} s these hosts lack their "
            f"new addresses: {', '.join(missing)}"
        )
    return result


def _refresh_dns(session: LabSession, old: Plan, deadline: float) -> None:
    """Tell the DNS servers about the new plan, and return once each of them answers
    the names that moved with their new addresses (lab/dns_follow.py)."""
    from palmnet.lab.dns_follow import changed_names, wait_answers

    plan = session.plan
    session.backend.refresh(plan, session.journal)
    stopped = session.stopped
    wanted = {s: n for s, n in changed_names(old, plan).items() if s not in stopped}
    wait_answers(session.running_node, plan, wanted, deadline)


def renumber(
    lab: str,
    isp: str,
    prefix: str,
    *,
    nudge: bool = True,
    wait: bool | None = None,
    timeout: float = 60.0,
    report: Report | None = None,
) -> RenumberResult:
    """Move an ISP's pool to `prefix` and (nudging) wait until every host holds its new
    addresses. `wait` defaults to `nudge`: without nudging the routers move at their
    own T1, and the verb returns at once unless asked to wait. Times count from the
    moment the new pool is recorded (after the lab lock, which other verbs may hold)."""
    from palmnet.lab.api import LabAPI

    try:
        pool = ipaddress.IPv6Network(prefix)
    except ValueError as exc:
        raise InputError(f"{prefix!r} is not an IPv6 prefix ({exc})") from None
    old, old_pool = _move_pool(lab, isp, pool)
    with LabAPI().session(lab) as session:
        result = follow(session, old, nudge=nudge, wait=wait, timeout=timeout, report=report)
    result.isp, result.old_pool, result.new_pool = isp, old_pool, str(pool)
    return result
