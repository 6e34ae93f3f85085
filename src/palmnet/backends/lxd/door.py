"""Into a container node: `lxc exec`, which gives the command a terminal as LXD does."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, NoReturn

from palmnet.backends.door import NodeDoor
from palmnet.errors import InputError

if TYPE_CHECKING:
    from palmnet.backends.lxd.client import Lxd


class LxdDoor(NodeDoor):
    def __init__(self, lab: str, node: str, lxd: Lxd | None = None) -> None:
        super().__init__(lab, node)
        self._lxd = lxd

    @property
    def instance(self) -> str:
        from palmnet.backends.lxd.instances import instance_name

        return instance_name(self.lab, self.node)

    def running(self) -> bool:
        from palmnet.backends.lxd import client

        lxd = self._lxd if self._lxd is not None else client.connect(require_pool=False)
        try:
            return lxd.get(f"instances/{self.instance}/state").get("status") == "Running"
        except lxd.NotFound:
            return False

    def _replace(self, argv: list[str]) -> NoReturn:
        lxc = shutil.which("lxc")
        if lxc is None:
            raise InputError("`lxc` (package lxd-client) is needed for an interactive exec")
        os.execv(lxc, ["lxc", "exec", self.instance, "--", *argv])
