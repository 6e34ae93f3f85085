"""The shape every daemon adapter has (DESIGN.md §1).

An adapter knows its daemon: the files it needs (`render`), how it is started
(`argv`), and how to tell that it works (`ready`). Starting and stopping
inside a node is the backend's job, so an adapter stays pure and testable
without root; `missing()` reports an absent executable instead of crashing.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

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

    def __init__(self, plan: Plan, node: NodePlan, state_dir: Path) -> None:
        self.plan = plan
        self.node = node
        self.dir = state_dir / self.name

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

    def private_mounts(self) -> dict[str, Path]:
        """Host paths the daemon has compiled in, mapped to per-node directories.

        The backend bind-mounts each directory over the path inside the node's
        mount namespace, so two nodes never share a pid file or a DUID.
        """
        return {}

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    @classmethod
    def missing(cls) -> str | None:
        if shutil.which(cls.executable) or Path(cls.executable).exists():
            return None
        return f"{cls.executable} not found: install the Debian package '{cls.package}'"
