"""Start a node's daemons and wait until they do their job: one place, every backend.

A backend says how a file gets where the node sees it and how a process starts
inside the node (a `Spawner`); the rest is the same whatever runs the node:
the adapter renders its files, the start is journalled before it happens and
again with the pid (so `down` finds it after any crash), and readiness is the
adapter's own test, polled with a deadline (these daemons give no readiness
notification). A daemon that exits while it is awaited fails at once, with the
last lines of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from palmnet.errors import LabError
from palmnet.kernel import processes
from palmnet.plan.model import NodePlan
from palmnet.services.base import Service
from palmnet.state.journal import Journal

READY_TIMEOUT = float(os.environ.get("PALMNET_READY_TIMEOUT", "30"))
READY_POLL = 0.005  # seconds between readiness tests


class Spawner(Protocol):
    """How one backend puts files into a node and starts a process there."""

    def write(self, files: dict[Path, str]) -> None:
        """Write files (paths as the node sees them); `#!` files become executable."""

    def spawn(self, svc: Service) -> int:
        """Start the daemon in the node, its own session, output to its log; its host pid."""


@dataclass(frozen=True)
class Started:
    key: str  # NODE/SERVICE, as the journal names it
    svc: Service
    pid: int


S = TypeVar("S", bound=Started)


def key_of(node: str, service: str) -> str:
    return f"{node}/{service}"


def start(journal: Journal, node: NodePlan, svc: Service, spawner: Spawner) -> Started:
    """Render, journal, spawn: the daemon runs (it may not be ready yet)."""
    key = key_of(node.name, svc.name)
    _clear_remains(journal, node.name, key)
    clear_stale_pid_file(svc)
    spawner.write(svc.render())
    journal.record("process", key, node.name, pid=None)
    pid = spawner.spawn(svc)
    journal.record("process", key, node.name, pid=pid, start=processes.start_time(pid))
    return Started(key, svc, pid)


def _clear_remains(journal: Journal, node: str, key: str) -> None:
    """A daemon started again: what is left of its dead predecessor's process group
    goes first (it was started in a session of its own)."""
    for e in journal.entries("process", node=node):
        if e.name == key and e.data.get("pid"):
            pid = int(e.data["pid"])
            if not processes.alive(pid):
                processes.kill_group_leftovers(pid, e.data.get("start"))


def clear_stale_pid_file(svc: Service) -> None:
    """A daemon that was killed leaves its pid file; kea (and dhcpcd) refuse to start
    while the pid in it exists, and a killed process may still be a zombie for a
    moment (its reaper is not palmnet). A file naming no live process goes."""
    if svc.pid_file is None:
        return
    path = svc.host(svc.pid_file)
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not processes.alive(pid):
        path.unlink(missing_ok=True)


def start_all(
    journal: Journal, node: NodePlan, services: Iterable[Service], spawner: Spawner
) -> list[Started]:
    return [start(journal, node, svc, spawner) for svc in services]


def wait_ready(started: Sequence[Started], timeout: float = READY_TIMEOUT) -> None:
    """Poll each daemon's own readiness test until all pass; fail naming the laggards."""
    _wait(started, lambda s: s.svc.ready(s.pid), "at start", "ready", timeout)


def _wait(
    awaited: Sequence[S],
    done: Callable[[S], bool],
    when: str,
    state: str,
    timeout: float,
) -> None:
    """Poll `done` for each daemon until all pass, with a deadline (these daemons give
    no notification); a daemon that exits meanwhile fails at once, with its log."""
    deadline = time.monotonic() + timeout
    waiting = list(awaited)
    while waiting:
        for s in waiting:
            if not processes.alive(s.pid):
                tail = log_tail(s.svc.host_log)
                raise LabError(f"{s.key} exited {when}{': ' + tail if tail else ''}")
        waiting = [s for s in waiting if not done(s)]
        if waiting:
            if time.monotonic() > deadline:
                names = ", ".join(s.key for s in waiting)
                raise LabError(f"daemons not {state} after {timeout:g} s: {names}")
            time.sleep(READY_POLL)  # poll: see the docstring


def running_pid(pid: int, started: int | None) -> int | None:
    """`pid` if it is still the process the journal recorded (same start time)."""
    if not processes.alive(pid):
        return None
    if started is not None and processes.start_time(pid) != started:
        return None
    return pid


def recorded_pid(journal: Journal, node: str, service: str) -> int | None:
    """The running pid of a node's daemon, from the journal."""
    for e in journal.entries("process", node=node):
        if e.name == key_of(node, service) and e.data.get("pid"):
            return running_pid(int(e.data["pid"]), e.data.get("start"))
    return None


@dataclass(frozen=True)
class Signalled(Started):
    """A daemon told to re-read its files, and where its log stood when it was told."""

    log_offset: int


def reload(journal: Journal, node: NodePlan, svc: Service, spawner: Spawner) -> Signalled | None:
    """Re-render a daemon that re-reads its files on SIGHUP and signal it; None if it
    was not running to be told. `wait_reloaded` waits until it has read them."""
    pid = recorded_pid(journal, node.name, svc.name)
    if pid is None:
        return None
    spawner.write(svc.render())
    offset = _size(svc.host_log)
    os.kill(pid, signal.SIGHUP)
    return Signalled(key_of(node.name, svc.name), svc, pid, offset)


def wait_reloaded(signalled: Iterable[Signalled | None], timeout: float = READY_TIMEOUT) -> None:
    """Wait until every signalled daemon has re-read its files (its own log says so).

    A SIGHUP only asks: a node launched right after it would ask dnsmasq for its
    lease before the reservation is read, and get an address from the pool."""
    told = [s for s in signalled if s is not None]
    _wait(told, lambda s: s.svc.reloaded(s.log_offset), "after SIGHUP", "reloaded", timeout)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    return ""
