"""httpd: palmnet's dual-stack web server on nodes with `service: http`.

The field notes' farm: every web node answers on port 80 over IPv4 and IPv6
from one `::` socket. It runs as `python -m palmnet.httpd` with the
node's way to run palmnet's modules (Service.python): the interpreter that runs
palmnet on a namespace node, a container's own python3 on LXD.

The served directory holds no index.html on purpose: the server's own node
page (name, the address that answered, the client's address) is the index,
which is what a lab wants to see. `node.txt` names the node for scripts.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import NodePlan
from palmnet.services.base import Service
from palmnet.services.dnsmasq import TCP_LISTEN, owns_socket

PORT = 80


def render_node_txt(node: NodePlan) -> str:
    lines = [f"node {node.name}", f"kind {node.kind}"]
    for iface in node.interfaces:
        if iface.master is None:
            lines += [f"{iface.name} {a}" for a in (*iface.ipv6, *iface.ipv4)]
    return "\n".join(lines) + "\n"


class Httpd(Service):
    name: ClassVar[str] = "httpd"
    executable: ClassVar[str] = sys.executable
    package: ClassVar[str] = "palmnet"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.service == "http"

    @property
    def root(self) -> Path:
        return self.dir / "www"

    @property
    def access_log(self) -> Path:
        return self.dir / "access.log"

    def render(self) -> dict[Path, str]:
        return {self.root / "node.txt": render_node_txt(self.node)}

    def argv(self) -> list[str]:
        return [
            *shlex.split(self.python),
            "-m",
            "palmnet.httpd",
            str(self.root),
            "--port",
            str(PORT),
            "--bind",
            "::",
            "--log",
            str(self.access_log),
            "--name",
            self.node.name,
        ]

    def ready(self, pid: int) -> bool:
        """Its port 80 socket listens (the log's "serving" line may be from a previous run)."""
        return owns_socket(pid, ("tcp6",), PORT, TCP_LISTEN)
