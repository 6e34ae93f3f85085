"""Nodes on a cluster member on another machine, driven through LXD's API alone.

palmnet configures most nodes from the machine it runs on, standing in their
namespaces through /proc (inside.py). A member on another machine offers no such
door: LXD's API reaches its instances (create, start, files, exec) but not their
kernel. A node whose whole set-up fits that API runs there all the same: one that
routes nothing and runs no daemon, no firewall, no docker and no bridge inside
it, which is what a lab's plain hosts are (palmnet's busybox image). Its sysctls
are LXC's (`linux.sysctl.*`, written at its start: instances.py), its /etc files
are pushed, its static addresses and routes are `ip` commands run inside it.

Its readiness is read from its own kernel by a loop run inside it: the node's
address events reach only a netlink socket in its namespace, and its image has no
program that listens to them, so that loop reads /proc/net/if_inet6 every 50 ms,
bounded by the address watch's deadline, and `up` fails naming the addresses still
missing (or the one that failed DAD). `ls` reads such a node's addresses from LXD
(the instance's state).

What needs the node's namespaces from this machine (link impairments on its
ports, the toolbox verbs that stand in a node) says that it runs elsewhere.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from palmnet.backends.base import LiveNode
from palmnet.backends.live import live_interfaces
from palmnet.backends.lxd import inside
from palmnet.backends.lxd.client import Lxd
from palmnet.backends.lxd.instances import is_router
from palmnet.errors import LabError
from palmnet.kernel.dump import Link
from palmnet.kernel.watch import IFA_F_DADFAILED, IFA_F_TENTATIVE
from palmnet.plan.guard import guard_ruleset
from palmnet.plan.model import NodePlan, Plan
from palmnet.services.registry import services_for

POLL = 0.05  # seconds between two reads of the node's /proc/net/if_inet6
WAIT_WORKERS = 32  # far nodes waited for at once (each an exec that mostly sleeps)


def why_not(plan: Plan, node: NodePlan) -> str | None:
    """Why `node` cannot run on a member on another machine (None: it can)."""
    if is_router(node):
        return "it routes (forwarding or RAs)"
    daemons = [cls.name for cls in services_for(node)]
    if daemons:
        return f"it runs {', '.join(daemons)}"
    if node.docker is not None:
        return "it runs docker"
    if node.uci:
        return "it has a firewall"
    if any(i.kind == "bridge" for i in node.interfaces):
        return "it has a bridge inside"
    if guard_ruleset(plan.lab, node) is not None:
        return "it is on an external network (its guard is a firewall)"
    return None


def _ip_commands(node: NodePlan) -> list[str]:
    out = []
    for iface in node.interfaces:
        for a6 in iface.ipv6_static:
            out.append(f"ip -6 addr add {a6} dev {iface.name}")
        for a4 in iface.ipv4_static:
            out.append(f"ip -4 addr add {a4} dev {iface.name}")
    return out


def _route_commands(node: NodePlan) -> list[str]:
    out = []
    for route in node.routes:
        family = "-6" if route.to.version == 6 else "-4"
        if route.kind == "unreachable":
            out.append(f"ip {family} route replace unreachable {route.to} proto 4")
        else:
            out.append(
                f"ip {family} route replace {route.to} via {route.via} dev {route.dev} proto 4"
            )
    return out


def _run_all(lxd: Lxd, instance: str, commands: Sequence[str]) -> None:
    if commands:
        inside.check(lxd, instance, ["sh", "-ec", "; ".join(commands)])


def configure(lxd: Lxd, instance: str, node: NodePlan) -> None:
    """Static addresses (the node's own `ip`, busybox's in palmnet's host image)."""
    _run_all(lxd, instance, _ip_commands(node))


def configure_routes(lxd: Lxd, instance: str, node: NodePlan) -> None:
    _run_all(lxd, instance, _route_commands(node))


def wait_script(addresses: Sequence[str], timeout: float) -> str:
    """A POSIX sh loop (busybox's) that exits 0 once every IPv6 address in `addresses`
    is in the node's /proc/net/if_inet6 and out of DAD, 2 at once if one failed DAD,
    1 after `timeout`; on 1 and 2 it prints the file, for the message."""
    hexes = [ipaddress.IPv6Address(a.split("/")[0]).exploded.replace(":", "") for a in addresses]
    rounds = max(1, int(timeout / POLL))
    return f"""
want={shlex.quote(" ".join(hexes))}
n=0
while :; do
  ok=1
  for a in $want; do
    line=$(grep "^$a " /proc/net/if_inet6) || {{ ok=0; break; }}
    set -- $line
    if [ $(( 0x$5 & {IFA_F_DADFAILED} )) -ne 0 ]; then cat /proc/net/if_inet6; exit 2; fi
    if [ $(( 0x$5 & {IFA_F_TENTATIVE} )) -ne 0 ]; then ok=0; break; fi
  done
  [ $ok = 1 ] && exit 0
  n=$((n + 1))
  if [ $n -ge {rounds} ]; then cat /proc/net/if_inet6; exit 1; fi
  sleep {POLL}
done
"""


def _held(text: str) -> set[str]:
    """The addresses a /proc/net/if_inet6 text holds, out of DAD."""
    out = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and not int(fields[4], 16) & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
            out.add(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return out


def wait_addresses(
    lxd: Lxd, wanted: Mapping[str, tuple[str, Sequence[str]]], timeout: float
) -> None:
    """Every planned IPv6 address of each far node present and out of DAD
    (instance -> (node name, addresses)); LabError naming what is missing."""

    def one(instance: str) -> str | None:
        node, addresses = wanted[instance]
        v6 = [a for a in addresses if ipaddress.ip_interface(a).version == 6]
        if not v6:
            return None
        proc = inside.run(lxd, instance, ["sh", "-c", wait_script(v6, timeout)], None, timeout + 30)
        if proc.returncode == 0:
            return None
        missing = sorted({a.split("/")[0] for a in v6} - _held(proc.stdout))
        if proc.returncode == 2:
            return f"{node}: an address failed DAD (a duplicate on its link): {', '.join(missing)}"
        return f"{node}: no {', '.join(missing)} after {timeout:g} s"

    if not wanted:
        return
    with ThreadPoolExecutor(max_workers=min(WAIT_WORKERS, len(wanted))) as pool:
        problems = [p for p in pool.map(one, sorted(wanted)) if p]
    if problems:
        raise LabError("addresses not ready on another member: " + "; ".join(problems))


def observe(node: NodePlan, state: Mapping[str, Any], member: str) -> LiveNode:
    """A running far node's links and addresses as LXD reports them. LXD reports no
    address flags: an address still in DAD is shown as held."""
    links: dict[int, Link] = {}
    for index, (name, net) in enumerate(sorted((state.get("network") or {}).items()), 1):
        link = Link(index, name, str(net.get("hwaddr") or ""), net.get("state") == "up")
        for a in net.get("addresses") or ():
            family = socket.AF_INET6 if a.get("family") == "inet6" else socket.AF_INET
            link.addresses.append((family, str(a["address"]), int(a["netmask"]), 0))
        links[index] = link
    return LiveNode(node.name, node.kind, "RUNNING", live_interfaces(node, links), member=member)
