"""Settings of the machine itself that a lab may change, and puts back at `down`.

Only one: the IPv6 neighbour table limit (gc_thresh1/2/3), shared by every
namespace of the machine and by every backend's nodes. `up` warns when a lab
would come near it and raises it only with `--raise-neigh-limit`; the old
values go into the lab's journal first, and `down` restores them unless
someone changed them since, whatever backend ran the lab.
"""

from __future__ import annotations

from palmnet.errors import InputError
from palmnet.kernel import neigh_limit
from palmnet.lab import host_restore
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal

# Measured (benchmarks/bringup.py): 4-5 per host interface: the router's link-local,
# the multicast groups it speaks to (ff02::2, ff02::16, its solicited-node group),
# and the router's entry for the host.
ENTRIES_PER_INTERFACE = 5
# The fewest seen: 4.0 per host interface on a 1,000-host LAN. A lab whose floor
# does not fit cannot come up: with the table full the kernel drops the entries
# hosts need to solicit a router (measured: 460 of 1,000 hosts had no address 30 s
# into `up`, ndisc_cache table_fulls in the thousands), so `up` refuses it first.
ENTRIES_FLOOR = 4
KIND = "host-sysctl"


def lab_need(plan: Plan) -> int:
    return ENTRIES_PER_INTERFACE * sum(len(n.interfaces) for n in plan.nodes)


def neigh_warning(plan: Plan) -> str | None:
    """A warning when the lab would bring the table within 80 % of its limit (None
    inside a rootless lab: its `up` warned before entering it)."""
    if not neigh_limit.visible():
        return None
    need, have, cap = lab_need(plan), neigh_limit.current_entries(), neigh_limit.limit()
    if have + need <= 0.8 * cap:
        return None
    return (
        f"this lab needs about {need} IPv6 neighbour entries; the machine has {have} of "
        f"gc_thresh3={cap} in use (shared by all namespaces). Entries may be dropped; "
        f"`palmnet up --raise-neigh-limit` raises the limit until `down`."
    )


def refuse_over_limit(plan: Plan) -> None:
    """InputError (before anything is made) when the lab cannot fit in the table."""
    if not neigh_limit.visible():
        return
    interfaces = sum(len(n.interfaces) for n in plan.nodes)
    floor = ENTRIES_FLOOR * interfaces
    have, cap = neigh_limit.current_entries(), neigh_limit.limit()
    if have + floor <= cap:
        return
    raise InputError(
        f"lab {plan.lab}: its {interfaces:,} interfaces need at least {floor:,} IPv6 "
        f"neighbour entries; the machine has {have:,} of gc_thresh3={cap:,} in use (shared "
        "by all namespaces), so hosts would be left without addresses: "
        "`palmnet up --raise-neigh-limit` raises the limit until `down`"
    )


def raise_neigh_limit(plan: Plan, journal: Journal) -> str:
    wanted = neigh_limit.values_for(neigh_limit.current_entries() + lab_need(plan))
    changed = []
    for key, new in wanted.items():
        old = neigh_limit.read(key)
        if new <= old:
            continue
        journal.record(KIND, key, None, old=old, new=new)
        neigh_limit.write(key, new)
        changed.append(f"{key} {old} -> {new}")
    return "raised " + ", ".join(changed) if changed else "neighbour limits already high enough"


def restore(journal: Journal, lab: str) -> None:
    """Put back what the lab raised (unless changed since), and forget it: after the
    lab's nodes are gone, and once the kernel has let go of their entries.

    Measured at 1,000 hosts: `down` returns with about 1,900 of the lab's 4,000
    entries still held by its dying namespaces, which the kernel frees in its own
    cleanup work about 0.8 s later. Restored before that, the old gc_thresh3 (1024)
    is below what the table holds, and every new neighbour on the machine, in
    another lab or on its own LAN, is refused ("neighbor table overflow!") until
    they are freed. So when the table is still over it, the restore is handed to a
    detached process (host_restore.py) and `down` returns."""
    entries = journal.entries(KIND)
    if not entries:
        return
    rows = {e.name: (int(e.data["old"]), int(e.data["new"])) for e in entries}
    if host_restore.needs_wait(rows):
        host_restore.hand_over(lab, rows)
    else:
        host_restore.put_back(rows)
    for e in entries:
        journal.forget(KIND, e.name)


def settle() -> None:
    """Before `up` reads or raises the limit: restores handed over by an earlier
    `down` are done (or finished here)."""
    host_restore.settle()
