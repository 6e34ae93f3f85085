"""radvd: router advertisements on every interface with `ra: true`.

radvd, not dnsmasq: it answers every router solicitation by unicast, where
dnsmasq dropped most of them on a 500-host LAN (reference/node-notes.md).
Lifetimes are finite, so SLAAC addresses are dynamic (kernel_ra) as on a real
network; MinRtrAdvInterval cannot go below 3 s (radvd rejects it and then
silently stops advertising).

Where the node serves a LAN (`NodePlan.lans`), the RA also carries what that
LAN offers: RDNSS and DNSSL (read by rdnssd on the hosts) and the M and O
flags (stateful DHCPv6 from dnsmasq). A LAN with `ra: False` gets no RA at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import InterfacePlan, LanService, NodePlan
from palmnet.services.base import Service

MIN_RA_INTERVAL = 3  # radvd's floor (MinDelayBetweenRAs); below it, it stops advertising
MAX_RA_INTERVAL = 10

DNS_LIFETIME = 3 * MAX_RA_INTERVAL
"""RDNSS/DNSSL lifetime, always written out.

radvd 2.19 otherwise sends MaxRtrAdvInterval (10 s, measured, although its man
page says 2x), so one lost RA makes rdnssd drop the server. RFC 8106 §5.1 asks
for at least 3 x MaxRtrAdvInterval; radvd's man page (written for RFC 6106)
suggests at most 2x so that a removed server ages out quickly. 3x keeps DNS
through two lost RAs and still forgets a dead router within 30 s.
"""

RDNSS_PER_OPTION = 3  # radvd's grammar: `RDNSS ip [ip] [ip] { ... };`

RA_TEMPLATE = """interface {ifname} {{
    AdvSendAdvert on;
    AdvRASolicitedUnicast on;
    MinRtrAdvInterval {min_interval};
    MaxRtrAdvInterval {max_interval};
    AdvDefaultLifetime 1800;
{flags}{prefixes}{dns}}};
"""

PREFIX_TEMPLATE = """    prefix {prefix} {{
        AdvOnLink on;
        AdvAutonomous on;
        AdvValidLifetime 86400;
        AdvPreferredLifetime 14400;
    }};
"""

RDNSS_TEMPLATE = """    RDNSS {addresses} {{
        AdvRDNSSLifetime {lifetime};
    }};
"""

DNSSL_TEMPLATE = """    DNSSL {domains} {{
        AdvDNSSLLifetime {lifetime};
    }};
"""


def advertised(node: NodePlan) -> list[tuple[InterfacePlan, LanService | None]]:
    """Interfaces that send RAs, each with the LAN service it carries (if any)."""
    lans = {lan.interface: lan for lan in node.lans}
    out = []
    for iface in node.interfaces:
        lan = lans.get(iface.name)
        if iface.ra_prefixes and (lan is None or lan.ra):
            out.append((iface, lan))
    return out


def _flags(lan: LanService | None) -> str:
    if lan is None:
        return ""
    lines = []
    if lan.managed:
        lines.append("    AdvManagedFlag on;\n")
    if lan.other:
        lines.append("    AdvOtherConfigFlag on;\n")
    return "".join(lines)


def _dns_options(lan: LanService | None) -> str:
    if lan is None:
        return ""
    blocks = []
    servers = [str(a) for a in lan.rdnss]
    for i in range(0, len(servers), RDNSS_PER_OPTION):
        chunk = " ".join(servers[i : i + RDNSS_PER_OPTION])
        blocks.append(RDNSS_TEMPLATE.format(addresses=chunk, lifetime=DNS_LIFETIME))
    if lan.dnssl:
        domains = " ".join(lan.dnssl)
        blocks.append(DNSSL_TEMPLATE.format(domains=domains, lifetime=DNS_LIFETIME))
    return "".join(blocks)


def render_radvd_config(node: NodePlan) -> str:
    blocks = []
    for iface, lan in advertised(node):
        prefixes = "".join(PREFIX_TEMPLATE.format(prefix=p) for p in iface.ra_prefixes)
        blocks.append(
            RA_TEMPLATE.format(
                ifname=iface.name,
                min_interval=MIN_RA_INTERVAL,
                max_interval=MAX_RA_INTERVAL,
                flags=_flags(lan),
                prefixes=prefixes,
                dns=_dns_options(lan),
            )
        )
    return f"# radvd for {node.name}, written by palmnet\n" + "\n".join(blocks)


class Radvd(Service):
    name: ClassVar[str] = "radvd"
    executable: ClassVar[str] = "/usr/sbin/radvd"
    package: ClassVar[str] = "radvd"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        """Any interface left to advertise: radvd refuses an empty config."""
        return bool(advertised(node))

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
