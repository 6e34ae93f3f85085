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
Only members that are Online take nodes that nothing pins. A member whose LXD runs
on another machine (locality.py) takes only nodes palmnet can drive through LXD's API
alone (far.py: plain hosts); every other node needs this machine's /proc and goes to
a member here. A `member:` that breaks this is refused, exit 2 before anything is
made, saying why the node cannot run there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from palmnet.backends.lxd.cluster import Member
from palmnet.errors import InputError
from palmnet.plan.model import NodePlan


def place(
    nodes: Sequence[NodePlan],
    placement: str,
    members: Sequence[Member],
    local: str,
    why_not_far: Callable[[NodePlan], str | None] | None = None,
) -> dict[str, str]:
    """node name -> member name, for every node; {} off a cluster (no members).
    `why_not_far(node)`: why the node cannot run on a member on another machine
    (None: it can); without it no node can."""
    if not members:
        return {}
    rule = why_not_far or (lambda node: "palmnet drives it through this machine")
    must_be_here = {n.name: rule(n) for n in nodes}  # asked once per node
    names = [m.name for m in members]
    pinned = {n.name: str(n.option("member")) for n in nodes if n.option("member")}
    unknown = sorted({m for m in pinned.values() if m not in names})
    if unknown:
        raise InputError(
            f"member: {', '.join(unknown)} is not a member of this LXD cluster "
            f"(members: {', '.join(names)})"
        )
    here = {m.name for m in members if m.here}
    refused = [
        f"{n.name} on {pinned[n.name]} ({why})"
        for n in nodes
        if n.name in pinned and pinned[n.name] not in here and (why := must_be_here[n.name])
    ]
    if refused:
        raise InputError(
            f"member: {'; '.join(refused)}: that member runs on another machine (or does "
            "not answer), and palmnet configures such a node through its namespaces from "
            "the machine it runs on, so it goes on this machine's members only "
            f"({', '.join(sorted(here)) or 'none here'}); pin it to one of them, or run "
            "palmnet on that machine"
        )
    near_only = [n for n in nodes if n.name not in pinned and must_be_here[n.name]]
    if near_only and not here:
        raise InputError(
            f"no member of this LXD cluster ({', '.join(names)}) runs on this machine, and "
            f"{near_only[0].name} must: palmnet configures it through its namespaces from "
            "the machine it runs on (only plain hosts run on members elsewhere)"
        )
    online = [m.name for m in members if m.status == "Online"] or names
    online_here = [m for m in online if m in here] or [m for m in names if m in here]
    load = {m: 0 for m in names}
    for m in pinned.values():
        load[m] += 1
    out: dict[str, str] = {}
    for node in nodes:
        if node.name in pinned:
            out[node.name] = pinned[node.name]
            continue
        usable = online_here if must_be_here[node.name] else online
        if placement == "pack":
            chosen = local if local in usable else usable[0]
        else:
            chosen = min(usable, key=lambda m: (load[m], usable.index(m)))
        load[chosen] += 1
        out[node.name] = chosen
    return out
