"""Into a namespace node: its network, mount and UTS namespaces, by their names."""

from __future__ import annotations

import os
from typing import NoReturn

from palmnet.backends.door import NodeDoor
from palmnet.backends.netns.layout import mnt_file, uts_file
from palmnet.backends.netns.names import node_netns
from palmnet.errors import CommandNotFound, NotExecutable
from palmnet.kernel import namespaces, nsfs
from palmnet.kernel.mountns import enter_node


class NetnsDoor(NodeDoor):
    @property
    def netns(self) -> str:
        return nsfs.netns_path(node_netns(self.lab, self.node))

    def running(self) -> bool:
        return namespaces.netns_exists(node_netns(self.lab, self.node))

    def enter(self) -> None:
        """This process into the node: its network, its own /etc, its hostname."""
        enter_node(self.netns, mnt_file(self.lab, self.node), uts_file(self.lab, self.node))

    def _replace(self, argv: list[str]) -> NoReturn:
        self.enter()
        try:
            os.execvp(argv[0], argv)
        except FileNotFoundError:
            raise CommandNotFound(f"{argv[0]}: command not found in node {self.node}") from None
        except PermissionError:
            raise NotExecutable(f"{argv[0]}: not a program node {self.node} can run") from None
