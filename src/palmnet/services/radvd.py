"""radvd: router advertisements on every interface with `ra: true`.

radvd, not dnsmasq: it answers every router solicitation by unicast, where
dnsmasq dropped most of them on a 500-host LAN (reference/node-notes.md).
Lifetimes are finite, so SLAAC addresses are dynamic (kernel_ra) as on a real
network; MinRtrAdvInterval cannot go below 3 s (radvd rejects it and then
silently stops advertising).

Where the node serves a LAN (`NodePlan.lans`), the RA also carries what that
LAN offers: RDNSS and DNSSL (read by rdnssd on the hosts) and the M and O
flags (stateful DHCPv6 from dnsmasq). A LAN with `ra: False` gets no RA at all.

A LAN whose prefix comes from prefix delegation (`ipv6_delegated`) starts
without it: the router does not hold it yet. The PD client's hook
(pd/hook.py) renders this same config again with the delegated /64 when the
lease arrives and sends radvd SIGHUP (radvd answers a reload with an RA at
once, measured). So the hook needs what the plan knew: `ra_spec()` is that,
as JSON-able data, and `render_ra()` turns it plus the delegated prefixes
into radvd.conf for both.

Lifetimes of delegated prefixes (measured on radvd 2.19 and the kernel):
- the current one carries the lease's preferred/valid lifetimes with
  DecrementLifetimes, so an RA never promises more than the lease has left;
  each renewal renders it again with fresh values.
- a replaced one is announced with preferred 0 AND valid 0. Preferred 0
  deprecates the hosts' addresses at once. Valid 0 is deliberate: RFC 4862
  5.5.3e keeps a host's remaining valid lifetime when the received one is
  shorter (and under 2 h), so the addresses go when the old lease's lifetime
  runs out. A fixed "remaining" value would instead be taken as an extension
  by every RA after the first (5.5.3e takes a received lifetime longer than
  the remaining one), and radvd's DecrementLifetimes stops sending a prefix
  whose preferred lifetime is 0 at all. RFC 9096 announces stale prefixes
  with both lifetimes 0 for the same reason.
- the router's address in a replaced one is gone (dhcpcd drops it with the old
  lease), so where it was a DNS server it is announced again with RDNSS
  lifetime 0: rdnssd removes it at once. Left out, it stayed in the hosts'
  resolv.conf for the RDNSS lifetime, sometimes first (rdnssd orders by
  expiry, to the second), and every lookup waited 5 s on it (measured in
  test_pd's renumbering on LXD, 2 runs in 5).
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from palmnet.kernel import sockbuf
from palmnet.plan.model import InterfacePlan, LanService, NodePlan
from palmnet.services.base import Service

RS_BURST_BUFFER = 512 << 10
"""Bytes of receive buffer for radvd's ICMPv6 socket. A LAN's hosts (up to 1,023,
a bridge's port limit) each solicit once within about a second as they come up:
the default 208 KiB dropped 111 of 1,000 RSs (the drops column of /proc/net/raw6)
and those hosts waited a second for their next one; 512 KiB dropped none (1,000
RSs, 1,000 RAs). Not more: where radvd answers slower than waiting hosts solicit
again (five 1,000-host LANs on 2 busy cores), a deeper queue only holds stale
duplicates and delays every answer: with 4 MiB that lab's addresses took 53 s
after its last host came up, 17 s with the default."""

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
STATIC_VALID = 86400
STATIC_PREFERRED = 14400

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
        AdvAutonomous {autonomous};
        AdvValidLifetime {valid};
        AdvPreferredLifetime {preferred};
{extra}    }};
"""

RDNSS_TEMPLATE = """    RDNSS {addresses} {{
        AdvRDNSSLifetime {lifetime};
    }};
"""

DNSSL_TEMPLATE = """    DNSSL {domains} {{
        AdvDNSSLLifetime {lifetime};
    }};
"""


@dataclass(frozen=True)
class RaInterface:
    """What one interface advertises, apart from delegated prefixes (JSON-able)."""

    ifname: str
    managed: bool = False
    other: bool = False
    autonomous: bool = True  # the prefixes' A flag: off for a DHCPv6-only LAN
    prefixes: tuple[str, ...] = ()  # static /64s
    rdnss: tuple[str, ...] = ()  # static DNS servers
    dnssl: tuple[str, ...] = ()
    delegated: bool = False  # the PD client adds this LAN's delegated /64
    rdnss_delegated: bool = False  # ... and its address there as a DNS server

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RaInterface:
        return cls(
            ifname=str(data["ifname"]),
            managed=bool(data.get("managed")),
            other=bool(data.get("other")),
            autonomous=bool(data.get("autonomous", True)),
            prefixes=tuple(data.get("prefixes", ())),
            rdnss=tuple(data.get("rdnss", ())),
            dnssl=tuple(data.get("dnssl", ())),
            delegated=bool(data.get("delegated")),
            rdnss_delegated=bool(data.get("rdnss_delegated")),
        )

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DelegatedPrefix:
    """A delegated /64 on a LAN: current (lease lifetimes) or stale (deprecated)."""

    prefix: str
    preferred: int = 0
    valid: int = 0
    stale: bool = False
    router: str | None = None  # the router's own address in it (an RDNSS when current)


def advertised(node: NodePlan) -> list[tuple[InterfacePlan, LanService | None]]:
    """Interfaces that send RAs, each with the LAN service it carries (if any)."""
    lans = {lan.interface: lan for lan in node.lans}
    out = []
    for iface in node.interfaces:
        lan = lans.get(iface.name)
        if iface.ra_prefixes and (lan is None or lan.ra):
            out.append((iface, lan))
    return out


def ra_spec(node: NodePlan) -> list[RaInterface]:
    """The node's RA interfaces without what prefix delegation brings."""
    # LANs that take a share of the delegation, even one the plan could not fill
    # (an exhausted pool): the hook announces whatever a later lease brings.
    assigned = {a.interface for a in node.pd_client.assignments} if node.pd_client else set()
    out = []
    for iface, lan in advertised(node):
        delegated_nets = {a.network for a in iface.ipv6_delegated}
        delegated_ips = {a.ip for a in iface.ipv6_delegated}
        rdnss = lan.rdnss if lan is not None else ()
        takes = bool(delegated_nets) or iface.name in assigned
        out.append(
            RaInterface(
                ifname=iface.name,
                managed=bool(lan and lan.managed),
                other=bool(lan and lan.other),
                autonomous=lan is None or lan.slaac,
                prefixes=tuple(str(p) for p in iface.ra_prefixes if p not in delegated_nets),
                rdnss=tuple(str(a) for a in rdnss if a not in delegated_ips),
                dnssl=tuple(lan.dnssl) if lan is not None else (),
                delegated=takes,
                rdnss_delegated=takes
                and bool(rdnss)
                and (bool(delegated_ips & set(rdnss)) or not delegated_ips),
            )
        )
    return out


def _flags(spec: RaInterface) -> str:
    lines = []
    if spec.managed:
        lines.append("    AdvManagedFlag on;\n")
    if spec.other:
        lines.append("    AdvOtherConfigFlag on;\n")
    return "".join(lines)


def _dns_options(
    servers: list[str], domains: tuple[str, ...], gone: list[str] | None = None
) -> str:
    """RDNSS and DNSSL; `gone`: servers the router no longer holds, sent with lifetime 0
    (RFC 8106 §5.1: the hosts drop them at once instead of asking them until they age
    out: rdnssd sorts them by expiry, so one could stay first in resolv.conf)."""
    blocks = []
    for listed, lifetime in ((servers, DNS_LIFETIME), (gone or [], 0)):
        for i in range(0, len(listed), RDNSS_PER_OPTION):
            chunk = " ".join(listed[i : i + RDNSS_PER_OPTION])
            blocks.append(RDNSS_TEMPLATE.format(addresses=chunk, lifetime=lifetime))
    if domains:
        blocks.append(DNSSL_TEMPLATE.format(domains=" ".join(domains), lifetime=DNS_LIFETIME))
    return "".join(blocks)


def _prefix_block(
    prefix: str, valid: int, preferred: int, autonomous: bool, decrement: bool = False
) -> str:
    extra = "        DecrementLifetimes on;\n" if decrement else ""
    return PREFIX_TEMPLATE.format(
        prefix=prefix,
        autonomous="on" if autonomous else "off",
        valid=valid,
        preferred=preferred,
        extra=extra,
    )


def render_ra(
    node_name: str,
    spec: list[RaInterface],
    delegated: dict[str, list[DelegatedPrefix]] | None = None,
) -> str:
    """radvd.conf: the static part of each interface plus its delegated prefixes."""
    delegated = delegated or {}
    blocks = []
    for iface in spec:
        mine = delegated.get(iface.ifname, []) if iface.delegated else []
        current = [d for d in mine if not d.stale]
        stale = [d for d in mine if d.stale]
        auto = iface.autonomous
        prefixes = "".join(
            [
                *(
                    _prefix_block(d.prefix, max(d.valid, d.preferred), d.preferred, auto, True)
                    for d in current
                ),
                *(_prefix_block(p, STATIC_VALID, STATIC_PREFERRED, auto) for p in iface.prefixes),
                *(_prefix_block(d.prefix, 0, 0, auto) for d in stale),
            ]
        )
        servers = [d.router for d in current if d.router] if iface.rdnss_delegated else []
        gone = (
            [router_address(ipaddress.IPv6Network(d.prefix)) for d in stale]
            if iface.rdnss_delegated
            else []
        )
        blocks.append(
            RA_TEMPLATE.format(
                ifname=iface.ifname,
                min_interval=MIN_RA_INTERVAL,
                max_interval=MAX_RA_INTERVAL,
                flags=_flags(iface),
                prefixes=prefixes,
                dns=_dns_options([*servers, *iface.rdnss], iface.dnssl, gone),
            )
        )
    return f"# radvd for {node_name}, written by palmnet\n" + "\n".join(blocks)


def render_radvd_config(node: NodePlan) -> str:
    """The config radvd starts with (delegated prefixes come later, from the PD hook)."""
    return render_ra(node.name, ra_spec(node))


def router_address(lan: ipaddress.IPv6Network) -> str:
    """The router's own address in a delegated LAN /64 (OpenWrt's ::1)."""
    return str(lan.network_address + 1)


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

    @property
    def pid_file(self) -> Path:
        return self.dir / "radvd.pid"

    def render(self) -> dict[Path, str]:
        return {self.conf: render_radvd_config(self.node)}

    def argv(self) -> list[str]:
        return [
            self.executable,
            "--nodaemon",
            "--config",
            str(self.conf),
            "--pidfile",
            str(self.pid_file),
            "--logmethod",
            "logfile",
            "--logfile",
            str(self.log),
        ]

    def ready(self, pid: int) -> bool:
        """radvd sends an RA as soon as it has set up its interfaces. Ready, its
        socket gets room for a LAN's burst of router solicitations (kernel/sockbuf.py)
        before any host comes up."""
        try:
            with open(f"/proc/{pid}/net/snmp6") as f:
                for line in f:
                    if line.startswith("Icmp6OutRouterAdvertisements"):
                        if int(line.split()[1]) == 0:
                            return False
                        self._enlarge_socket(pid)
                        return True
        except OSError:
            return False
        return False

    @staticmethod
    def _enlarge_socket(pid: int) -> None:
        # Best effort: where the process cannot be reached (no pidfd_getfd, another
        # user's process), a host whose RS is dropped solicits again a second later.
        with contextlib.suppress(OSError):
            sockbuf.force_rcvbuf(pid, RS_BURST_BUFFER, sockbuf.is_icmpv6_raw)
