"""unbound: the DNS64 (RFC 6147) in front of a NAT64 router's lab DNS.

A network behind a `nat64` router learns its resolver from the router's RA
(RDNSS): the router's own LAN address, port 53. On such a router unbound
answers there, with `module-config: "dns64 iterator"`: a AAAA question whose
name has none gets AAAA records synthesised from its A records with the NAT64
prefix. Everything else is forwarded to the router's dnsmasq, which still
holds the lab's names (and `ipv4only.arpa`'s A records, so RFC 7050 discovery
works) on port 5353 of the node's loopback. Unbound 1.17.1 from Debian has the
dns64 module (reference/platform-notes.md).

Wildcard sockets with `interface-automatic`, so an answer leaves from the
address the question came to, whatever addresses the LAN gains later (SLAAC,
a delegated prefix). Unbound's default local zones would answer the lab's
reverse names (documentation and ULA prefixes, RFC 1918) with NXDOMAIN
itself: those are handed to dnsmasq too (`nodefault`, `unblock-lan-zones`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import NodePlan
from palmnet.services.base import Service
from palmnet.services.dnsmasq import UDP_UNCONNECTED, owns_socket

# Reverse zones of the documentation prefixes labs use, which unbound serves
# empty by default (RFC 6303 and its own list).
LAB_REVERSE_ZONES = (
    "8.b.d.0.1.0.0.2.ip6.arpa.",
    "2.0.192.in-addr.arpa.",
    "100.51.198.in-addr.arpa.",
    "113.0.203.in-addr.arpa.",
    "d.f.ip6.arpa.",
)


def wants_dns64(node: NodePlan) -> bool:
    return node.nat64 is not None and node.nat64.dns64 and node.dns is not None


def render_unbound_config(node: NodePlan, directory: Path, log: Path) -> str:
    assert node.nat64 is not None and node.dns is not None
    lines = [
        f"# unbound for {node.name}, written by palmnet: DNS64 in front of dnsmasq",
        "server:",
        f'    directory: "{directory}"',
        '    chroot: ""',
        '    username: ""',
        f'    pidfile: "{directory / "unbound.pid"}"',
        f'    logfile: "{log}"',
        "    use-syslog: no",
        "    do-daemonize: no",
        "    verbosity: 1",
        "    interface: 0.0.0.0",
        "    interface: ::0",
        "    interface-automatic: yes",
        "    port: 53",
        "    access-control: 0.0.0.0/0 allow",
        "    access-control: ::/0 allow",
        '    module-config: "dns64 iterator"',
        f"    dns64-prefix: {node.nat64.prefix}",
        "    do-not-query-localhost: no",
        "    unblock-lan-zones: yes",
        "    insecure-lan-zones: yes",
        *(f'    local-zone: "{zone}" nodefault' for zone in LAB_REVERSE_ZONES),
        "    # a lab changes its names at reconcile: keep answers short-lived",
        "    cache-max-ttl: 30",
        "    cache-max-negative-ttl: 5",
        "",
        "remote-control:",
        "    control-enable: no",
        "",
        "forward-zone:",
        '    name: "."',
        f"    forward-addr: 127.0.0.1@{node.dns.port}",
        f"    forward-addr: ::1@{node.dns.port}",
    ]
    return "\n".join(lines) + "\n"


class Unbound(Service):
    name: ClassVar[str] = "unbound"
    executable: ClassVar[str] = "/usr/sbin/unbound"
    package: ClassVar[str] = "unbound"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return wants_dns64(node)

    @property
    def conf(self) -> Path:
        return self.dir / "unbound.conf"

    @property
    def pid_file(self) -> Path:
        return self.dir / "unbound.pid"

    def render(self) -> dict[Path, str]:
        return {self.conf: render_unbound_config(self.node, self.dir, self.log)}

    def argv(self) -> list[str]:
        return [self.executable, "-d", "-c", str(self.conf)]

    def ready(self, pid: int) -> bool:
        """Its port 53 socket is bound: questions are answered."""
        return owns_socket(pid, ("udp6", "udp"), 53, UDP_UNCONNECTED)
