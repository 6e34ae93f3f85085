"""Which LXD cluster members run on this machine.

palmnet reaches most nodes from the machine it runs on (its init's namespaces
under /proc, hostpid.py), so it drives them only on members whose LXD daemon is a
process here: the machine's own LXD, or a member that is a container here (the
test cluster); a member elsewhere takes plain hosts only (far.py). A member is
here when some process named `lxd` counts, as its innermost pid, the `server_pid`
that member reports for itself (GET /1.0 with `target=MEMBER`), and that process's
network namespace holds the member's cluster address. The pid alone is not
enough: every nested LXD has a small pid in its own namespace, and two members
may report the same one.

This reads /proc only (comm, status, net/fib_trie, net/if_inet6 of a few `lxd`
processes): no packet is sent to the member.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable

from palmnet.backends.lxd.hostpid import nspid


def _local_ipv4(pid: str) -> set[str]:
    """The IPv4 addresses the process's network namespace holds (fib_trie's
    `/32 host LOCAL` leaves)."""
    out: set[str] = set()
    last = ""
    with open(f"/proc/{pid}/net/fib_trie") as f:
        for line in f:
            text = line.strip()
            if text.startswith("|--"):
                last = text[3:].strip()
            elif text == "/32 host LOCAL" and last:
                out.add(last)
    return out


def _local_ipv6(pid: str) -> set[str]:
    out: set[str] = set()
    try:
        with open(f"/proc/{pid}/net/if_inet6") as f:
            for line in f:
                raw = line.split()[0]
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except FileNotFoundError:  # IPv6 off in that namespace
        pass
    return out


def host_of(address: str) -> str:
    """'198.51.100.12:8443' / '[2001:db8::1]:8443' -> the address alone, normalised."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or "]" in address else address
    return str(ipaddress.ip_address(host.strip("[]")))


def lxd_here(server_pid: int, addresses: Iterable[str]) -> bool:
    """Whether the LXD that reports `server_pid` and listens on `addresses` (host:port)
    is a process on this machine."""
    wanted = set()
    for a in addresses:
        try:
            wanted.add(host_of(a))
        except ValueError:
            continue
    if not server_pid:
        return False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                if f.read().strip() != "lxd":
                    continue
            if nspid(entry.name)[-1:] != [server_pid]:
                continue
            if not wanted:  # a member with no cluster address: its pid is all there is
                return True
            if wanted & (_local_ipv4(entry.name) | _local_ipv6(entry.name)):
                return True
        except (OSError, ValueError):
            continue
    return False
