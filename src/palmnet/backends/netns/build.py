"""Realize a plan (or part of it) in network namespaces.

Order matters for speed and for correctness:
1. every namespace gets its sysctls before any interface exists;
2. veth pairs are made from the lab's hidden namespace with the node end
   put straight into the node, MAC pinned, DAD timer set before link up;
3. all node mount namespaces are made by one forked child;
4. a netlink watcher subscribes in every node before any link comes up;
5. routers come up first, and their RA daemon starts once their link-local
   addresses are out of DAD, so the first router solicitation of every host
   is answered (a missed one costs a 1 s retry);
6. hosts come up, and `up` returns when the kernel of every node holds every
   planned address, not tentative.
Every object is journalled before it is made.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from pyroute2.iproute.linux import IPRoute

from palmnet.backends.netns import namespaces, nsfs, processes, sysctl
from palmnet.backends.netns.crash import checkpoint
from palmnet.backends.netns.etc import seed_etc
from palmnet.backends.netns.layout import etc_upper, etc_work, mnt_file, ns_dir, uts_file
from palmnet.backends.netns.mountns import (
    MountJob,
    NodeMounts,
    create_mount_namespaces,
)
from palmnet.backends.netns.phases import PhaseTimer
from palmnet.backends.netns.watch import AddressWatch
from palmnet.errors import LabError
from palmnet.plan.model import NodePlan, Plan
from palmnet.services.registry import services_for
from palmnet.state.journal import Journal
from palmnet.state.paths import node_dir

IFA_F_NODAD = 0x02
READY_TIMEOUT = float(os.environ.get("PALMNET_READY_TIMEOUT", "30"))


class Builder:
    """One application of a plan; holds the netlink sockets it opened."""

    def __init__(self, plan: Plan, journal: Journal) -> None:
        self.plan = plan
        self.journal = journal
        self.sw: IPRoute | None = None
        self.ipr: dict[str, IPRoute] = {}
        self.watch = AddressWatch()

    def close(self) -> None:
        self.watch.close()
        for ipr in self.ipr.values():
            ipr.close()
        if self.sw is not None:
            self.sw.close()

    # -- the lab's hidden namespace -------------------------------------------------
    def switch(self) -> IPRoute:
        """Open (creating if needed) the hidden namespace and its bridges."""
        name = self.plan.switch_netns
        if self.sw is None:
            if namespaces.netns_exists(name):
                with nsfs.netns(nsfs.netns_path(name)):
                    self.sw = IPRoute()
            else:
                self.journal.record("netns", name, None, role="switch")
                holder: list[IPRoute] = []

                def setup() -> None:
                    sysctl.apply_sysctls(sysctl.switch_sysctls())
                    holder.append(IPRoute())

                namespaces.create_netns(name, setup)
                self.sw = holder[0]
        return self.sw

    def bridges(self) -> None:
        sw = self.switch()
        for net in self.plan.networks:
            if sw.link_lookup(ifname=net.bridge):
                continue
            sw.link("add", ifname=net.bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
            idx = sw.link_lookup(ifname=net.bridge)[0]
            sw.link("set", index=idx, state="up")
        checkpoint("switch")

    # -- nodes ---------------------------------------------------------------------
    def namespaces(self, nodes: Sequence[NodePlan]) -> None:
        self.journal.record_many(("netns", n.netns, n.name, {"role": "node"}) for n in nodes)
        for node in nodes:
            values = sysctl.node_sysctls(forwarding=node.forwarding, dad=node.dad)

            def setup(values: dict[str, str | int] = values, name: str = node.name) -> None:
                sysctl.apply_sysctls(values)
                self.ipr[name] = IPRoute()

            namespaces.create_netns(node.netns, setup)
        checkpoint("netns")

    def links(self, nodes: Sequence[NodePlan]) -> None:
        sw = self.switch()
        bridge_index = {
            n.bridge: sw.link("get", ifname=n.bridge)[0]["index"] for n in self.plan.networks
        }
        bridge_of = {n.name: n.bridge for n in self.plan.networks}
        for node in nodes:
            fd = os.open(nsfs.netns_path(node.netns), os.O_RDONLY)
            try:
                for iface in node.interfaces:
                    sw.link(
                        "add",
                        ifname=iface.outer,
                        kind="veth",
                        peer={"ifname": iface.name, "net_ns_fd": fd, "address": iface.mac},
                        master=bridge_index[bridge_of[iface.network]],
                        state="up",
                    )
            finally:
                os.close(fd)
            with nsfs.netns(nsfs.netns_path(node.netns)):
                for iface in node.interfaces:
                    sysctl.set_neigh_retrans(iface.name)
            self._static_addresses(node)
        checkpoint("links")

    def _static_addresses(self, node: NodePlan) -> None:
        ipr = self.ipr[node.name]
        flags = 0 if node.dad else IFA_F_NODAD
        for iface in node.interfaces:
            if not (iface.ipv6_static or iface.ipv4_static):
                continue
            idx = ipr.link("get", ifname=iface.name)[0]["index"]
            for a6 in iface.ipv6_static:
                ipr.addr(
                    "add",
                    index=idx,
                    address=str(a6.ip),
                    prefixlen=a6.network.prefixlen,
                    flags=flags,
                )
            for a4 in iface.ipv4_static:
                ipr.addr("add", index=idx, address=str(a4.ip), prefixlen=a4.network.prefixlen)

    def _mount_jobs(self, nodes: Sequence[NodePlan]) -> list[NodeMounts]:
        lab = self.plan.lab
        ns_dir(lab).mkdir(parents=True, exist_ok=True)
        jobs = []
        for node in nodes:
            seed_etc(self.plan, node, etc_upper(lab, node.name))
            jobs.append(
                NodeMounts(
                    netns_path=nsfs.netns_path(node.netns),
                    hostname=node.name,
                    upper=etc_upper(lab, node.name),
                    work=etc_work(lab, node.name),
                    mnt_file=mnt_file(lab, node.name),
                    uts_file=uts_file(lab, node.name),
                )
            )
        self.journal.record_many(
            ("mount", str(j.mnt_file), n.name, {"role": "node"})
            for j, n in zip(jobs, nodes, strict=True)
        )
        return jobs

    def mounts(self, nodes: Sequence[NodePlan]) -> None:
        """Make the nodes' mount namespaces now (daemons are about to start in them)."""
        create_mount_namespaces(self._mount_jobs(nodes)).wait()
        checkpoint("mounts")

    def mounts_in_background(self, nodes: Sequence[NodePlan]) -> MountJob:
        """Make them in a child process while the kernel runs DAD and SLAAC."""
        return create_mount_namespaces(self._mount_jobs(nodes))

    def subscribe(self, nodes: Sequence[NodePlan]) -> None:
        for node in nodes:
            expected = [str(a) for i in node.interfaces for a in (*i.ipv6, *i.ipv4_static)]
            self.watch.watch(node.name, nsfs.netns_path(node.netns), expected)

    def bring_up(self, nodes: Sequence[NodePlan]) -> None:
        for node in nodes:
            ipr = self.ipr[node.name]
            ipr.link("set", index=1, state="up")
            for iface in node.interfaces:
                ipr.link("set", ifname=iface.name, state="up")

    def wait_addresses(self, nodes: Sequence[NodePlan]) -> None:
        self.watch.wait(READY_TIMEOUT, [n.name for n in nodes])

    # -- daemons -------------------------------------------------------------------
    def start_services(self, nodes: Sequence[NodePlan]) -> None:
        lab = self.plan.lab
        started: list[tuple[str, object, int]] = []
        for node in nodes:
            for cls in services_for(node):
                problem = cls.missing()
                if problem:
                    raise LabError(f"{node.name}: cannot start {cls.name}: {problem}")
                svc = cls(self.plan, node, node_dir(lab, node.name))
                svc.dir.mkdir(parents=True, exist_ok=True)
                for path, text in svc.render().items():
                    Path(path).write_text(text)
                key = f"{node.name}/{svc.name}"
                self.journal.record("process", key, node.name, pid=None)
                pid = processes.spawn(
                    svc.argv(),
                    nsfs.netns_path(node.netns),
                    mnt_file(lab, node.name),
                    uts_file(lab, node.name),
                    svc.log,
                )
                self.journal.record(
                    "process", key, node.name, pid=pid, start=processes.start_time(pid)
                )
                started.append((key, svc, pid))
        self._wait_services(started)

    def _wait_services(self, started: list[tuple[str, object, int]]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = list(started)
        while waiting:
            still = []
            for key, svc, pid in waiting:
                if processes.start_time(pid) is None or _is_zombie(pid):
                    log = getattr(svc, "log", None)
                    tail = _tail(log) if log else ""
                    raise LabError(f"{key} exited at start{': ' + tail if tail else ''}")
                if not svc.ready(pid):  # type: ignore[attr-defined]
                    still.append((key, svc, pid))
            waiting = still
            if waiting:
                if time.monotonic() > deadline:
                    names = ", ".join(k for k, _, _ in waiting)
                    raise LabError(f"daemons not ready after {READY_TIMEOUT:g} s: {names}")
                time.sleep(0.005)  # poll: daemons give no readiness notification


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    return ""


def apply_plan(plan: Plan, journal: Journal, nodes: Sequence[NodePlan]) -> None:
    """Create `nodes` of the plan (and the lab's bridges) and wait until they are ready.

    Routers are made and brought up first so that their link-local DAD runs
    while the hosts are being created; the hosts' mount namespaces are made by
    a child process while the kernel runs DAD and SLAAC.
    """
    b = Builder(plan, journal)
    t = PhaseTimer()
    routers = [n for n in nodes if n.sends_ra or n.forwarding]
    hosts = [n for n in nodes if n not in routers]
    mount_job: MountJob | None = None
    try:
        b.bridges()
        b.namespaces(routers)
        b.links(routers)
        b.mounts(routers)
        b.subscribe(routers)
        b.bring_up(routers)
        checkpoint("routers")
        t.lap("routers")
        b.namespaces(hosts)
        t.lap("host namespaces")
        b.links(hosts)
        t.lap("host links")
        b.subscribe(hosts)
        b.wait_addresses(routers)  # routers' link-locals out of DAD: RAs can go out
        b.start_services(routers)
        checkpoint("services")
        t.lap("router services")
        mount_job = b.mounts_in_background(hosts)
        if os.environ.get("PALMNET_SEQ_MOUNTS"):
            mount_job.wait()
            t.lap("mounts seq")
        b.bring_up(hosts)
        checkpoint("hosts")
        t.lap("hosts up")
        b.wait_addresses(nodes)
        t.lap("addresses")
        mount_job.wait()
        mount_job = None
        checkpoint("mounts")
        t.lap("host mounts")
        b.start_services(hosts)
        checkpoint("ready")
    finally:
        if mount_job is not None:
            mount_job.wait(check=False)
        b.close()
