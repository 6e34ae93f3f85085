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
   (subscribed in the container's namespace, then a dump: no event is lost);
6. nodes with `docker:`: their dockerd configured, images made, containers
   run and listening (docker.py).
A start failure carries LXD's reason; `LabAPI.up` then destroys what was made.

On an LXD cluster (cluster.py) the same steps run through the member palmnet
talks to: each node is created on the member `placement.py` picks (`target`),
each lab network spans the members in a VXLAN tunnel (networks.py), every NIC and
bridge gets the link MTU that fits the tunnel, and `ls` says where each node runs.
Plain hosts placed on a member on another machine are driven through LXD's API
alone (far.py): no /proc of theirs is reachable from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

from palmnet.backends.base import (
    Backend,
    LiveContainer,
    LiveNode,
    NodeHandle,
    Switch,
    process_pids,
)
from palmnet.backends.external import preflight as external_preflight
from palmnet.backends.live import observe_netns
from palmnet.backends.lxd import client as lxdclient
from palmnet.backends.lxd import (
    cluster,
    docker,
    far,
    images,
    inside,
    instances,
    networks,
    placement,
)
from palmnet.backends.lxd.door import LxdDoor
from palmnet.backends.lxd.instances import instance_name, is_router, port_name
from palmnet.diagnostics.phases import PhaseTimer
from palmnet.errors import InputError, LabError
from palmnet.kernel.processes import run_in_netns
from palmnet.kernel.watch import AddressWatch
from palmnet.plan.guard import guard_ruleset
from palmnet.plan.model import NodePlan, Plan
from palmnet.plan.spanning import TUNNEL_MTU
from palmnet.services import nftables, runner
from palmnet.services.base import Service
from palmnet.services.registry import service_named
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir

KINDS = ("lxd-instance", "lxd-network", "lxd-profile", "lxd-image")
HOST_WORKERS = 8


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    return 0


def _member(inst: dict[str, Any]) -> str:
    """The cluster member an instance runs on ('' off a cluster: LXD says 'none')."""
    where = str(inst.get("location") or "")
    return "" if where == "none" else where


def _expected(node: NodePlan) -> list[str]:
    """Every planned address of the node, on interfaces that are not bridge ports."""
    return [str(a) for i in node.interfaces if i.master is None for a in (*i.ipv6, *i.ipv4)]


def _report(message: str) -> None:
    print(f"palmnet: {message}", file=sys.stderr)


def impair_table(lab: str) -> str:
    """The lab's netdev table for link impairments in LXD's namespace, where every
    lab's bridges live: named after the lab (lab names have no '_')."""
    return "palmnet_impair_" + lab.replace("-", "_")


class LxdNode(NodeHandle):
    """A container node: reached from the host through its init's namespaces
    (/proc/INIT/ns/net, /proc/INIT/root); `run` and `exec` go through LXD."""

    def __init__(
        self,
        plan: Plan,
        node: NodePlan,
        pids: dict[str, tuple[int, int | None]],
        lxd: Any,
        init: int,
        far_member: str = "",
    ) -> None:
        super().__init__(plan, node, pids)
        self.lxd = lxd
        self.init = init
        self.instance = instance_name(plan.lab, node.name)
        self.far_member = far_member  # on a cluster member on another machine (far.py)

    def _elsewhere(self) -> LabError:
        return LabError(
            f"node {self.name} runs on cluster member {self.far_member}, on another machine: "
            "palmnet stands in a node's namespaces only on this machine's members "
            "(`palmnet exec` reaches it anywhere)"
        )

    @property
    def netns(self) -> str:
        if self.far_member:
            raise self._elsewhere()
        return inside.netns_path(self.init) if self.init else "/nonexistent"

    def running(self) -> bool:
        if self.far_member:
            return LxdDoor(self.plan.lab, self.name, self.lxd).running()
        return bool(self.init) and os.path.exists(self.netns)

    def run(
        self, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        self.require_running()
        return inside.run(self.lxd, self.instance, argv, stdin, timeout)

    def exec(self, argv: list[str]) -> NoReturn:
        LxdDoor(self.plan.lab, self.name, self.lxd).exec(argv)  # it asks LXD if it runs

    def host_path(self, path: str | Path) -> Path:
        if self.far_member:
            raise self._elsewhere()
        return Path(f"/proc/{self.init}/root{path}")

    def write(self, files: dict[Path, str]) -> None:
        self.require_running()
        inside.LxdSpawner(self.lxd, self.node, self.instance, self.init).write(files)

    def service(self, name: str) -> Service:
        cls = service_named(name)
        if not cls.wanted(self.node):
            raise LabError(f"node {self.name} runs no {name}")
        return inside.adapter(cls, self.plan, self.node, self.init)


class LxdBackend(Backend):
    name = "lxd"

    def __init__(self) -> None:
        self._conn: lxdclient.Lxd | None = None
        self._placed: tuple[list[cluster.Member], str] | None = None

    @property
    def lxd(self) -> lxdclient.Lxd:
        if self._conn is None:
            self._conn = lxdclient.connect()
        return self._conn

    def _cluster(self) -> tuple[list[cluster.Member], str]:
        """The members and the one palmnet talks to, asked once per command: `up`
        checks placement and then applies it, and each ask looks for every member's
        LXD among this machine's processes."""
        if self._placed is None:
            members = cluster.members(self.lxd)
            self._placed = (members, cluster.local_member(self.lxd) if members else "")
        return self._placed

    def check(self, plan: Plan) -> None:
        """Every `member:` must name a member of the cluster (exit 2, nothing made)."""
        members, local = self._cluster()
        if members:
            placement.place(plan.nodes, plan.placement, members, local, self._far_rule(plan))

    @staticmethod
    def _far_rule(plan: Plan) -> Callable[[NodePlan], str | None]:
        return lambda node: far.why_not(plan, node)

    def _away(self) -> set[str]:
        """Members whose LXD runs on another machine."""
        members, _ = self._cluster()
        return {m.name for m in members if not m.here}

    def prepare(self, lab: str) -> None:
        """LXD must answer before the lab's state exists: else exit 2, nothing made.
        A fresh lab starts clean: LXD objects tagged with its name are leftovers of a
        lab whose journal was lost (a reboot empties /run), and are removed first."""
        if self._remove_tagged(self.lxd, lab):
            _report(f"lab {lab}: removed LXD leftovers of a lost lab first")
        super().prepare(lab)

    # -- up ------------------------------------------------------------------------------
    def preflight(self, plan: Plan) -> list[tuple[tuple[str, ...], str]]:
        return external_preflight(plan)

    def apply(self, plan: Plan, journal: Journal, nodes: Sequence[str] | None = None) -> None:
        lxd = self.lxd
        chosen = list(plan.nodes) if nodes is None else [plan.node(n) for n in nodes]
        members, local = self._cluster()
        # Placed over the whole plan, so that a node lands on the same member whether
        # the lab comes up at once or grows by `launch` (nothing made before this).
        where = (
            placement.place(plan.nodes, plan.placement, members, local, self._far_rule(plan))
            if members
            else {}
        )
        away = sorted(self._away())
        if away and nodes is None:
            _report(
                f"cluster members {', '.join(away)} run on other machines: they take plain "
                "hosts only, driven through LXD's API (routers and nodes with daemons run here)"
            )
        mtu = plan.link_mtu or (TUNNEL_MTU if members else None)
        if not members and any(n.option("member") for n in chosen):
            _report("LXD is not a cluster: `member:` keys are ignored, every node runs here")
        t = PhaseTimer()
        for image in sorted({instances.image_of(n) for n in chosen}):
            images.ensure(lxd, image, _report)
        if any(n.docker is not None for n in chosen):
            docker.prepare_cache()  # mounted into docker nodes: it must exist
        t.lap("images")
        profile = networks.ensure_profile(lxd, plan.lab, lxd.pool(), journal)
        networks.create_networks(lxd, plan, journal, [m.name for m in members], mtu)
        t.lap("networks")
        existing = instances.lab_instances(lxd, plan.lab)
        fresh = [n for n in chosen if n.name not in existing]
        journal.record_many(
            ("lxd-instance", instance_name(plan.lab, n.name), n.name, {}) for n in fresh
        )
        instances.create(lxd, plan, fresh, profile, where, mtu)
        t.lap("create")
        stopped = [n for n in chosen if existing.get(n.name, {}).get("status") != "Running"]
        routers = [n for n in chosen if is_router(n)]
        distant = [n for n in chosen if where.get(n.name) in away]  # plain hosts (far.py)
        hosts = [n for n in chosen if not is_router(n) and n not in distant]
        watch = AddressWatch()
        try:
            pids = self._start(plan, [n for n in routers if n in stopped], routers, watch)
            for node in routers:
                self._configure(plan, node, pids[node.name])
            own = {
                n.name: {str(a) for i in n.interfaces for a in (i.link_local, *i.ipv6_static)}
                for n in routers
            }
            watch.wait(runner.READY_TIMEOUT, own, own)
            for node in routers:
                inside.configure_routes(node, pids[node.name])
            started = []
            for node in routers:
                started += self._daemons(journal, plan, node, pids[node.name])
            runner.wait_ready(started)
            t.lap("routers")
            pids.update(self._start(plan, [n for n in hosts if n in stopped], hosts, watch))
            instances.start(lxd, plan.lab, [n for n in distant if n in stopped])
            t.lap("hosts started")

            def host(node: NodePlan) -> list[runner.Started]:
                if node in distant:
                    inst = instance_name(plan.lab, node.name)
                    inside.seed_etc(lxd, plan, node, inst)
                    far.configure(lxd, inst, node)
                    return []
                self._configure(plan, node, pids[node.name])
                return self._daemons(journal, plan, node, pids[node.name])

            # Each host's /etc and daemons are a few API round trips: hosts in parallel.
            with ThreadPoolExecutor(max_workers=HOST_WORKERS) as pool:
                started = [s for group in pool.map(host, hosts + distant) for s in group]
            t.lap("hosts configured")
            watch.wait(runner.READY_TIMEOUT, [n.name for n in chosen if n not in distant])
            far.wait_addresses(
                lxd,
                {instance_name(plan.lab, n.name): (n.name, _expected(n)) for n in distant},
                runner.READY_TIMEOUT,
            )
            for node in hosts:
                inside.configure_routes(node, pids[node.name])
            for node in distant:
                far.configure_routes(lxd, instance_name(plan.lab, node.name), node)
            runner.wait_ready(started)
            t.lap("addresses")
        finally:
            watch.close()
        dockers = [n for n in chosen if n.docker is not None]
        if dockers:
            with ThreadPoolExecutor(max_workers=HOST_WORKERS) as pool:
                list(pool.map(lambda n: self._docker(plan, n, pids[n.name]).start(), dockers))
            t.lap("docker")

    def _docker(self, plan: Plan, node: NodePlan, init: int) -> docker.NodeDocker:
        return docker.NodeDocker(self.lxd, node, instance_name(plan.lab, node.name), init)

    def _daemons(
        self, journal: Journal, plan: Plan, node: NodePlan, init: int
    ) -> list[runner.Started]:
        inst = instance_name(plan.lab, node.name)
        return inside.start_daemons(journal, self.lxd, plan, node, inst, init, ("early", "up"))

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
            watch.watch(node.name, inside.netns_path(pid), _expected(node))
        watch.dump([n.name for n in nodes])
        return pids

    def _configure(self, plan: Plan, node: NodePlan, pid: int) -> None:
        inst = instance_name(plan.lab, node.name)
        inside.seed_etc(self.lxd, plan, node, inst)
        inside.configure_links(node, pid)
        if node.uci:
            nftables.load(node, inside.netns_path(pid))
        guard = guard_ruleset(plan.lab, node)
        if guard is not None:  # external networks: the guards (plan/guard.py)
            nftables.load(node, inside.netns_path(pid), guard)

    def refresh(self, plan: Plan, journal: Journal) -> None:
        """Re-render the daemons that re-read their files on SIGHUP, and signal them."""
        mine = instances.lab_instances(self.lxd, plan.lab)
        away = self._away()
        signalled = []
        for node in plan.nodes:
            inst = mine.get(node.name)
            if inst is None or inst.get("status") != "Running" or _member(inst) in away:
                continue  # a node elsewhere runs no daemon (far.py)
            init = instances.init_pid(self.lxd, inst["name"])
            spawner = inside.LxdSpawner(self.lxd, node, inst["name"], init)
            for svc in inside.adapters(plan, node, init):
                if svc.reloads:
                    signalled.append(runner.reload(journal, node, svc, spawner))
        runner.wait_reloaded(signalled)

    # -- node verbs --------------------------------------------------------------------------
    def remove_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        names = [instance_name(plan.lab, n) for n in nodes]
        mine = instances.lab_instances(self.lxd, plan.lab)
        instances.delete(self.lxd, [mine[n]["name"] for n in nodes if n in mine])
        for name in names:
            journal.forget("lxd-instance", name)
        self._forget_processes(journal, nodes)

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
        self._forget_processes(journal, nodes)

    @staticmethod
    def _forget_processes(journal: Journal, nodes: Sequence[str]) -> None:
        """A container's daemons die with it: their journal rows go too."""
        for node in nodes:
            for e in journal.entries("process", node=node):
                journal.forget("process", e.name)

    def start_service(self, plan: Plan, journal: Journal, node: str, name: str) -> int:
        n = plan.node(node)
        cls = service_named(name)
        if not cls.wanted(n):
            raise LabError(f"node {node} runs no {name}")
        inst = instance_name(plan.lab, node)
        init = instances.init_pid(self.lxd, inst) if self.lxd.exists(f"instances/{inst}") else 0
        if not init:
            raise LabError(f"node {node} is not running")
        svc = inside.adapter(cls, plan, n, init)
        if svc.name in inside.PYTHON_SERVICES:
            inside.push_runtime(self.lxd, inst)
        started = runner.start(journal, n, svc, inside.LxdSpawner(self.lxd, n, inst, init))
        runner.wait_ready([started])
        return started.pid

    def observe(self, plan: Plan, journal: Journal) -> list[LiveNode]:
        mine = instances.lab_instances(self.lxd, plan.lab)
        away = self._away() if any(_member(i) for i in mine.values()) else set()
        out = []
        for node in plan.nodes:
            inst = mine.get(node.name)
            if inst is None:
                state = "STOPPED" if node.name in journal.meta("stopped", []) else "ERROR"
                out.append(LiveNode(node.name, node.kind, state, ()))
                continue
            if inst.get("status") != "Running":
                state = "STOPPED" if inst.get("status") == "Stopped" else "ERROR"
                out.append(LiveNode(node.name, node.kind, state, (), member=_member(inst)))
                continue
            if _member(inst) in away:
                state = self.lxd.get(f"instances/{inst['name']}/state")
                out.append(far.observe(node, state, _member(inst)))
                continue
            pid = instances.init_pid(self.lxd, inst["name"])
            live = observe_netns(node, inside.netns_path(pid))
            if node.docker is not None:
                rows = self._docker(plan, node, pid).containers()
                live = dataclasses.replace(live, docker=tuple(LiveContainer(**r) for r in rows))
            out.append(dataclasses.replace(live, member=_member(inst)))
        return out

    def node(self, plan: Plan, journal: Journal, name: str) -> LxdNode:
        node = plan.node(name)
        inst = instance_name(plan.lab, name)
        try:
            state = self.lxd.get(f"instances/{inst}/state")
        except self.lxd.NotFound:
            state = {}
        away = self._away() if state else set()
        where = _member(self.lxd.get(f"instances/{inst}")) if away else ""
        if where in away:
            return LxdNode(plan, node, process_pids(journal, name), self.lxd, 0, where)
        init = instances.init_pid(self.lxd, inst, state) if state else 0
        return LxdNode(plan, node, process_pids(journal, name), self.lxd, init)

    def switch(self, plan: Plan, journal: Journal) -> Switch:
        """The lab's bridges are LXD-managed, in LXD's own network namespace (the
        machine's), with each NIC's host end named by `port_name`; on a cluster the
        ports of nodes on another member are in that member's namespace."""
        netns = self._lxd_netns()
        mine = self._clustered_instances(plan.lab)
        port_netns = {
            port_name(plan.lab, node, i.name): where
            for node, where in self._node_namespaces(mine, netns).items()
            for i in plan.node(node).veths
        }
        away = self._away()
        elsewhere = {
            (node, i.name): _member(inst)
            for node, inst in mine.items()
            if _member(inst) in away
            for i in plan.node(node).veths
        }
        return Switch(
            away=elsewhere,
            netns=netns,
            port_netns=port_netns,
            table=impair_table(plan.lab),
            bridges={n.name: networks.bridge_name(plan.lab, n.name) for n in plan.bridged},
            ports={
                (n.name, i.name): port_name(plan.lab, n.name, i.name)
                for n in plan.nodes
                for i in n.veths
                if i.external is None
            },
        )

    def _clustered_instances(self, lab: str) -> dict[str, dict[str, Any]]:
        """The lab's instances by node on a cluster ({} off one: all in LXD's namespace)."""
        members, _ = self._cluster()
        return instances.lab_instances(self.lxd, lab) if members else {}

    def _node_namespaces(self, mine: dict[str, dict[str, Any]], lxd_netns: str) -> dict[str, str]:
        """node -> the namespace its NICs' host ends are in, for running nodes (of the
        lab's instances `mine`) whose LXD is not the one palmnet talks to (another
        member here): the namespace of the container's parent, LXC's monitor, which
        runs where that LXD runs."""
        if not mine:
            return {}
        home = os.stat(lxd_netns).st_ino
        away = self._away()
        out = {}
        for node, inst in mine.items():
            if inst.get("status") != "Running" or _member(inst) in away:
                continue  # stopped, or on another machine: no namespace to reach here
            with contextlib.suppress(LabError, OSError, ValueError):
                init = instances.init_pid(self.lxd, inst["name"])
                monitor = _parent(init)
                path = f"/proc/{monitor}/ns/net"
                if monitor and os.stat(path).st_ino != home:
                    out[node] = path
        return out

    def _lxd_netns(self) -> str:
        """LXD's namespace, from the peer of its unix socket (SO_PEERCRED gives the pid
        as this machine counts it, also for an LXD nested in a container)."""
        pid = lxdclient.server_host_pid()
        if not pid:
            raise LabError("LXD's unix socket names no peer: cannot find its network namespace")
        return f"/proc/{pid}/ns/net"

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
            for kind in (*KINDS, "process"):
                for e in journal.entries(kind):
                    journal.forget(kind, e.name)
        shutil.rmtree(lab_dir(lab), ignore_errors=True)

    def leftovers(self, lab: str) -> list[str]:
        try:
            lxd = self.lxd
        except InputError:
            return []  # no LXD here: nothing of a lab can be in it
        found = [f"container {i['name']}" for i in instances.lab_instances(lxd, lab).values()]
        found += [f"network {n}" for n in networks.lab_networks(lxd, lab)]
        found += [f"profile {p}" for p in networks.lab_profiles(lxd, lab)]
        found += [f"image {r.fingerprint[:12]}" for r in images.list_images(lxd) if r.lab == lab]
        return found

    def _remove_tagged(self, lxd: lxdclient.Lxd, lab: str) -> bool:
        found: list[Any] = []
        listed = instances.lab_instances(lxd, lab)
        # other members' namespaces, while their nodes still run (impairment tables)
        with contextlib.suppress(LabError, OSError):
            clustered = listed if self._cluster()[0] else {}
            for where in set(self._node_namespaces(clustered, self._lxd_netns()).values()):
                if self._drop_impair_table(lab, where):
                    found.append(f"{impair_table(lab)} ({where})")
        mine = [i["name"] for i in listed.values()]
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
        if self._drop_impair_table(lab):
            found.append(impair_table(lab))
        return bool(found)

    def _drop_impair_table(self, lab: str, netns: str | None = None) -> bool:
        """The lab's impairment table in LXD's namespace (or `netns`), if a crash left
        it there."""
        table = impair_table(lab)
        try:
            path = netns or self._lxd_netns()
            listed = run_in_netns(path, ["nft", "list", "table", "netdev", table], timeout=10)
        except (LabError, OSError):
            return False
        if listed.returncode != 0:
            return False
        run_in_netns(path, ["nft", "delete", "table", "netdev", table], timeout=10)
        return True
