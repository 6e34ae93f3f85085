"""Which cluster member runs each node of a lab.

- `member: NAME` on a node: that member (it must be a member of the cluster, else
  exit 2 before anything is made, naming the members).
- `placement: pack`: every other node on the member palmnet talks to (the local
  one: its nodes are reached through this machine's /proc, and its links never
  cross a tunnel).
- `placement: spread` (the default): every other node on the member that holds the
  fewest of the lab's nodes so far, in the plan's order, ties to the first member
  by name: LXD's own scheduler does the same (fewest instances), but palmnet
  decides it itself so that the same lab lands the same way on every `up`, and
  the router written first in the file runs on the first member.
Only members that are Online take nodes that nothing pins, and only members whose
LXD runs on this machine take any node (locality.py): palmnet reaches a node through
this machine's /proc, so a node on a member elsewhere could not be configured (a
`member:` naming one is refused, exit 2 before anything is made; unpinned nodes
skip it, and the user is told).
"""

from __future__ import annotations

from collections.abc import Sequence

from palmnet.backends.lxd.cluster import Member
from palmnet.errors import InputError
from palmnet.plan.model import NodePlan


def place(
    nodes: Sequence[NodePlan], placement: str, members: Sequence[Member], local: str
) -> dict[str, str]:
    """node name -> member name, for every node; {} off a cluster (no members)."""
    if not members:
        return {}
    names = [m.name for m in members]
    pinned = {n.name: str(n.option("member")) for n in nodes if n.option("member")}
    unknown = sorted({m for m in pinned.values() if m not in names})
    if unknown:
        raise InputError(
            f"member: {', '.join(unknown)} is not a member of this LXD cluster "
            f"(members: {', '.join(names)})"
        )
    here = {m.name for m in members if m.here}
    away = sorted({m for m in pinned.values() if m not in here})
    if away:
        raise InputError(
            f"member: {', '.join(away)} runs on another machine (or does not answer): "
            "palmnet configures a node "
            "from the machine it runs on, through the node's namespaces, so it places nodes "
            f"on this machine's members only ({', '.join(sorted(here)) or 'none here'}); "
            "run palmnet on that machine, or pin the node to a member here"
        )
    if not here:
        raise InputError(
            f"no member of this LXD cluster ({', '.join(names)}) runs on this machine: "
            "palmnet configures a node through its namespaces from the machine it runs on, "
            "so it must run on a member (or on the machine of a nested one)"
        )
    usable = [m for m in members if m.name in here]
    online = [m.name for m in usable if m.status == "Online"] or [m.name for m in usable]
    load = {m: 0 for m in names}
    for m in pinned.values():
        load[m] += 1
    out: dict[str, str] = {}
    for node in nodes:
        if node.name in pinned:
            out[node.name] = pinned[node.name]
            continue
        if placement == "pack":
            chosen = local if local in online else online[0]
        else:
            chosen = min(online, key=lambda m: (load[m], online.index(m)))
        load[chosen] += 1
        out[node.name] = chosen
    return out
