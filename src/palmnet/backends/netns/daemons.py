"""Start a node's daemons from their adapters and wait until they do their job."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from palmnet.backends.netns import nsfs, processes
from palmnet.backends.netns.layout import mnt_file, uts_file
from palmnet.errors import LabError
from palmnet.plan.model import NodePlan, Plan
from palmnet.services.base import Service
from palmnet.services.registry import services_for
from palmnet.state.journal import Journal
from palmnet.state.paths import node_dir

READY_TIMEOUT = float(os.environ.get("PALMNET_READY_TIMEOUT", "30"))


def adapters(plan: Plan, node: NodePlan, names: Sequence[str] | None = None) -> list[Service]:
    """The node's daemon adapters (all, or only those named)."""
    out = []
    for cls in services_for(node):
        if names is None or cls.name in names:
            out.append(cls(plan, node, node_dir(plan.lab, node.name)))
    return out


def start(plan: Plan, journal: Journal, node: NodePlan, svc: Service) -> int:
    problem = svc.missing()
    if problem:
        raise LabError(f"{node.name}: cannot start {svc.name}: {problem}")
    svc.dir.mkdir(parents=True, exist_ok=True)
    for path, text in svc.render().items():
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if path.suffix in (".sh", "") and text.startswith("#!"):
            path.chmod(0o755)
    key = f"{node.name}/{svc.name}"
    journal.record("process", key, node.name, pid=None)
    pid = processes.spawn(
        svc.argv(),
        nsfs.netns_path(node.netns),
        mnt_file(plan.lab, node.name),
        uts_file(plan.lab, node.name),
        svc.log,
    )
    journal.record("process", key, node.name, pid=pid, start=processes.start_time(pid))
    return pid


def refresh_daemons(plan: Plan, journal: Journal) -> None:
    """Rewrite the files of daemons that reload on SIGHUP and signal them."""
    for node in plan.nodes:
        for svc in adapters(plan, node):
            if not svc.reloads:
                continue
            entry = next(
                (
                    e
                    for e in journal.entries("process", node=node.name)
                    if e.name == f"{node.name}/{svc.name}"
                ),
                None,
            )
            if entry is None or not entry.data.get("pid"):
                continue
            pid = int(entry.data["pid"])
            if processes.start_time(pid) != entry.data.get("start"):
                continue
            for path, text in svc.render().items():
                Path(path).write_text(text)
            os.kill(pid, signal.SIGHUP)


def wait_ready(started: list[tuple[str, Service, int]], timeout: float = READY_TIMEOUT) -> None:
    """Poll each daemon's own readiness test until all pass; fail naming the laggards."""
    deadline = time.monotonic() + timeout
    waiting = list(started)
    while waiting:
        still = []
        for key, svc, pid in waiting:
            if processes.start_time(pid) is None or _is_zombie(pid):
                tail = _tail(svc.log)
                raise LabError(f"{key} exited at start{': ' + tail if tail else ''}")
            if not svc.ready(pid):
                still.append((key, svc, pid))
        waiting = still
        if waiting:
            if time.monotonic() > deadline:
                names = ", ".join(k for k, _, _ in waiting)
                raise LabError(f"daemons not ready after {timeout:g} s: {names}")
            time.sleep(0.005)  # poll: these daemons give no readiness notification


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
