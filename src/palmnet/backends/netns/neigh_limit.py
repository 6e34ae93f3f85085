"""The IPv6 neighbour table limit, shared by every namespace of the machine.

`net.ipv6.neigh.default.gc_thresh3` (1024 by default) caps the entries of all
namespaces together; a 500-host lab needs about 2,500 (each host's router and
multicast groups, and the router's entry per host). `up` warns when a lab would come near it
and raises it only when asked, recording the old values in the lab's journal;
`down` puts them back unless someone changed them since.
"""

from __future__ import annotations

from pathlib import Path

from palmnet.plan.model import Plan
from palmnet.state.journal import Journal

GC = Path("/proc/sys/net/ipv6/neigh/default")
# Measured (benchmarks/bringup.py): 4-5 per host interface: the router's link-local,
# the multicast groups it speaks to (ff02::2, ff02::16, its solicited-node group),
# and the router's entry for the host.
ENTRIES_PER_INTERFACE = 5


def current_entries() -> int:
    """Entries in the machine's IPv6 neighbour table, all namespaces together."""
    try:
        lines = Path("/proc/net/stat/ndisc_cache").read_text().splitlines()
        return int(lines[1].split()[0], 16)
    except (OSError, IndexError, ValueError):
        return 0


def limit() -> int:
    return int((GC / "gc_thresh3").read_text())


def lab_need(plan: Plan) -> int:
    return ENTRIES_PER_INTERFACE * sum(len(n.interfaces) for n in plan.nodes)


def check(plan: Plan) -> str | None:
    """A warning when the lab would bring the table within 80 % of its limit."""
    need, have, cap = lab_need(plan), current_entries(), limit()
    if have + need <= 0.8 * cap:
        return None
    return (
        f"this lab needs about {need} IPv6 neighbour entries; the machine has {have} of "
        f"gc_thresh3={cap} in use (shared by all namespaces). Entries may be dropped; "
        f"`palmnet up --raise-neigh-limit` raises the limit until `down`."
    )


def raise_limit(plan: Plan, journal: Journal) -> str:
    need = current_entries() + lab_need(plan)
    values = {"gc_thresh1": need // 4, "gc_thresh2": need // 2, "gc_thresh3": need * 2}
    changed = []
    for key, new in values.items():
        path = GC / key
        old = int(path.read_text())
        if new <= old:
            continue
        journal.record("sysctl", str(path), None, old=old, new=new)
        path.write_text(str(new))
        changed.append(f"{key} {old} -> {new}")
    return "raised " + ", ".join(changed) if changed else "neighbour limits already high enough"


def restore_neigh_limit(journal: Journal) -> None:
    for e in journal.entries("sysctl"):
        path = Path(e.name)
        try:
            if int(path.read_text()) == int(e.data["new"]):
                path.write_text(str(e.data["old"]))
        except (OSError, ValueError, KeyError):
            pass
        journal.forget("sysctl", e.name)
