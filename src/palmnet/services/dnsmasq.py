"""dnsmasq: the router's DNS (every node's name) and its DHCPv4 / stateful DHCPv6.

OpenWrt's DNS and DHCP server, as on the field notes' router. It never sends
RAs here: radvd does (it answers every RS by unicast, dnsmasq's RA dropped most
on a big LAN, reference/node-notes.md), and radvd's M flag is what sends hosts
to dnsmasq's DHCPv6.

Everything it writes is under the adapter's own directory: /run and /var are
the host's, so the default /run/dnsmasq.pid and /var/lib/misc/dnsmasq.leases
would be shared by every node of every lab.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from palmnet.addressing.nat64 import IPV4ONLY_ADDRESSES, IPV4ONLY_NAME
from palmnet.kernel import userns
from palmnet.plan.model import DnsRecord, DnsServerPlan, LanService, NodePlan
from palmnet.services.base import Service

DNS_PORT = 53
HOSTS = "hosts"
DHCP_HOSTS = "dhcp-hosts"
SERVERS = "servers"

UDP_UNCONNECTED = "07"  # TCP_CLOSE in /proc/net/udp*: a bound, unconnected UDP socket
TCP_LISTEN = "0A"


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def owns_socket(pid: int, tables: Iterable[str], port: int, state: str) -> bool:
    """Whether `pid` holds a socket bound to `port` in `state` (e.g. udp6, 53, 07).

    /proc/PID/net/* lists the sockets of the process's own network namespace,
    so this works from outside the node; matching the socket inodes against
    the process's fds makes sure the socket is this daemon's, not a neighbour's
    in the same node.
    """
    inodes = _socket_inodes(pid)
    if not inodes:
        return False
    hex_port = f"{port:04X}"
    for table in tables:
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f, None)  # header
                for line in f:
                    fields = line.split()
                    local, st, inode = fields[1], fields[3], fields[9]
                    if local.rsplit(":", 1)[1] == hex_port and st == state and inode in inodes:
                        return True
        except OSError:
            continue
    return False


def dhcp_lans(node: NodePlan) -> list[LanService]:
    return [lan for lan in node.lans if lan.dhcp4_range or lan.dhcp6_range]


def _interfaces(node: NodePlan) -> list[str]:
    names = ["lo"]
    dns = node.dns.interfaces if node.dns else ()
    for name in (*dns, *(lan.interface for lan in dhcp_lans(node))):
        if name not in names:
            names.append(name)
    return names


def hosts_file(dns: DnsServerPlan) -> str:
    """The lab's names in hosts format (addn-hosts): A, AAAA and PTR answers.

    Not host-record= lines in the main config: dnsmasq re-reads this file on
    SIGHUP, its main config never, so a reconciled lab serves new names
    without a restart.
    """
    lines = ["# the lab's names, written by palmnet (re-read on SIGHUP)"]
    lines += [f"{record.address} {record.name}" for record in _by_name(dns)]
    if dns.port != DNS_PORT:
        # Behind a DNS64: the well-known name RFC 7050 discovery asks for (only A
        # records; the DNS64 in front synthesises its AAAA with the NAT64 prefix).
        lines += [f"{address} {IPV4ONLY_NAME}" for address in IPV4ONLY_ADDRESSES]
    return "\n".join(lines) + "\n"


def _by_name(dns: DnsServerPlan) -> list[DnsRecord]:
    """Records grouped by name, in first-seen order: one name's lines stay together."""
    groups: dict[str, list[DnsRecord]] = {}
    for record in dns.records:
        groups.setdefault(record.name, []).append(record)
    return [record for records in groups.values() for record in records]


def dhcp_hosts_file(node: NodePlan) -> str:
    """DHCP reservations (dhcp-hostsfile), so the leases are the planned ones:
    DHCPv4 by the client's MAC, DHCPv6 by its DUID (`id:`), each with its name."""
    lines = ["# reservations, written by palmnet (re-read on SIGHUP)"]
    for lan in dhcp_lans(node):
        lines += [f"{mac},{ip},{name}" for mac, ip, name in lan.hosts]
        lines += [f"id:{_colons(duid)},[{ip}],{name}" for duid, ip, name in lan.hosts6]
    return "\n".join(lines) + "\n"


def _colons(hexid: str) -> str:
    raw = hexid.replace(":", "")
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def servers_file(dns: DnsServerPlan) -> str:
    """Upstream servers (servers-file: re-read on SIGHUP), OpenWrt's `list server`."""
    lines = ["# upstream DNS, written by palmnet (re-read on SIGHUP)"]
    lines += [f"server={server}" for server in dns.upstream]
    return "\n".join(lines) + "\n"


def _dns_lines(dns: DnsServerPlan, directory: Path) -> list[str]:
    return [
        "# DNS: the lab's names answered here, the rest forwarded",
        f"domain={dns.domain}",
        f"local=/{dns.domain}/",  # a name of the lab that does not exist: NXDOMAIN, not forwarded
        "expand-hosts",
        f"addn-hosts={directory / HOSTS}",
        f"servers-file={directory / SERVERS}",
    ]


def _dhcp_lines(lan: LanService) -> list[str]:
    tag = lan.interface
    lines = [f"# DHCP on {lan.interface}"]
    if lan.dhcp4_range:
        start, end = lan.dhcp4_range
        lines.append(f"dhcp-range=set:{tag},{start},{end},{lan.lease_time}")
        if lan.dhcp4_router:
            lines.append(f"dhcp-option=tag:{tag},option:router,{lan.dhcp4_router}")
    if lan.dhcp6_range:
        start6, end6 = lan.dhcp6_range
        # Plain stateful range, no ra-* mode: radvd sends the RA (with the M flag).
        lines.append(f"dhcp-range=set:{tag},{start6},{end6},64,{lan.lease_time}")
        # DHCPv6 clients get the DNS the RA gives, not only dnsmasq's own address.
        if lan.rdnss:
            servers = ",".join(f"[{a}]" for a in lan.rdnss)
            lines.append(f"dhcp-option=tag:{tag},option6:dns-server,{servers}")
        if lan.dnssl:
            lines.append(f"dhcp-option=tag:{tag},option6:domain-search,{','.join(lan.dnssl)}")
    return lines


def render_dnsmasq_config(node: NodePlan, directory: Path, log: Path) -> str:
    """The main configuration: nothing from /etc (no-resolv, no-hosts)."""
    lines = [
        f"# dnsmasq for {node.name}, written by palmnet: DNS + DHCP, never RA (radvd)",
        "no-resolv",
        "no-hosts",
        # bind-dynamic: a socket per address, opened as addresses appear (SLAAC
        # on the LAN, a delegated prefix later), and only on the listed interfaces.
        "bind-dynamic",
        *(f"interface={name}" for name in _interfaces(node)),
        f"pid-file={directory / 'dnsmasq.pid'}",
        f"dhcp-leasefile={directory / 'dnsmasq.leases'}",
        f"log-facility={log}",
        # root: as `nobody` (its default) it still serves from the files it
        # opened first, but leaves its pid file behind at exit (seen).
        "user=root",
    ]
    if userns.single_mapping():
        # Its default group `dip` does not exist in a rootless lab's user namespace
        # with one mapped id ("failed to change group-id to dip"), nor may it call
        # setgroups() there: an empty group keeps it from changing groups at all.
        lines.append("group=")
    if node.dns is None:
        lines.append("port=0")  # DHCP only: no DNS, and no DNS server offered by DHCP
    else:
        lines += _dns_lines(node.dns, directory)
        if node.dns.port != DNS_PORT:
            lines += ["# behind the DNS64: unbound answers on 53", f"port={node.dns.port}"]
    lans = dhcp_lans(node)
    for lan in lans:
        lines += _dhcp_lines(lan)
    if lans:
        lines += [f"dhcp-hostsfile={directory / DHCP_HOSTS}", "log-dhcp", "dhcp-authoritative"]
    return "\n".join(lines) + "\n"


class Dnsmasq(Service):
    name: ClassVar[str] = "dnsmasq"
    executable: ClassVar[str] = "/usr/sbin/dnsmasq"
    package: ClassVar[str] = "dnsmasq-base"
    # SIGHUP re-reads the names, reservations and upstreams (their own files);
    # interfaces, ranges and options are in the main config: those need a restart.
    reloads: ClassVar[bool] = True

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.dns is not None or bool(dhcp_lans(node))

    @property
    def conf(self) -> Path:
        return self.dir / "dnsmasq.conf"

    @property
    def pid_file(self) -> Path:
        return self.dir / "dnsmasq.pid"

    @property
    def leases(self) -> Path:
        return self.dir / "dnsmasq.leases"

    def render(self) -> dict[Path, str]:
        files = {self.conf: render_dnsmasq_config(self.node, self.dir, self.log)}
        if self.node.dns is not None:
            files[self.dir / HOSTS] = hosts_file(self.node.dns)
            files[self.dir / SERVERS] = servers_file(self.node.dns)
        if dhcp_lans(self.node):
            files[self.dir / DHCP_HOSTS] = dhcp_hosts_file(self.node)
        return files

    def argv(self) -> list[str]:
        return [self.executable, "--keep-in-foreground", f"--conf-file={self.conf}"]

    def reloaded(self, log_offset: int) -> bool:
        """dnsmasq logs `read .../hosts - N names` once it has re-read the lab's names
        and then `read .../dhcp-hosts` once it has re-read the reservations."""
        read = [f"read {self.dir / HOSTS} "] if self.node.dns is not None else []
        if dhcp_lans(self.node):
            read.append(f"read {self.dir / DHCP_HOSTS}\n")
        if not read:
            return True
        try:
            with open(self.host_log, "rb") as f:
                f.seek(log_offset)
                tail = f.read().decode(errors="replace")
        except OSError:
            return False
        return all(line in tail for line in read)

    def ready(self, pid: int) -> bool:
        """Its DNS socket (or, DHCP only, a DHCP socket) is bound.

        The adapter cannot ask from inside the node, but /proc/PID/net shows
        the node's sockets: a bound port 53 means queries are answered.
        """
        if self.node.dns is not None:
            return owns_socket(pid, ("udp6", "udp"), self.node.dns.port, UDP_UNCONNECTED)
        lans = dhcp_lans(self.node)
        if any(lan.dhcp4_range for lan in lans):
            return owns_socket(pid, ("udp",), 67, UDP_UNCONNECTED)
        return owns_socket(pid, ("udp6",), 547, UDP_UNCONNECTED)
