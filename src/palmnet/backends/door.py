"""The way into a running node for a process that becomes the node's (`palmnet exec`).

A door needs only the lab's and the node's names, never the lab's plan: decoding
the plan and building its classes was half of what `palmnet exec` cost (about
50 ms of 120). Each backend has one; its node handle's `exec` goes through it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NoReturn

from palmnet.errors import LabError


class NodeDoor(ABC):
    def __init__(self, lab: str, node: str) -> None:
        self.lab = lab
        self.node = node

    @abstractmethod
    def running(self) -> bool:
        """Whether the node runs, so that there is a way in."""

    @abstractmethod
    def _replace(self, argv: list[str]) -> NoReturn:
        """Become argv inside the node (the backend's own way)."""

    def exec(self, argv: list[str]) -> NoReturn:
        """Replace this process with argv inside the node (its exit code passes through)."""
        if not self.running():
            raise LabError(f"node {self.node} is not running")
        self._replace(argv)
