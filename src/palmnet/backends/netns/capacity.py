"""What a namespace lab needs of the machine, checked before `up` makes anything.

Two limits would otherwise be hit halfway through a large bring-up, as a kernel
error after hundreds of namespaces exist: the open-file limit (a node holds
FDS_PER_NODE descriptors while it comes up; the soft limit is raised up to the
hard one, which a process cannot pass) and memory. The bridge port limit is a
property of the lab file, refused by `plan` (topology/ports.py); the neighbour
table has its warning and `--raise-neigh-limit` (lab/host.py).
"""

from __future__ import annotations

import resource
from pathlib import Path

from palmnet.errors import InputError
from palmnet.plan.model import Plan

FDS_PER_NODE = 3  # request socket, event socket, namespace fd while links are made
FDS_BASE = 256  # the interpreter, the journal, daemons' pipes
# Measured by benchmarks/bringup.py: 0.28-0.41 MB per plain host, kernel included;
# the margin covers the page cache and slab the bring-up churns through.
MB_PER_NODE = 1.0
MB_PER_DAEMON = 4.0  # radvd, dnsmasq, BIRD...: 1-3 MB of PSS each


def fds_needed(nodes: int) -> int:
    return FDS_BASE + FDS_PER_NODE * nodes


def mem_available_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check(plan: Plan, daemons: int) -> None:
    nodes = len(plan.nodes)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = fds_needed(nodes)
    if hard != resource.RLIM_INFINITY and need > hard:
        raise InputError(
            f"lab {plan.lab}: {nodes:,} nodes need about {need:,} open files while they "
            f"come up; this process may open at most {hard:,} (the hard RLIMIT_NOFILE, "
            "`ulimit -Hn`): raise it, or make the lab smaller"
        )
    available = mem_available_mb()
    want = nodes * MB_PER_NODE + daemons * MB_PER_DAEMON
    if available is not None and want > available:
        raise InputError(
            f"lab {plan.lab}: {nodes:,} nodes and {daemons:,} daemons need about "
            f"{want:,.0f} MB; the machine has {available:,.0f} MB available (MemAvailable)"
        )
