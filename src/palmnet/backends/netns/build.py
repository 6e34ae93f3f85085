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

import os
import subprocess
from collections.abc import Sequence

from pyroute2.iproute.linux import IPRoute

from palmnet.backends.netns import daemons, namespaces, nsfs, sysctl
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
from palmnet.services.base import Service
from palmnet.state.journal import Journal

IFA_F_NODAD = 0x02
READY_TIMEOUT = daemons.READY_TIMEOUT


class Builder:
    """One application of a plan; holds the netlink sockets it opened."""

    def __init__(self, plan: Plan, journal: Journal) -> None:
        self.plan = plan
        self.journal = journal
        self.sw: IPRoute | None = None
        self.ipr: dict[str, IPRoute] = {}
        self.watch = AddressWatch()
        self.started: list[tuple[str, Service, int]] = []

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
                    if iface.kind != "veth":
                        continue
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
            self._inner_bridges(node)
            with nsfs.netns(nsfs.netns_path(node.netns)):
                for iface in node.interfaces:
                    sysctl.interface_sysctls(iface)
            self._static_addresses(node)
        checkpoint("links")

    def _inner_bridges(self, node: NodePlan) -> None:
        """Bridges inside a node (OpenWrt's br-lan) with their ports."""
        ipr = self.ipr[node.name]
        for iface in node.interfaces:
            if iface.kind != "bridge":
                continue
            ipr.link(
                "add",
                ifname=iface.name,
                kind="bridge",
                address=iface.mac,
                br_stp_state=0,
                br_forward_delay=0,
            )
            index = ipr.link("get", ifname=iface.name)[0]["index"]
            for port in iface.ports:
                ipr.link("set", ifname=port, master=index)

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

    def firewalls(self, nodes: Sequence[NodePlan]) -> None:
        """Load each openwrt node's fw4 ruleset before its links carry traffic."""
        for node in nodes:
            if node.uci:
                load_firewall(node)

    def routes(self, nodes: Sequence[NodePlan]) -> None:
        for node in nodes:
            ipr = self.ipr[node.name]
            for route in node.routes:
                ipr.route(
                    "replace",
                    dst=str(route.to),
                    gateway=str(route.via),
                    oif=ipr.link("get", ifname=route.dev)[0]["index"],
                    proto=4,  # static, as `ip route add` marks it
                )

    def _mount_jobs(self, nodes: Sequence[NodePlan]) -> list[NodeMounts]:
        lab = self.plan.lab
        ns_dir(lab).mkdir(parents=True, exist_ok=True)
        jobs = []
        for node in nodes:
            seed_etc(self.plan, node, etc_upper(lab, node.name))
            binds: list[tuple[str, str]] = []
            for svc in daemons.adapters(self.plan, node):
                for target, source in svc.private_mounts().items():
                    source.mkdir(parents=True, exist_ok=True)
                    binds.append((str(source), target))
            jobs.append(
                NodeMounts(
                    netns_path=nsfs.netns_path(node.netns),
                    hostname=node.name,
                    upper=etc_upper(lab, node.name),
                    work=etc_work(lab, node.name),
                    mnt_file=mnt_file(lab, node.name),
                    uts_file=uts_file(lab, node.name),
                    binds=tuple(binds),
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
            expected = [
                str(a) for i in node.interfaces if i.master is None for a in (*i.ipv6, *i.ipv4)
            ]
            self.watch.watch(node.name, nsfs.netns_path(node.netns), expected)
        if any(i.ipv4_static for n in nodes for i in n.interfaces):
            self.watch.dump([n.name for n in nodes])

    def bring_up(self, nodes: Sequence[NodePlan]) -> None:
        for node in nodes:
            ipr = self.ipr[node.name]
            ipr.link("set", index=1, state="up")
            for iface in sorted(node.interfaces, key=lambda i: i.kind != "bridge"):
                ipr.link("set", ifname=iface.name, state="up")

    def wait_addresses(self, nodes: Sequence[NodePlan]) -> None:
        self.watch.wait(READY_TIMEOUT, [n.name for n in nodes])

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
            for svc in daemons.adapters(self.plan, node):
                if svc.starts == when:
                    pid = daemons.start(self.plan, self.journal, node, svc)
                    self.started.append((f"{node.name}/{svc.name}", svc, pid))

    def wait_daemons(self) -> None:
        daemons.wait_ready(self.started)
        self.started = []


def load_firewall(node: NodePlan) -> None:
    """Compile the node's UCI firewall (fw4 semantics) and load it with `nft -f -`."""
    from palmnet.openwrt.fw4 import compile_firewall
    from palmnet.openwrt.uci import parse
    from palmnet.openwrt.zones import zone_devices

    files = dict(node.uci)
    network = parse(files["network"], "network", file="/etc/config/network")
    firewall = parse(files["firewall"], "firewall", file="/etc/config/firewall")
    result = compile_firewall(firewall, zone_devices(network))
    proc = subprocess.run(
        ["nft", "-f", "-"],
        input=result.nft_text,
        capture_output=True,
        text=True,
        preexec_fn=lambda: nsfs.setns(
            os.open(nsfs.netns_path(node.netns), os.O_RDONLY), nsfs.CLONE_NEWNET
        ),
    )
    if proc.returncode != 0:
        raise LabError(f"{node.name}: nft refused the firewall: {proc.stderr.strip()}")


def apply_plan(plan: Plan, journal: Journal, nodes: Sequence[NodePlan]) -> None:
    """Create `nodes` of the plan (and the lab's bridges) and wait until they are ready.

    Routers are made and brought up first so that their link-local DAD runs
    while the hosts are being created. Hosts without daemons get their mount
    namespaces from a child process while the kernel runs DAD and SLAAC;
    hosts with daemons need theirs before their links come up (rdnssd must
    hear the first RA).
    """
    b = Builder(plan, journal)
    t = PhaseTimer()
    routers = [n for n in nodes if n.sends_ra or n.forwarding]
    hosts = [n for n in nodes if n not in routers]
    busy = [h for h in hosts if daemons.adapters(plan, h)]
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
        b.namespaces(hosts)
        t.lap("host namespaces")
        b.links(hosts)
        t.lap("host links")
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
        mount_job = b.mounts_in_background(quiet)
        b.bring_up(hosts)
        b.start_daemons(busy, "up")
        checkpoint("hosts")
        t.lap("hosts up")
        b.wait_addresses(nodes)
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
