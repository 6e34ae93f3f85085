"""The LXD backend: the same plan, realized as system containers on LXD-managed bridges.

`apply` order (every LXD object journalled before it is made, and tagged
`user.palmnet.lab`, so `down` finds it after any crash or reboot):
1. the images the nodes need (palmnet's own are built on first use);
2. the lab's profile (root disk) and its bridges;
3. all containers created at once (LXD operations in parallel);
4. routers started, configured (bridges inside, static addresses, firewall),
   and once their link-locals and static addresses are out of DAD, their
   daemons started inside them (radvd first among them) and waited for;
5. hosts started; `apply` returns when every planned address of every node
   is present and not tentative, as the node's kernel reports it on netlink
   (subscribed in the container's namespace, then a dump: no event is lost).
A start failure carries LXD's reason; `LabAPI.up` then destroys what was made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from palmnet.backends.base import Backend, LiveNode
from palmnet.backends.lxd import client as lxdclient
from palmnet.backends.lxd import images, inside, instances, networks
from palmnet.backends.lxd.instances import instance_name, is_router
from palmnet.backends.netns.phases import PhaseTimer
from palmnet.backends.netns.watch import AddressWatch
from palmnet.errors import InputError, LabError
from palmnet.plan.model import NodePlan, Plan
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir

READY_TIMEOUT = float(os.environ.get("PALMNET_READY_TIMEOUT", "30"))
HOST_WORKERS = 8
KINDS = ("lxd-instance", "lxd-network", "lxd-profile", "lxd-image")


def _report(message: str) -> None:
    print(f"palmnet: {message}", file=sys.stderr)


class LxdBackend(Backend):
    name = "lxd"

    def __init__(self) -> None:
        self._conn: lxdclient.Lxd | None = None

    @property
    def lxd(self) -> lxdclient.Lxd:
        if self._conn is None:
            self._conn = lxdclient.connect()
        return self._conn

    def prepare(self, lab: str) -> None:
        """LXD must answer before the lab's state exists: else exit 2, nothing made.
        A fresh lab starts clean: LXD objects tagged with its name are leftovers of a
        lab whose journal was lost (a reboot empties /run), and are removed first."""
        if self._remove_tagged(self.lxd, lab):
            _report(f"lab {lab}: removed LXD leftovers of a lost lab first")
        super().prepare(lab)

    # -- up ------------------------------------------------------------------------------
    def apply(self, plan: Plan, journal: Journal, nodes: Sequence[str] | None = None) -> None:
        lxd = self.lxd
        chosen = list(plan.nodes) if nodes is None else [plan.node(n) for n in nodes]
        t = PhaseTimer()
        for image in sorted({instances.image_of(n) for n in chosen}):
            images.ensure(lxd, image, _report)
        t.lap("images")
        profile = networks.ensure_profile(lxd, plan.lab, lxd.pool(), journal)
        networks.create_networks(lxd, plan, journal)
        t.lap("networks")
        existing = instances.lab_instances(lxd, plan.lab)
        fresh = [n for n in chosen if n.name not in existing]
        journal.record_many(
            ("lxd-instance", instance_name(plan.lab, n.name), n.name, {}) for n in fresh
        )
        instances.create(lxd, plan, fresh, profile)
        t.lap("create")
        stopped = [n for n in chosen if existing.get(n.name, {}).get("status") != "Running"]
        routers = [n for n in chosen if is_router(n)]
        hosts = [n for n in chosen if not is_router(n)]
        watch = AddressWatch()
        try:
            pids = self._start(plan, [n for n in routers if n in stopped], routers, watch)
            for node in routers:
                self._configure(plan, node, pids[node.name])
            own = {
                n.name: {str(a) for i in n.interfaces for a in (i.link_local, *i.ipv6_static)}
                for n in routers
            }
            watch.wait(READY_TIMEOUT, own, own)
            for node in routers:
                inside.configure_routes(node, pids[node.name])
            started = []
            for node in routers:
                started += inside.start_daemons(
                    lxd,
                    plan,
                    node,
                    instance_name(plan.lab, node.name),
                    pids[node.name],
                    ("early", "up"),
                )
            inside.wait_ready(started)
            t.lap("routers")
            pids.update(self._start(plan, [n for n in hosts if n in stopped], hosts, watch))
            t.lap("hosts started")

            def host(node: NodePlan) -> list[inside.Started]:
                self._configure(plan, node, pids[node.name])
                inst = instance_name(plan.lab, node.name)
                return inside.start_daemons(lxd, plan, node, inst, pids[node.name], ("early", "up"))

            # Each host's /etc and daemons are a few API round trips: hosts in parallel.
            with ThreadPoolExecutor(max_workers=HOST_WORKERS) as pool:
                started = [s for group in pool.map(host, hosts) for s in group]
            t.lap("hosts configured")
            watch.wait(READY_TIMEOUT, [n.name for n in chosen])
            for node in hosts:
                inside.configure_routes(node, pids[node.name])
            inside.wait_ready(started)
            t.lap("addresses")
        finally:
            watch.close()

    def _start(
        self, plan: Plan, to_start: list[NodePlan], nodes: list[NodePlan], watch: AddressWatch
    ) -> dict[str, int]:
        """Start the stopped ones, then watch every node's addresses (events, then a dump
        of what the kernel already holds)."""
        instances.start(self.lxd, plan.lab, to_start)
        pids = {}
        for node in nodes:
            pid = instances.init_pid(self.lxd, instance_name(plan.lab, node.name))
            if not pid:
                raise LabError(f"node {node.name}: LXD reports no running init")
            pids[node.name] = pid
            expected = [
                str(a) for i in node.interfaces if i.master is None for a in (*i.ipv6, *i.ipv4)
            ]
            watch.watch(node.name, inside.netns_path(pid), expected)
        watch.dump([n.name for n in nodes])
        return pids

    def _configure(self, plan: Plan, node: NodePlan, pid: int) -> None:
        inst = instance_name(plan.lab, node.name)
        inside.seed_etc(self.lxd, plan, node, inst)
        inside.configure_links(node, pid)
        if node.uci:
            inside.load_firewall(self.lxd, node, inst)

    # -- node verbs --------------------------------------------------------------------------
    def remove_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        names = [instance_name(plan.lab, n) for n in nodes]
        mine = instances.lab_instances(self.lxd, plan.lab)
        instances.delete(self.lxd, [mine[n]["name"] for n in nodes if n in mine])
        for name in names:
            journal.forget("lxd-instance", name)

    def stop_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        """Stop containers and keep them (what the user changed inside stays);
        `apply` on them starts them again."""
        mine = instances.lab_instances(self.lxd, plan.lab)
        running = [
            (f"node {n}", mine[n]["name"])
            for n in nodes
            if n in mine and mine[n].get("status") != "Stopped"
        ]
        instances.set_state(self.lxd, running, "stop")

    def observe(self, plan: Plan, journal: Journal) -> list[LiveNode]:
        from palmnet.backends.netns.dump import dump_links
        from palmnet.backends.netns.observe import live_interfaces

        mine = instances.lab_instances(self.lxd, plan.lab)
        out = []
        for node in plan.nodes:
            inst = mine.get(node.name)
            if inst is None:
                state = "STOPPED" if node.name in journal.meta("stopped", []) else "ERROR"
                out.append(LiveNode(node.name, node.kind, state, ()))
                continue
            if inst.get("status") != "Running":
                state = "STOPPED" if inst.get("status") == "Stopped" else "ERROR"
                out.append(LiveNode(node.name, node.kind, state, ()))
                continue
            pid = instances.init_pid(self.lxd, inst["name"])
            try:
                links = dump_links(inside.netns_path(pid))
            except OSError:
                out.append(LiveNode(node.name, node.kind, "ERROR", ()))
                continue
            out.append(LiveNode(node.name, node.kind, "RUNNING", live_interfaces(node, links)))
        return out

    def exec(self, plan: Plan, node: str, argv: list[str]) -> int:
        inst = self._running(plan, node)
        lxc = shutil.which("lxc")
        if lxc is None:
            raise InputError("`lxc` (package lxd-client) is needed for an interactive exec")
        os.execv(lxc, ["lxc", "exec", inst, "--", *argv])
        return 127  # not reached

    def run(
        self, plan: Plan, node: str, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return inside.run(self.lxd, self._running(plan, node), argv, stdin, timeout)

    def _running(self, plan: Plan, node: str) -> str:
        inst = instance_name(plan.lab, node)
        try:
            status = self.lxd.get(f"instances/{inst}")["status"]
        except self.lxd.NotFound:
            raise LabError(f"node {node} has no container ({inst})") from None
        if status != "Running":
            raise LabError(f"node {node} is not running ({inst}: {status})")
        return inst

    # -- down --------------------------------------------------------------------------------
    def destroy(self, lab: str, journal: Journal | None) -> None:
        recorded = journal is not None and any(journal.entries(k) for k in KINDS)
        try:
            lxd = self.lxd
        except InputError:
            if recorded:
                raise
            lxd = None
        if lxd is not None:
            self._remove_tagged(lxd, lab)
        if journal is not None:
            for kind in KINDS:
                for e in journal.entries(kind):
                    journal.forget(kind, e.name)
            journal.close()
        shutil.rmtree(lab_dir(lab), ignore_errors=True)

    def destroy_tagged(self, lab: str) -> bool:
        """Remove every LXD object tagged with the lab (no journal needed); whether
        anything was found. False, too, when LXD is not there at all."""
        try:
            lxd = self.lxd
        except InputError:
            return False
        return self._remove_tagged(lxd, lab)

    def _remove_tagged(self, lxd: lxdclient.Lxd, lab: str) -> bool:
        found: list[Any] = []
        mine = [i["name"] for i in instances.lab_instances(lxd, lab).values()]
        found += mine
        instances.delete(lxd, mine)
        nets = networks.lab_networks(lxd, lab)
        found += nets
        networks.delete_networks(lxd, nets)
        profiles = networks.lab_profiles(lxd, lab)
        found += profiles
        networks.delete_profiles(lxd, profiles)
        for row in images.list_images(lxd):
            if row.lab == lab:
                found.append(row.fingerprint)
                with contextlib.suppress(lxdclient.OperationFailed):
                    images.delete_image(lxd, row.fingerprint)
        return bool(found)
