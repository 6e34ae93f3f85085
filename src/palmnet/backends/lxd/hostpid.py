"""A container's init as this machine sees it, wherever its LXD runs here.

palmnet reaches a node from the host through its init's namespaces
(/proc/PID/ns/net, /proc/PID/root). LXD reports that pid in its own pid
namespace: the host's for an LXD on the machine, but an LXD cluster member that
is itself a container on this machine (the test cluster, scripts/lxd-test-cluster.sh)
counts in the member's namespace (NSpid 24069 158 1: host, member, container). The
host's pid is found by the container's cgroup, which LXC names
`lxc.payload.INSTANCE` at every level of nesting, and by NSpid: the process
whose next-to-last NSpid is the reported pid and whose last is 1 (the init).

One pass over /proc indexes every nested container init (a few reads per
process, the cgroup file only for inits), kept until a lookup misses: `ls` of a
100-node lab is one pass, not a hundred.

A member on another machine has no such process here: `host_init` returns 0 and
the caller says that palmnet must run on the machine that holds the node.
"""

from __future__ import annotations

import os

_index: dict[tuple[str, int], int] = {}  # (instance, pid its LXD reports) -> host pid


def nspid(pid: str) -> list[int]:
    """A process's pid in each pid namespace it is in, outermost first (NSpid)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def _payloads(pid: str) -> set[str]:
    """The instance a process runs in, from its cgroup paths: the innermost
    `lxc.payload.NAME` (a nested one sits under its member's)."""
    out = set()
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)[-1].split("/")
            names = [p.removeprefix("lxc.payload.") for p in parts if p.startswith("lxc.payload.")]
            if names:
                out.add(names[-1])
    return out


def _rebuild() -> None:
    _index.clear()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = nspid(entry.name)
            if len(ns) >= 3 and ns[-1] == 1:
                for name in _payloads(entry.name):
                    _index[(name, ns[-2])] = int(entry.name)
        except (OSError, ValueError):
            continue


def _still(pid: int, instance: str, reported: int) -> bool:
    try:
        return nspid(str(pid))[-2:] == [reported, 1] and instance in _payloads(str(pid))
    except (OSError, ValueError):
        return False


def host_init(instance: str, reported: int) -> int:
    """The host pid of `instance`'s init, which its LXD reports as `reported`; 0 if
    that process is not on this machine."""
    if not reported:
        return 0
    try:
        if instance in _payloads(str(reported)) and nspid(str(reported))[-1:] == [1]:
            return reported  # an LXD in the host's pid namespace
    except (OSError, ValueError):
        pass
    key = (instance, reported)
    if key in _index and _still(_index[key], instance, reported):
        return _index[key]
    _rebuild()
    return _index.get(key, 0)
