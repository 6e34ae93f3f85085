"""The interface every backend implements (netns now, LXD later).

The Lab API and the CLI only see this: a backend realizes a plan, reports
what is there, runs commands in nodes, and removes everything it made. The
plan never imports a backend; a backend never parses YAML.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from palmnet.plan.model import Plan
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir


@dataclass(frozen=True)
class LiveInterface:
    name: str
    network: str
    mac: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()  # non-tentative, as the kernel holds them


@dataclass(frozen=True)
class LiveNode:
    name: str
    kind: str
    state: str  # RUNNING, STOPPED, ERROR
    interfaces: tuple[LiveInterface, ...] = field(default=())


class Backend(ABC):
    name: str

    def prepare(self, lab: str) -> None:
        """Make the lab's state dir ready before its journal is opened."""
        lab_dir(lab).mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def apply(self, plan: Plan, journal: Journal, nodes: Sequence[str] | None = None) -> None:
        """Create the plan's objects (all nodes, or only `nodes`) and wait until ready."""

    def refresh(self, plan: Plan, journal: Journal) -> None:  # noqa: B027 (optional hook)
        """Tell running daemons about a changed plan (DNS names of added nodes)."""

    @abstractmethod
    def remove_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        """Remove some nodes of a running lab, leaving the rest untouched."""

    @abstractmethod
    def observe(self, plan: Plan, journal: Journal) -> list[LiveNode]:
        """What is there now, node by node, in plan order."""

    @abstractmethod
    def destroy(self, lab: str, journal: Journal | None) -> None:
        """Remove every trace of the lab; works from the journal after any crash."""

    @abstractmethod
    def exec(self, plan: Plan, node: str, argv: list[str]) -> int:
        """Replace this process with argv inside the node (exit code passes through)."""

    @abstractmethod
    def run(
        self, plan: Plan, node: str, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the node and collect its output (for verbs that act in a node)."""
