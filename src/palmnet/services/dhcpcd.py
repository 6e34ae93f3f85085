"""dhcpcd: a host's DHCPv4 / stateful DHCPv6 client, confined to its node.

dhcpcd's paths are compiled in, with no flag to move them: /run/dhcpcd (pid,
control sockets) and /var/lib/dhcpcd (DUID, leases). /run and /var are the
host's in every node, so two nodes would share one pid file and one DUID (the
server would see one client). `private_mounts()` maps them to directories of
its own; the backend bind-mounts those over them in the node's mount
namespace (reference/pd-notes.md), and render() seeds the DUID there.

What it must not do in a node:
- run dhcpcd-run-hooks: its 20-resolv.conf and 30-hostname would rewrite the
  resolver and hostname. `-c` points at our own hook, which only logs.
- take router advertisements from the kernel: with IPv6 RS on it sets
  accept_ra 0 and does SLAAC itself. `noipv6rs` leaves SLAAC to the kernel
  (stable EUI-64 addresses, DESIGN.md §2); DHCPv6 then starts from the config
  (`ia_na`) instead of from the RA's M flag, so the plan decides: `ia_na` on
  the interfaces whose LAN offers stateful DHCPv6 (managed or a DHCPv6 range).
- read /etc/dhcpcd.conf: `-f` gives it ours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import InterfacePlan, NodePlan, Plan
from palmnet.services.base import Service

HOOK = """#!/bin/sh
# dhcpcd hook for {node}, written by palmnet. It replaces dhcpcd-run-hooks, so
# no resolv.conf or hostname hook runs in the node: it only logs each event.
echo "$(date +%FT%T) $reason $interface ${{new_ip_address:-}}\
 ${{new_dhcp6_ia_na1_ia_addr1:-}}" >> {log}
"""


def duid_ll(mac: str) -> str:
    """DUID-LL (RFC 8415 §11.4) of an Ethernet MAC: type 3, hardware type 1.

    The plan derives MACs from (lab, node, interface), so this DUID is the
    same on every start and known before the lab starts, like the addresses.
    """
    return "00:03:00:01:" + mac.lower()


def offers(plan: Plan, network: str) -> tuple[bool, bool]:
    """(DHCPv4, stateful DHCPv6) offered on a lab network by any node's LAN service."""
    v4 = v6 = False
    for node in plan.nodes:
        for lan in node.lans:
            try:
                iface = node.interface(lan.interface)
            except KeyError:
                continue
            if iface.network != network:
                continue
            v4 = v4 or lan.dhcp4_range is not None
            v6 = v6 or lan.managed or lan.dhcp6_range is not None
    return v4, v6


class Dhcpcd(Service):
    name: ClassVar[str] = "dhcpcd"
    executable: ClassVar[str] = "/usr/sbin/dhcpcd"
    package: ClassVar[str] = "dhcpcd-base"

    private_dirs: ClassVar[dict[str, str]] = {"/run/dhcpcd": "run", "/var/lib/dhcpcd": "db"}
    """dhcpcd's compiled-in directories -> the name of the per-node one under self.dir."""

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return bool(node.dhcp_client)

    def private_mounts(self) -> dict[str, Path]:
        return {target: self.dir / leaf for target, leaf in self.private_dirs.items()}

    @property
    def conf(self) -> Path:
        return self.dir / "dhcpcd.conf"

    @property
    def hook(self) -> Path:
        """Executable: the backend gives `#!` files without a suffix mode 0755."""
        return self.dir / "hook"

    @property
    def hook_log(self) -> Path:
        return self.dir / "hook.log"

    def interfaces(self) -> list[InterfacePlan]:
        return [self.node.interface(name) for name in self.node.dhcp_client]

    def wants(self, iface: InterfacePlan) -> tuple[bool, bool]:
        """(DHCPv4, DHCPv6) on one interface, from what its network offers.

        When the plan knows no server on the network (an external one, later),
        DHCPv4 is asked for: the common case, and harmless when unanswered.
        """
        four, six = offers(self.plan, iface.network)
        return four or not six, six

    def families(self) -> tuple[bool, bool]:
        """(DHCPv4, DHCPv6) over all client interfaces: decides -4 / -6."""
        wants = [self.wants(iface) for iface in self.interfaces()]
        return any(w[0] for w in wants), any(w[1] for w in wants)

    def render_config(self) -> str:
        lines = [
            f"# dhcpcd for {self.node.name}, written by palmnet",
            f"allowinterfaces {' '.join(self.node.dhcp_client)}",
            "noipv4ll",  # no 169.254/16 fallback: a missing lease should show as missing
            "noipv6rs",  # the kernel takes the RAs (SLAAC, default route)
            # DHCPv4 client id = the MAC, as most clients send: the server's
            # reservations are by MAC. DHCPv6 uses the DUID from /var/lib/dhcpcd.
            "clientid",
            "hostname",  # send the node's name (its UTS hostname)
        ]
        if not self.node.dad:
            # The ARP probe is DHCPv4's DAD (~4 s before the address is used);
            # a lab that skips IPv6 DAD for speed skips this one too.
            lines.append("noarp")
        for iface in self.interfaces():
            four, six = self.wants(iface)
            if six:
                # Forced IA: with noipv6rs, DHCPv6 starts from this, not from the M flag.
                lines += [f"interface {iface.name}", "    ia_na 1"]
                if not four:
                    lines.append("    ipv6only")
        return "\n".join(lines) + "\n"

    def render(self) -> dict[Path, str]:
        first = self.interfaces()[0]
        return {
            self.conf: self.render_config(),
            self.hook: HOOK.format(node=self.node.name, log=self.hook_log),
            self.private_mounts()["/var/lib/dhcpcd"] / "duid": duid_ll(first.mac) + "\n",
        }

    def argv(self) -> list[str]:
        v4, v6 = self.families()
        family = [] if v4 and v6 else ["-4"] if v4 else ["-6"]
        return [
            self.executable,
            "--nobackground",
            "-q",  # stderr goes to the same file as -j: without -q every line came twice
            "-f",
            str(self.conf),
            "-c",
            str(self.hook),
            "-j",
            str(self.log),
            *family,
            *self.node.dhcp_client,
        ]

    def ready(self, pid: int) -> bool:
        """Alive. The lease itself is the backend's to wait for: the planned
        `ipv4_dhcp` address arrives on netlink like any other address."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
