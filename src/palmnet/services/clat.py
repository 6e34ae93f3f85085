"""The CLAT of a host with `clat: true` (464XLAT, RFC 6877): palmnet.xlat.clat finds
the PLAT's prefix (RFC 7050) and becomes a stateless TAYGA on the tun device `clat`.

Started once the host's links are up; it waits for its resolver itself. Ready
when the start has become TAYGA with its device made: the host then has its
IPv4 default route. Restarted by the supervisor like any daemon: the start
replaces what a previous run left (address, routes, proxy entry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import ClatPlan, NodePlan
from palmnet.services.base import Service
from palmnet.services.tayga import translator_ready


class Clat(Service):
    name: ClassVar[str] = "clat"
    executable: ClassVar[str] = "/usr/sbin/tayga"
    devices: ClassVar[tuple[str, ...]] = ("/dev/net/tun",)
    package: ClassVar[str] = "tayga"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.clat is not None

    @property
    def clat(self) -> ClatPlan:
        assert self.node.clat is not None
        return self.node.clat

    @property
    def params(self) -> Path:
        return self.dir / "clat.json"

    @property
    def script(self) -> Path:
        return self.dir / "start"

    def render(self) -> dict[Path, str]:
        c = self.clat
        params = {
            "device": c.device,
            "uplink": c.uplink,
            "ipv6": str(c.ipv6),
            "ipv4": str(c.ipv4),
            "translator4": str(c.translator4),
            "dir": str(self.dir),
        }
        start = (
            "#!/bin/sh\n# the CLAT: RFC 7050 discovery, then TAYGA (written by palmnet)\n"
            f"exec {self.python} -m palmnet.xlat.clat {self.params}\n"
        )
        return {self.params: json.dumps(params, indent=1) + "\n", self.script: start}

    def argv(self) -> list[str]:
        return [str(self.script)]

    def ready(self, pid: int) -> bool:
        return translator_ready(pid, self.clat.device)
