"""radvd: router advertisements on every interface with `ra: true`.

radvd, not dnsmasq: it answers every router solicitation by unicast, where
dnsmasq dropped most of them on a 500-host LAN (reference/node-notes.md).
Lifetimes are finite, so SLAAC addresses are dynamic (kernel_ra) as on a real
network; MinRtrAdvInterval cannot go below 3 s (radvd rejects it and then
silently stops advertising).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import NodePlan
from palmnet.services.base import Service

RA_TEMPLATE = """interface {ifname} {{
    AdvSendAdvert on;
    AdvRASolicitedUnicast on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    AdvDefaultLifetime 1800;
{prefixes}}};
"""

PREFIX_TEMPLATE = """    prefix {prefix} {{
        AdvOnLink on;
        AdvAutonomous on;
        AdvValidLifetime 86400;
        AdvPreferredLifetime 14400;
    }};
"""


def render_radvd_config(node: NodePlan) -> str:
    blocks = []
    for iface in node.interfaces:
        if not iface.ra_prefixes:
            continue
        prefixes = "".join(PREFIX_TEMPLATE.format(prefix=p) for p in iface.ra_prefixes)
        blocks.append(RA_TEMPLATE.format(ifname=iface.name, prefixes=prefixes))
    return f"# radvd for {node.name}, written by palmnet\n" + "\n".join(blocks)


class Radvd(Service):
    name: ClassVar[str] = "radvd"
    executable: ClassVar[str] = "/usr/sbin/radvd"
    package: ClassVar[str] = "radvd"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.sends_ra

    @property
    def conf(self) -> Path:
        return self.dir / "radvd.conf"

    def render(self) -> dict[Path, str]:
        return {self.conf: render_radvd_config(self.node)}

    def argv(self) -> list[str]:
        return [
            self.executable,
            "--nodaemon",
            "--config",
            str(self.conf),
            "--pidfile",
            str(self.dir / "radvd.pid"),
            "--logmethod",
            "logfile",
            "--logfile",
            str(self.log),
        ]

    def ready(self, pid: int) -> bool:
        """radvd sends an RA as soon as it has set up its interfaces."""
        try:
            with open(f"/proc/{pid}/net/snmp6") as f:
                for line in f:
                    if line.startswith("Icmp6OutRouterAdvertisements"):
                        return int(line.split()[1]) > 0
        except OSError:
            return False
        return False
