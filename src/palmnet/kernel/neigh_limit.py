"""The IPv6 neighbour table limit, shared by every namespace of the machine.

`net.ipv6.neigh.default.gc_thresh1/2/3` (gc_thresh3 is 1024 by default) cap the
entries of all namespaces together; a 500-host lab needs about 2,500 (each
host's router and multicast groups, and the router's entry per host). These
are host-level settings: the Lab API raises them only when asked and puts
them back at `down`, whatever backend runs the lab.
"""

from __future__ import annotations

import time
from pathlib import Path

from palmnet.kernel.rtnl import NeighTable, Rtnl

GC = Path("/proc/sys/net/ipv6/neigh/default")
KEYS = ("gc_thresh1", "gc_thresh2", "gc_thresh3")


STATS = Path("/proc/net/stat/ndisc_cache")


def current_entries() -> int:
    """Entries in the machine's IPv6 neighbour table, all namespaces together.

    /proc/net/stat/ndisc_cache where it shows (the machine's own network namespace):
    its first column is the same count, read without the rtnl lock, which the kernel
    holds while it tears down deleted namespaces (a netlink dump of the table waited
    0.26 s behind a 1,000-host lab's). Netlink elsewhere."""
    try:
        return int(STATS.read_text().splitlines()[1].split()[0], 16)
    except (OSError, IndexError, ValueError):
        pass
    try:
        return table().entries
    except OSError:
        return 0


def table() -> NeighTable:
    """The machine's IPv6 neighbour table as any network namespace sees it."""
    with Rtnl.open() as rt:
        return rt.neigh_table()


def visible() -> bool:
    """The limit shows (and can be set) only in the machine's own network namespace:
    the kernel keeps one IPv6 neighbour table for all of them and registers its
    gc_thresh sysctls there alone. Measured on 6.18 in a rootless lab's node: no
    net/ipv6/neigh/default/gc_thresh*, no /proc/net/stat/ndisc_cache; `ip ntable`
    shows the machine's table (same thresh3, same entries), and changing thresh3
    fails (ENOENT)."""
    return (GC / "gc_thresh3").exists()


def read(key: str) -> int:
    return int((GC / key).read_text())


def limit() -> int:
    """gc_thresh3, from netlink where its sysctl is not shown (inside a rootless lab)."""
    return read("gc_thresh3") if visible() else table().thresh3


def values_for(need: int) -> dict[str, int]:
    """gc_thresh1/2/3 for a table that must hold `need` entries with room to spare.

    gc_thresh2 is not below `need`: past it, every new entry makes the kernel walk
    the whole table for something to evict (a forced GC, once the last flush is 5 s
    old), which a bring-up lasting minutes hit on every entry. With it at half the
    need, a 5,000-host `up` counted 15,574 forced GCs and evicted entries its hosts
    were still using."""
    return {"gc_thresh1": need // 4, "gc_thresh2": need, "gc_thresh3": need * 2}


def wait_below(entries: int, timeout: float) -> bool:
    """Whether the table came below `entries` within `timeout` seconds. The kernel
    frees a deleted namespace's entries in its own cleanup work and tells no one
    outside that namespace, so this reads the count every 10 ms."""
    deadline = time.monotonic() + timeout
    while current_entries() >= entries:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)  # poll: no event reaches us when a dead namespace's entries go
    return True


def write(key: str, value: int) -> None:
    (GC / key).write_text(str(value))


def restore(key: str, old: int, new: int) -> bool:
    """Put `key` back to `old` unless someone changed it since we set `new`."""
    try:
        if read(key) != new:
            return False
        write(key, old)
    except (OSError, ValueError):
        return False
    return True
