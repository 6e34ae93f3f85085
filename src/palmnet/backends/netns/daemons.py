"""How the netns backend puts a daemon into a node (services/runner.py does the rest).

A node's mount namespace shares the host's files except /etc (and the few
private bind mounts an adapter asks for), so a daemon's files are written
where the host sees them, and the process enters the node's network, mount
and UTS namespaces before exec.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from palmnet.backends.netns.layout import mnt_file, uts_file
from palmnet.backends.netns.names import node_netns
from palmnet.errors import LabError
from palmnet.kernel import nsfs, processes
from palmnet.plan.model import NodePlan, Plan
from palmnet.services import runner
from palmnet.services.base import Service
from palmnet.services.registry import services_for
from palmnet.state.journal import Journal
from palmnet.state.paths import node_dir


class NetnsSpawner:
    def __init__(self, lab: str, node: str) -> None:
        self.lab = lab
        self.node = node

    def write(self, files: dict[Path, str]) -> None:
        for path, text in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if text.startswith("#!"):
                path.chmod(0o755)

    def spawn(self, svc: Service) -> int:
        problem = svc.missing()
        if problem:
            raise LabError(f"{self.node}: cannot start {svc.name}: {problem}")
        svc.dir.mkdir(parents=True, exist_ok=True)
        return processes.spawn(
            svc.argv(),
            nsfs.netns_path(node_netns(self.lab, self.node)),
            mnt_file(self.lab, self.node),
            uts_file(self.lab, self.node),
            svc.log,
        )


def adapters(plan: Plan, node: NodePlan, names: Sequence[str] | None = None) -> list[Service]:
    """The node's daemon adapters (all, or only those named), in start order."""
    return [
        cls(plan, node, node_dir(plan.lab, node.name))
        for cls in services_for(node)
        if names is None or cls.name in names
    ]


def refresh_daemons(plan: Plan, journal: Journal) -> None:
    """Re-render the daemons that re-read their files on SIGHUP, and signal them."""
    runner.wait_reloaded(
        runner.reload(journal, node, svc, NetnsSpawner(plan.lab, node.name))
        for node in plan.nodes
        for svc in adapters(plan, node)
        if svc.reloads
    )
