"""The shape every daemon adapter has (DESIGN.md §1).

An adapter knows its daemon: the files it needs (`render`), how it is started
(`argv`), and how to tell that it works (`ready`). Starting, waiting and
stopping is services/runner.py's job, given a backend's way to write a file
into a node and spawn a process there, so an adapter stays pure and testable
without root; `missing()` reports an absent executable instead of crashing.

Two views of the same paths: `dir` is the daemon's state dir as the node sees
it (what `render` and `argv` write into configs and command lines), and
`host(path)` is where the host sees that path (what `ready` and palmnet's
verbs open: a control socket, a log). For a namespace node both are the
same; for a container the host sees it under /proc/INIT/root.

`python` is how a command inside the node runs palmnet's own modules (the PD
hook, the firewall init script): the host's interpreter for a namespace node,
which shares the host's files; a container's own python3 with palmnet's few
pure modules copied in (backends/lxd).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from palmnet.interpreter import this_palmnet
from palmnet.plan.model import NodePlan, Plan


class Service(ABC):
    name: ClassVar[str]
    executable: ClassVar[str]
    package: ClassVar[str]  # the Debian package that ships it
    # "early": started before the node's links come up (it must see the first RA);
    # "up": started once the node's links are up and its addresses out of DAD.
    starts: ClassVar[str] = "up"
    # True when SIGHUP makes the daemon re-read what render() writes (DNS names, leases).
    reloads: ClassVar[bool] = False
    # Why the daemon cannot run in a user namespace that maps one id only (a rootless
    # lab without newuidmap), None if it can: lab/rootless.py refuses it up front.
    single_id_problem: ClassVar[str | None] = None
    # Device files the daemon opens: a rootless lab's daemons open them as the user who
    # runs it, so lab/rootless.py refuses a lab whose user may not (TAYGA's tun device).
    devices: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        plan: Plan,
        node: NodePlan,
        state_dir: Path,
        host_root: str = "",
        python: str | None = None,
        isolated: bool = False,
    ) -> None:
        self.plan = plan
        self.node = node
        self.dir = state_dir / self.name
        self.host_root = host_root
        self.python = python if python is not None else this_palmnet()
        # True in a container: the node sees no other node's files (their sockets)
        self.isolated = isolated

    def host(self, path: Path | str) -> Path:
        """Where the host sees a path of the node (the same path for a namespace node)."""
        return Path(f"{self.host_root}{path}") if self.host_root else Path(path)

    @property
    def host_dir(self) -> Path:
        return self.host(self.dir)

    @property
    def host_log(self) -> Path:
        return self.host(self.log)

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        """Whether this node runs the daemon."""
        return False

    @abstractmethod
    def render(self) -> dict[Path, str]:
        """Config files to write before start: absolute path -> text."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line, run inside the node in the foreground."""

    def ready(self, pid: int) -> bool:
        """True once the daemon does its job; polled with a deadline by the backend."""
        return True

    def reloaded(self, log_offset: int) -> bool:
        """After a SIGHUP: whether the daemon has re-read its files, judged by what it
        logged past `log_offset` (its log's size when it was signalled). Polled with
        a deadline; a daemon that says nothing is taken at its word at once."""
        return True

    def private_mounts(self) -> dict[str, Path]:
        """Host paths the daemon has compiled in, mapped to per-node directories.

        The backend bind-mounts each directory over the path inside the node's
        mount namespace, so two nodes never share a pid file or a DUID.
        """
        return {}

    @property
    def pid_file(self) -> Path | None:
        """The pid file the daemon writes (as the node sees it), if it writes one."""
        return None

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    @classmethod
    def missing(cls) -> str | None:
        if shutil.which(cls.executable) or Path(cls.executable).exists():
            return None
        return f"{cls.executable} not found: install the Debian package '{cls.package}'"
