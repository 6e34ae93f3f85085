"""Realize a plan (or part of it) in network namespaces.

Order matters for speed and for correctness:
1. every namespace gets its sysctls before any interface exists, and its
   netlink sockets (requests, address events) are opened while the
   namespace is being made, so no event is missed and no setns is needed later;
2. veth pairs are made from the lab's hidden namespace with the node end
   put straight into the node, MAC pinned, DAD timer set before link up;
3. all node mount namespaces are made by one forked child;
4. a netlink watcher subscribes in every node before any link comes up;
5. routers come up first, and their RA daemon starts once their link-local
   addresses are out of DAD, so the first router solicitation of every host
   is answered (a missed one costs a 1 s retry);
6. the lab's bridges start snooping MLD (see `snoop`), then hosts come up,
   and `up` returns when the kernel of every node holds every planned
   address, not tentative.
Every object is journalled before it is made.

Netlink requests go through rtnl.Rtnl (no asyncio loop per call), pipelined
where nothing waits on the answer: creating every veth of a phase is one
stream of requests, bringing a node up is one datagram.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import resource
import socket
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from palmnet.addressing.eui64 import link_local
from palmnet.backends.netns import daemons
from palmnet.backends.netns.capacity import fds_needed
from palmnet.backends.netns.etc import seed_etc, seed_lab_etc
from palmnet.backends.netns.external import ExternalPorts
from palmnet.backends.netns.layout import (
    etc_lab,
    etc_upper,
    etc_work,
    mnt_file,
    ns_dir,
    uts_file,
)
from palmnet.backends.netns.names import node_netns, outer_names, switch_netns
from palmnet.diagnostics import progress
from palmnet.diagnostics.crash import checkpoint
from palmnet.diagnostics.phases import PhaseTimer
from palmnet.errors import LabError
from palmnet.kernel import namespaces, nsfs, sysctl
from palmnet.kernel import watch as addrwatch
from palmnet.kernel.mountns import MountJob, NodeMounts, create_mount_namespaces
from palmnet.kernel.rtnl import IFA_F_NODAD, RTN_UNREACHABLE, Rtnl
from palmnet.kernel.watch import AddressWatch
from palmnet.plan import sysctls
from palmnet.plan.guard import guard_ruleset
from palmnet.plan.model import NodePlan, Plan
from palmnet.services import nftables, runner
from palmnet.services.base import Service
from palmnet.state.journal import Journal

READY_TIMEOUT = runner.READY_TIMEOUT
# The kernel takes a link "up" (operstate, qdisc, then the IPv6 link-local) in its
# linkwatch work: 200 interfaces per run started by a new carrier event, and what is
# left after it at 100 per run, one run a second (net/core/link_watch.c). Hosts taken
# up faster than it runs left it a backlog that then drained at 50 hosts a second:
# at 1,000 hosts, 3 `up`s in 20 took 1-3 s more for their last 50-150 hosts.
# `bring_up` keeps the last hosts back and takes them up one at a time while links
# are owed (not reported up): each one starts another 200-interface run, and the
# next waits until one more link is up.
TRICKLE_NODES = 10  # enough for a backlog of 2,000 interfaces
TRICKLE_STEP = 1.2  # s without a link coming up: stop pacing (a link that stays down)
# The lab's hidden namespace: bridges and ports carry no IPv6 of their own, and
# frames the lab's bridges switch never go up into its IP hooks (br_netfilter).
SWITCH_SYSCTLS: dict[str, int] = {
    "net/ipv6/conf/all/disable_ipv6": 1,
    "net/ipv6/conf/default/disable_ipv6": 1,
    **sysctls.BRIDGE_NF,
}
MCAST_HASH_MAX = 1 << 16  # multicast groups a lab bridge may learn (kernel default 4096)


class Builder:
    """One application of a plan; holds the netlink sockets it opened."""

    def __init__(self, plan: Plan, journal: Journal) -> None:
        self.plan = plan
        self.journal = journal
        self.sw: Rtnl | None = None
        self.bridge_index: dict[str, int] = {}
        self.rt: dict[str, Rtnl] = {}  # per node, opened inside it
        self.events: dict[str, socket.socket] = {}  # address events, until subscribed
        self.ns_fd: dict[str, int] = {}  # the node's netns, until its veths exist
        self.watch = AddressWatch()
        self.started: list[runner.Started] = []
        self._adapters: dict[str, list[Service]] = {}
        self.outer = outer_names(plan)
        self.external = ExternalPorts(plan, journal)

    def close(self) -> None:
        self.watch.close()
        for sock in self.events.values():
            sock.close()
        for rt in self.rt.values():
            rt.close()
        for fd in self.ns_fd.values():
            os.close(fd)
        if self.sw is not None:
            self.sw.close()
        self.external.close()

    # -- the lab's hidden namespace -------------------------------------------------
    def switch(self) -> Rtnl:
        """Open (creating if needed) the hidden namespace."""
        name = switch_netns(self.plan.lab)
        if self.sw is None:
            if namespaces.netns_exists(name):
                self.sw = Rtnl.open(nsfs.netns_path(name))
            else:
                self.journal.record("netns", name, None, role="switch")
                holder: list[Rtnl] = []

                def setup() -> None:
                    sysctl.apply_sysctls(SWITCH_SYSCTLS)
                    holder.append(Rtnl.open(None))

                namespaces.create_netns(name, setup)
                self.sw = holder[0]
        return self.sw

    def bridges(self) -> None:
        sw = self.switch()
        for net in self.plan.bridged:
            try:
                self.bridge_index[net.name] = sw.index_of(net.name)
            except OSError as exc:
                if exc.errno != errno.ENODEV:
                    raise
                self.bridge_index[net.name] = sw.add_bridge(
                    net.name,
                    mac=bridge_mac(self.plan.lab, net.name),
                    mcast_hash_max=MCAST_HASH_MAX,
                )
        checkpoint("switch")

    def snoop(self) -> None:
        """Make every lab bridge forward multicast only where it is listened to.

        A bridge floods multicast (a host's DAD probes, router solicitation
        and MLD reports) to every port until it knows a querier: on a LAN of
        N hosts coming up that is O(N^2) packets (1.3 M for 500 hosts, with
        backlog drops). The bridge is not made querier itself (it would
        re-query every port each time a port comes up); palmnet sends one
        MLD general query from the bridge device instead. The bridge then
        trusts its snooping for the querier-present interval (255 s): a DAD
        probe or solicitation reaches the nodes listening to its group
        (a duplicate address still answers), MLDv1 reports (nodes are told to
        speak v1, see sysctl.py) go to no host. Nodes already on the LAN
        answer the query, so the bridge learns their groups again. After the
        interval the bridge floods again, as it did before.
        """
        for net in self.plan.bridged:
            with nsfs.netns(nsfs.netns_path(switch_netns(self.plan.lab))):
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
            with sock:
                sock.bind((net.name, 0))
                sock.send(mld_general_query(bridge_mac(self.plan.lab, net.name)))

    # -- nodes ---------------------------------------------------------------------
    def namespaces(self, nodes: Sequence[NodePlan]) -> None:
        self.journal.record_many(
            ("netns", node_netns(self.plan.lab, n.name), n.name, {"role": "node"}) for n in nodes
        )
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for node in nodes:
                self._make_netns(node, home)
        finally:
            os.close(home)
        checkpoint("netns")

    def _make_netns(self, node: NodePlan, home: int) -> None:
        """The node's namespace with its sysctls, request and event sockets and an fd."""
        values = sysctls.node_sysctls(node)

        def setup() -> None:
            sysctl.apply_new_netns(values)
            rt = self.rt[node.name] = Rtnl.open(None)
            # Loopback up here, in the thread making namespaces, overlapped with
            # the veths the main thread makes: `bring_up` is then one link per
            # interface on the path every host waits on.
            rt.set_up(index=1)
            self.events[node.name] = addrwatch.open_socket(subscribed=False)
            self.ns_fd[node.name] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

        namespaces.create_netns(node_netns(self.plan.lab, node.name), setup, home)

    def links(self, nodes: Sequence[NodePlan]) -> None:
        sw = self.switch()
        try:
            with sw.pipeline():
                for node in nodes:
                    self._veths(sw, node)
        finally:
            self._close_ns_fds(nodes)
        self._node_links(nodes)
        checkpoint("links")

    def namespaces_and_links(self, nodes: Sequence[NodePlan]) -> None:
        """`namespaces` then `links`, overlapped: a thread makes the namespaces while
        this one makes each node's veth pairs as soon as its namespace exists.

        Both are kernel work serialized in good part (RTNL), but not all of it: on
        2 cores this took 0.57 s where the two in a row took 0.74 s (300 nodes).
        """
        self.journal.record_many(
            ("netns", node_netns(self.plan.lab, n.name), n.name, {"role": "node"}) for n in nodes
        )
        sw = self.switch()
        ready: queue.SimpleQueue[NodePlan | None] = queue.SimpleQueue()
        stop = threading.Event()
        failed: list[BaseException] = []

        def make() -> None:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                for done, node in enumerate(nodes, 1):
                    if stop.is_set():
                        break
                    self._make_netns(node, home)
                    ready.put(node)
                    progress.step("namespaces", done, len(nodes))
            except BaseException as exc:
                failed.append(exc)
            finally:
                os.close(home)
                ready.put(None)

        maker = threading.Thread(target=make, name="palmnet-netns", daemon=True)
        maker.start()
        finished = False
        linked = 0
        try:
            with sw.pipeline():
                while True:
                    try:
                        node = ready.get_nowait()
                    except queue.Empty:
                        sw.flush()  # nothing to add yet: let the kernel make what is queued
                        node = ready.get()
                    if node is None:
                        finished = True
                        break
                    self._veths(sw, node)
                    linked += 1
                    progress.step("links", linked, len(nodes))
        finally:
            if not finished:
                stop.set()
                while ready.get() is not None:
                    pass
            maker.join()
            self._close_ns_fds(nodes)
        if failed:
            raise failed[0]
        checkpoint("netns")
        self._node_links(nodes)
        checkpoint("links")

    def _veths(self, sw: Rtnl, node: NodePlan) -> None:
        fd = self._ns_fd(node)
        for iface in node.veths:
            if iface.external is not None:  # a port on the machine's own LAN
                self.external.add(node, iface, fd)
                continue
            bridge = iface.network  # a lab network's bridge carries its name
            if bridge not in self.bridge_index:
                self.bridge_index[bridge] = sw.index_of(bridge)
            outer = self.outer[(node.name, iface.name)]
            # The plan's link MTU (1450 where the file plans for an LXD cluster's
            # tunnels): the same file gives the same links on every backend.
            sw.add_veth(
                outer,
                iface.name,
                fd,
                iface.mac,
                self.bridge_index[bridge],
                up=True,
                mtu=self.plan.link_mtu,
            )

    def _close_ns_fds(self, nodes: Sequence[NodePlan]) -> None:
        for node in nodes:
            fd = self.ns_fd.pop(node.name, None)
            if fd is not None:
                os.close(fd)

    def _node_links(self, nodes: Sequence[NodePlan]) -> None:
        """Inside each node: its bridges, per-interface settings, static addresses."""
        for node in nodes:
            rt = self.rt[node.name]
            self._inner_bridges(node, rt)
            conf: dict[str, int] = {}
            for iface in node.interfaces:
                conf.update(sysctls.interface_sysctls(iface))
            if conf:
                with nsfs.netns(self._netns_path(node)):
                    sysctl.apply_sysctls(conf)
            with rt.pipeline():
                for iface in node.interfaces:
                    if sysctls.needs_dad_timer(iface):
                        rt.set_neigh_retrans(rt.index_of(iface.name), sysctls.DAD_RETRANS_MS)
                self._static_addresses(node, rt)

    def _netns_path(self, node: NodePlan) -> str:
        return nsfs.netns_path(node_netns(self.plan.lab, node.name))

    def _ns_fd(self, node: NodePlan) -> int:
        fd = self.ns_fd.get(node.name)
        if fd is None:
            fd = self.ns_fd[node.name] = os.open(self._netns_path(node), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def _inner_bridges(self, node: NodePlan, rt: Rtnl) -> None:
        """Bridges inside a node (OpenWrt's br-lan) with their ports."""
        for iface in node.interfaces:
            if iface.kind != "bridge":
                continue
            index = rt.add_bridge(iface.name, up=False, mac=iface.mac)
            with rt.pipeline():
                for port in iface.ports:
                    rt.set_master(port, index)

    def _static_addresses(self, node: NodePlan, rt: Rtnl) -> None:
        flags = 0 if node.dad else IFA_F_NODAD
        for iface in node.interfaces:
            if not (iface.ipv6_static or iface.ipv4_static):
                continue
            idx = rt.index_of(iface.name)
            for a6 in iface.ipv6_static:
                rt.add_address(idx, str(a6.ip), a6.network.prefixlen, flags)
            for a4 in iface.ipv4_static:
                rt.add_address(idx, str(a4.ip), a4.network.prefixlen)

    def firewalls(self, nodes: Sequence[NodePlan]) -> None:
        """Load each openwrt node's fw4 ruleset, and the guards of every node on an
        external network (plan/guard.py), before its links carry traffic."""
        for node in nodes:
            if node.uci:
                nftables.load(node, self._netns_path(node))
            guard = guard_ruleset(self.plan.lab, node)
            if guard is not None:
                nftables.load(node, self._netns_path(node), guard)

    def routes(self, nodes: Sequence[NodePlan]) -> None:
        for node in nodes:
            if not node.routes:
                continue
            rt = self.rt[node.name]
            devs = {r.dev for r in node.routes if r.kind == "unicast"}
            index = {dev: rt.index_of(dev) for dev in devs}
            with rt.pipeline():
                for route in node.routes:
                    if route.kind == "unreachable":
                        rt.add_route(str(route.to), None, None, kind=RTN_UNREACHABLE)
                    else:
                        rt.add_route(str(route.to), str(route.via), index[route.dev])

    def adapters(self, node: NodePlan) -> list[Service]:
        """The node's daemon adapters (made once per node and application)."""
        found = self._adapters.get(node.name)
        if found is None:
            found = self._adapters[node.name] = daemons.adapters(self.plan, node)
        return found

    def _mount_jobs(self, nodes: Sequence[NodePlan], background: bool) -> list[NodeMounts]:
        """The nodes' mount jobs, journalled. In the background, the child seeds
        each node's /etc just before mounting it; otherwise it is seeded here."""
        lab = self.plan.lab
        ns_dir(lab).mkdir(parents=True, exist_ok=True)
        shared = etc_lab(lab)
        seed_lab_etc(self.plan, shared)
        jobs = []
        for node in nodes:
            binds: list[tuple[str, str]] = []
            for svc in self.adapters(node):
                for target, source in svc.private_mounts().items():
                    source.mkdir(parents=True, exist_ok=True)
                    binds.append((str(source), target))
            upper = etc_upper(lab, node.name)

            def seed(node: NodePlan = node, upper: Path = upper) -> None:
                seed_etc(self.plan, node, upper)

            if not background:
                seed()
            jobs.append(
                NodeMounts(
                    netns_path=self._netns_path(node),
                    hostname=node.name,
                    upper=upper,
                    work=etc_work(lab, node.name),
                    shared=shared,
                    mnt_file=mnt_file(lab, node.name),
                    uts_file=uts_file(lab, node.name),
                    binds=tuple(binds),
                    seed=seed if background else None,
                )
            )
        self.journal.record_many(
            ("mount", str(j.mnt_file), n.name, {"role": "node"})
            for j, n in zip(jobs, nodes, strict=True)
        )
        return jobs

    def mounts(self, nodes: Sequence[NodePlan]) -> None:
        """Make the nodes' mount namespaces now (daemons are about to start in them)."""
        create_mount_namespaces(self._mount_jobs(nodes, background=False)).wait()
        checkpoint("mounts")

    def mounts_in_background(self, nodes: Sequence[NodePlan]) -> MountJob:
        """Make them in a child process while the kernel runs DAD and SLAAC."""
        return create_mount_namespaces(self._mount_jobs(nodes, background=True))

    def subscribe(self, nodes: Sequence[NodePlan]) -> None:
        """Listen for the nodes' address events, just before their links come up (their
        sockets joined no group while the namespaces were made: watch.open_socket).
        Static addresses were added before: a dump reports what they are now."""
        for node in nodes:
            expected = [
                str(a) for i in node.interfaces if i.master is None for a in (*i.ipv6, *i.ipv4)
            ]
            sock = self.events.pop(node.name, None)
            if sock is not None:
                addrwatch.subscribe(sock)
            self.watch.watch(node.name, self._netns_path(node), expected, sock)
        static = [
            n.name for n in nodes if any(i.ipv4_static or i.ipv6_static for i in n.interfaces)
        ]
        if static:
            self.watch.dump(static)

    def bring_up(self, nodes: Sequence[NodePlan]) -> None:
        """Every node's links up; the last TRICKLE_NODES one at a time while the kernel
        has links it has not taken up yet (see TRICKLE_NODES)."""
        held_from = len(nodes) - TRICKLE_NODES
        owed: dict[str, int] = {}  # node -> its links, all of which the kernel should report up
        pacing = True
        for done, node in enumerate(nodes, 1):
            paced = pacing and done > held_from
            left = self.watch.links_down(owed) if paced else 0
            progress.step("interfaces up", done, len(nodes))
            rt = self.rt[node.name]
            with rt.pipeline():
                for iface in sorted(node.interfaces, key=lambda i: i.kind != "bridge"):
                    rt.set_up(iface.name)
            owed[node.name] = len(node.interfaces)
            if paced:
                # Nothing owed (no backlog), or no link came up in TRICKLE_STEP: the rest at once.
                more = left + owed[node.name]
                pacing = bool(left) and self.watch.links_down(owed, more, TRICKLE_STEP) < more

    def wait_addresses(self, nodes: Sequence[NodePlan]) -> None:
        try:
            self.watch.wait(READY_TIMEOUT, [n.name for n in nodes], stall=True)
        except LabError as exc:
            said = [
                f"external network {n.name}: the file says its LAN's router advertises "
                f"{n.external.prefix}; no such RA came (prefix: wrong, or that router down?)"
                for n in self.plan.external
                if n.external is not None and n.external.prefix is not None
            ]
            if not said:
                raise
            raise LabError("\n".join([str(exc), *said])) from None

    def wait_own_addresses(self, nodes: Sequence[NodePlan]) -> None:
        """Link-local and static addresses only: what a router needs to send RAs
        (its SLAAC addresses may wait for another router's RA)."""
        own = {
            n.name: {str(a) for i in n.interfaces for a in (i.link_local, *i.ipv6_static)}
            for n in nodes
        }
        self.watch.wait(READY_TIMEOUT, own, own)

    # -- daemons -------------------------------------------------------------------
    def start_daemons(self, nodes: Sequence[NodePlan], when: str) -> None:
        for node in nodes:
            chosen = [svc for svc in self.adapters(node) if svc.starts == when]
            spawner = daemons.NetnsSpawner(self.plan.lab, node.name)
            self.started += runner.start_all(self.journal, node, chosen, spawner)

    def wait_daemons(self) -> None:
        runner.wait_ready(self.started)
        self.started = []


def bridge_mac(lab: str, bridge: str) -> str:
    """A fixed, locally administered MAC for a lab bridge (and its MLD queries)."""
    digest = hashlib.blake2s(f"{lab}/{bridge}".encode(), digest_size=5).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest))


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


MLD_QUERY_MAX_DELAY_MS = 1  # answers at once; the bridge trusts snooping after this


def mld_general_query(mac: str) -> bytes:
    """An Ethernet frame with an MLDv1 general query to ff02::1 from `mac`'s link-local.

    MLDv1 (RFC 2710): the nodes speak v1, and the bridge reads the query's
    maximum response delay only in this form.
    """
    raw_mac = bytes.fromhex(mac.replace(":", ""))
    src = link_local(mac).packed
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1")
    icmp = struct.pack("!BBHHH16s", 130, 0, 0, MLD_QUERY_MAX_DELAY_MS, 0, bytes(16))
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), socket.IPPROTO_ICMPV6)
    icmp = icmp[:2] + struct.pack("!H", _checksum(pseudo + icmp)) + icmp[4:]
    hop_by_hop = bytes((socket.IPPROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0))  # router alert, PadN
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(hop_by_hop) + len(icmp), 0, 1, src, dst)
    return bytes.fromhex("333300000001") + raw_mac + b"\x86\xdd" + ip6 + hop_by_hop + icmp


def _ensure_fd_limit(nodes: int) -> None:
    """Each node holds a few fds while it comes up: raise the soft limit if short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = fds_needed(nodes)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def apply_plan(plan: Plan, journal: Journal, nodes: Sequence[NodePlan]) -> None:
    """Create `nodes` of the plan (and the lab's bridges) and wait until they are ready.

    Routers are made and brought up first so that their link-local DAD runs
    while the hosts are being created. Hosts without daemons get their mount
    namespaces from a child process while the kernel runs DAD and SLAAC;
    hosts with daemons need theirs before their links come up (rdnssd must
    hear the first RA).
    """
    _ensure_fd_limit(len(nodes))
    b = Builder(plan, journal)
    t = PhaseTimer()
    routers = [n for n in nodes if n.sends_ra or n.forwarding]
    hosts = [n for n in nodes if n not in routers]
    busy = [h for h in hosts if b.adapters(h)]
    quiet = [h for h in hosts if h not in busy]
    mount_job: MountJob | None = None
    try:
        b.bridges()
        b.namespaces(routers)
        b.links(routers)
        b.firewalls(routers)
        b.mounts(routers)
        b.subscribe(routers)
        b.bring_up(routers)
        checkpoint("routers")
        t.lap("routers")
        b.namespaces_and_links(hosts)
        b.firewalls(hosts)
        t.lap("host namespaces and links")
        # While routers start their daemons, hosts come up and the kernel runs DAD
        # and SLAAC, on the other CPU.
        mount_job = b.mounts_in_background(quiet)
        b.mounts(busy)
        b.start_daemons(busy, "early")
        b.subscribe(hosts)
        b.wait_own_addresses(routers)  # routers' link-locals out of DAD: RAs can go out
        b.routes(routers)
        b.start_daemons(routers, "early")
        b.start_daemons(routers, "up")
        b.wait_daemons()
        checkpoint("services")
        t.lap("router services")
        b.snoop()
        b.bring_up(hosts)
        b.start_daemons(busy, "up")
        checkpoint("hosts")
        t.lap("hosts up")
        b.wait_addresses(nodes)
        # Ask again, now that every port carries: a group a host joined as its link
        # came up (a static address's solicited-node group) was reported before the
        # bridge's carrier event made its port forward, and the bridge would
        # otherwise not learn it until the host's next report (10 s later).
        b.snoop()
        b.routes(hosts)
        t.lap("addresses")
        mount_job.wait()
        mount_job = None
        b.wait_daemons()
        checkpoint("ready")
        t.lap("host mounts and daemons")
    finally:
        if mount_job is not None:
            mount_job.wait(check=False)
        b.close()
