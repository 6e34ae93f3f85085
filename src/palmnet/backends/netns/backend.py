"""The default backend: every node a network namespace on this kernel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from palmnet.backends.base import Backend, LiveNode
from palmnet.backends.netns import nsfs
from palmnet.backends.netns.build import apply_plan
from palmnet.backends.netns.daemons import refresh_daemons
from palmnet.backends.netns.layout import mnt_file, ns_dir, uts_file
from palmnet.backends.netns.linkwait import subscribe_links, wait_links_gone
from palmnet.backends.netns.mountns import enter_node, mount_state_tmpfs
from palmnet.backends.netns.observe import observe_node
from palmnet.backends.netns.teardown import destroy_lab, remove_node
from palmnet.errors import LabError
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir


class NetnsBackend(Backend):
    name = "netns"

    def prepare(self, lab: str) -> None:
        mount_state_tmpfs(lab_dir(lab))
        mount_state_tmpfs(ns_dir(lab))

    def apply(self, plan: Plan, journal: Journal, nodes: Sequence[str] | None = None) -> None:
        chosen = plan.nodes if nodes is None else tuple(plan.node(n) for n in nodes)
        apply_plan(plan, journal, chosen)

    def refresh(self, plan: Plan, journal: Journal) -> None:
        refresh_daemons(plan, journal)

    def remove_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        switch = nsfs.netns_path(plan.switch_netns)
        sock = subscribe_links(switch) if os.path.exists(switch) else None
        try:
            for name in nodes:
                remove_node(plan.lab, name, journal)
            if sock is not None:
                outer = [
                    i.outer for n in plan.nodes if n.name in nodes for i in n.interfaces if i.outer
                ]
                wait_links_gone(sock, switch, outer)
        finally:
            if sock is not None:
                sock.close()

    def observe(self, plan: Plan, journal: Journal) -> list[LiveNode]:
        stopped = set(journal.meta("stopped", []))
        return [observe_node(n, n.name in stopped) for n in plan.nodes]

    def destroy(self, lab: str, journal: Journal | None) -> None:
        destroy_lab(lab, journal)

    def exec(self, plan: Plan, node: str, argv: list[str]) -> int:
        n = plan.node(node)
        path = nsfs.netns_path(n.netns)
        if not os.path.exists(path):
            raise LabError(f"node {node} is not running")
        enter_node(path, mnt_file(plan.lab, node), uts_file(plan.lab, node))
        try:
            os.execvp(argv[0], argv)
        except FileNotFoundError:
            raise LabError(f"{argv[0]}: command not found in node {node}") from None
        return 127  # not reached

    def run(
        self, plan: Plan, node: str, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        n = plan.node(node)
        path = nsfs.netns_path(n.netns)
        if not os.path.exists(path):
            raise LabError(f"node {node} is not running")
        mnt, uts = mnt_file(plan.lab, node), uts_file(plan.lab, node)
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=lambda: enter_node(path, mnt, uts),
            )
        except FileNotFoundError:
            raise LabError(f"{argv[0]}: command not found in node {node}") from None
