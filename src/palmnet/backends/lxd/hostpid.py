"""A container's init as this machine sees it, wherever its LXD runs here.

palmnet reaches a node from the host through its init's namespaces
(/proc/PID/ns/net, /proc/PID/root). LXD reports that pid in its own pid
namespace: the host's for an LXD on the machine, but an LXD cluster member that
is itself a container on this machine (the test cluster, scripts/lxd-test-cluster.sh)
counts in the member's namespace (NSpid 24069 158 1: host, member, container). The
host's pid is found by the container's cgroup, which LXC names
`lxc.payload.INSTANCE` at every level of nesting, and by NSpid: the process
whose next-to-last NSpid is the reported pid and whose last is 1 (the init).

A member on another machine has no such process here: `host_init` returns 0 and
the caller says that palmnet must run on the machine that holds the node.
"""

from __future__ import annotations

import os


def _nspid(pid: str) -> list[int]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def _in_payload(pid: str, instance: str) -> bool:
    mark = f"lxc.payload.{instance}"
    with open(f"/proc/{pid}/cgroup") as f:
        return any(mark in line.rstrip("\n").split(":", 2)[-1].split("/") for line in f)


def host_init(instance: str, reported: int) -> int:
    """The host pid of `instance`'s init, which its LXD reports as `reported`; 0 if
    that process is not on this machine."""
    if not reported:
        return 0
    try:
        if _in_payload(str(reported), instance) and _nspid(str(reported))[-1:] == [1]:
            return reported  # an LXD in the host's pid namespace
    except (OSError, ValueError):
        pass
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = _nspid(entry.name)
            if ns[-2:] == [reported, 1] and len(ns) >= 3 and _in_payload(entry.name, instance):
                return int(entry.name)
        except (OSError, ValueError):
            continue
    return 0
