"""The default backend: every node a network namespace on this kernel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from palmnet.backends.base import Backend, LiveNode, NodeHandle, Switch, process_pids
from palmnet.backends.external import preflight as external_preflight
from palmnet.backends.live import observe_netns
from palmnet.backends.netns.door import NetnsDoor
from palmnet.backends.netns.layout import etc_lab, etc_upper, ns_dir
from palmnet.backends.netns.names import (
    IMPAIR_TABLE,
    node_netns,
    outer_names,
    switch_netns,
)
from palmnet.errors import LabError
from palmnet.kernel import namespaces, nsfs
from palmnet.kernel.mountns import mount_state_tmpfs
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir, node_dir

if TYPE_CHECKING:
    from palmnet.services.base import Service

# Building, daemons and teardown are imported by the methods that use them: `exec`
# and `ls` only enter or read namespaces and should not pay for the rest.


class NetnsNode(NodeHandle):
    """A namespace node: /run/netns/palmnet-LAB.NODE plus its mount and UTS
    namespaces (its own /etc). Its daemons' files are the host's."""

    @property
    def door(self) -> NetnsDoor:
        return NetnsDoor(self.plan.lab, self.name)

    @property
    def netns(self) -> str:
        return self.door.netns

    def running(self) -> bool:
        return self.door.running()

    def _enter(self) -> None:
        self.door.enter()

    def run(
        self, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        self.require_running()
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=self._enter,
            )
        except FileNotFoundError:
            raise LabError(f"{argv[0]}: command not found in node {self.name}") from None

    def exec(self, argv: list[str]) -> NoReturn:
        self.door.exec(argv)

    def host_path(self, path: str | Path) -> Path:
        """The node sees the host's files except its own /etc (the overlay's upper dir
        holds what it changed, the lab's layer what all its nodes share) and its
        daemons' private mounts."""
        text = str(path)
        if text == "/etc" or text.startswith("/etc/"):
            rel = text[len("/etc/") :]
            for layer in (etc_upper(self.plan.lab, self.name), etc_lab(self.plan.lab)):
                if (layer / rel).exists() or (layer / rel).is_symlink():
                    return layer / rel
        return Path(text)

    def read_file(self, path: str) -> str | None:
        """As the node sees it. A link in its /etc to an absolute path (its hostname,
        to its UTS hostname in its /proc) means that path in the node, which the host
        sees elsewhere or not at all: such a file is read from inside."""
        where = self.host_path(path)
        if where.is_symlink() and where.readlink().is_absolute():
            proc = self.run(["cat", "--", path])
            return proc.stdout if proc.returncode == 0 else None
        return super().read_file(path)

    def write(self, files: dict[Path, str]) -> None:
        """A node sees the host's files except its own /etc: a path under /etc is
        written from inside the node's mount namespace (into its overlay, never the
        host's /etc); the others (its daemons' files in the lab's state dir) from here."""
        from palmnet.backends.netns.daemons import NetnsSpawner

        own = {p: t for p, t in files.items() if _in_etc(p)}
        NetnsSpawner(self.plan.lab, self.name).write(
            {p: t for p, t in files.items() if p not in own}
        )
        for path, text in own.items():
            mode = "755" if text.startswith("#!") else "644"
            script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
            proc = self.run(["sh", "-c", script, "sh", str(path), mode], stdin=text)
            if proc.returncode != 0:
                raise LabError(f"node {self.name}: cannot write {path}: {proc.stderr.strip()}")

    def service(self, name: str) -> Service:
        from palmnet.services.registry import service_named

        cls = service_named(name)
        if not cls.wanted(self.node):
            raise LabError(f"node {self.name} runs no {name}")
        return cls(self.plan, self.node, node_dir(self.plan.lab, self.name))


def _in_etc(path: str | Path) -> bool:
    text = os.path.normpath(str(path))
    return text == "/etc" or text.startswith("/etc/")


class NetnsBackend(Backend):
    name = "netns"

    def check_capacity(self, plan: Plan) -> None:
        from palmnet.backends.netns import capacity
        from palmnet.services.registry import services_for

        capacity.check(plan, sum(len(services_for(n)) for n in plan.nodes))

    def prepare(self, lab: str) -> None:
        mount_state_tmpfs(lab_dir(lab))
        mount_state_tmpfs(ns_dir(lab))

    def preflight(self, plan: Plan) -> list[tuple[tuple[str, ...], str]]:
        return external_preflight(plan)

    def apply(self, plan: Plan, journal: Journal, nodes: Sequence[str] | None = None) -> None:
        from palmnet.backends.netns.build import apply_plan

        chosen = plan.nodes if nodes is None else tuple(plan.node(n) for n in nodes)
        apply_plan(plan, journal, chosen)

    def refresh(self, plan: Plan, journal: Journal) -> None:
        from palmnet.backends.netns.daemons import refresh_daemons

        refresh_daemons(plan, journal)

    def remove_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        from palmnet.backends.netns.teardown import remove_node
        from palmnet.kernel.linkwait import subscribe_links, wait_links_gone

        switch = nsfs.netns_path(switch_netns(plan.lab))
        sock = subscribe_links(switch) if os.path.exists(switch) else None
        try:
            for name in nodes:
                remove_node(plan.lab, name, journal)
            if sock is not None:
                outer = outer_names(plan)
                gone = [o for (node, _), o in outer.items() if node in nodes]
                wait_links_gone(sock, switch, gone)
        finally:
            if sock is not None:
                sock.close()

    def start_service(self, plan: Plan, journal: Journal, node: str, name: str) -> int:
        from palmnet.backends.netns.daemons import NetnsSpawner, adapters
        from palmnet.services import runner

        n = plan.node(node)
        if not namespaces.netns_exists(node_netns(plan.lab, node)):
            raise LabError(f"node {node} is not running")
        svc = next((s for s in adapters(plan, n) if s.name == name), None)
        if svc is None:
            raise LabError(f"node {node} runs no {name}")
        started = runner.start(journal, n, svc, NetnsSpawner(plan.lab, node))
        runner.wait_ready([started])
        return started.pid

    def observe(self, plan: Plan, journal: Journal) -> list[LiveNode]:
        stopped = set(journal.meta("stopped", []))
        out = []
        for n in plan.nodes:
            if n.name in stopped:
                out.append(LiveNode(n.name, n.kind, "STOPPED", ()))
            elif not namespaces.netns_exists(node_netns(plan.lab, n.name)):
                out.append(LiveNode(n.name, n.kind, "ERROR", ()))
            else:
                out.append(observe_netns(n, nsfs.netns_path(node_netns(plan.lab, n.name))))
        return out

    def destroy(self, lab: str, journal: Journal | None) -> None:
        from palmnet.backends.netns.teardown import destroy_lab

        destroy_lab(lab, journal)

    def leftovers(self, lab: str) -> list[str]:
        from palmnet.backends.netns.external import leftover_ports
        from palmnet.backends.netns.teardown import lab_netns_names

        found = [f"namespace {n}" for n in lab_netns_names(lab)]
        found += [f"host port {n}" for n in leftover_ports(lab)]
        if lab_dir(lab).exists():
            found.append(f"state dir {lab_dir(lab)}")
        return found

    def node(self, plan: Plan, journal: Journal, name: str) -> NetnsNode:
        return NetnsNode(plan, plan.node(name), process_pids(journal, name))

    def switch(self, plan: Plan, journal: Journal) -> Switch:
        path = nsfs.netns_path(switch_netns(plan.lab))
        if not os.path.exists(path):
            raise LabError(f"lab {plan.lab} has no hidden namespace {switch_netns(plan.lab)}")
        return Switch(
            netns=path,
            table=IMPAIR_TABLE,
            bridges={n.name: n.name for n in plan.bridged},
            ports=outer_names(plan),
        )
