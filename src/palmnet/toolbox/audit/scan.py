"""Resilience to an ND scan of the node's /64 (at most 256 targets).

A /64 is sparse: a scanner that walks it makes whoever resolves those
addresses fill its neighbour table with entries that never complete. From
another node of the link, for each random address of the target's /64:
- a Neighbour Solicitation to its solicited-node group (what a router in
  front of the link would send; every node on the link receives it), and
- an Echo Request to it, sent to the target's MAC: a router forwards it and
  must resolve the address (the classic neighbour-table exhaustion); a host
  drops it. Its source is an unused address of the /64, not the sender's:
  a router forwarding back onto the link it came from Redirects the source,
  and the sender would then hold an entry (and a route) per address.
Between bursts and after the scan, the stimulus node pings the target (the
kernel's ping). The neighbour table limit (gc_thresh3) is the machine's,
shared by every namespace, so the scan stays small (and smaller when the
table is already full) and the verdict also reads the machine's
`table_fulls` counter (/proc/net/stat/ndisc_cache): unchanged means no
namespace was refused an entry during the scan.

Cleanup: the entries the scan left in the target (a router's: incomplete
ones and the solicited-node groups of its NS) are deleted at once, before
they fail and send Address Unreachable errors.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time

from palmnet.addressing.multicast import solicited_node
from palmnet.kernel import neigh_limit
from palmnet.plan.model import NodePlan
from palmnet.toolbox.audit.context import AuditContext
from palmnet.toolbox.audit.frames import LinkSocket, echo_frame, ns_frame, random_hosts
from palmnet.toolbox.audit.model import Outcome

BURSTS = 4
NDISC_STATS = "/proc/net/stat/ndisc_cache"
GC_THRESH3 = "/proc/sys/net/ipv6/neigh/default/gc_thresh3"
HEADROOM = 128  # entries left free for the rest of the machine (other labs, the host)


def ndisc_stats(text: str) -> dict[str, int]:
    """`entries` (the table's, same on every line) and `table_fulls` summed over CPUs."""
    lines = text.split("\n")
    names = lines[0].split()
    rows = [[int(v, 16) for v in line.split()] for line in lines[1:] if line.strip()]
    col = {n: i for i, n in enumerate(names)}
    return {
        "entries": rows[0][col["entries"]] if rows else 0,
        "table_fulls": sum(r[col["table_fulls"]] for r in rows) if "table_fulls" in col else 0,
    }


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def machine_table() -> dict[str, int]:
    """`entries`, `table_fulls` and `thresh3` of the machine's IPv6 neighbour table:
    from /proc where this namespace shows it, else by netlink (a rootless lab's
    namespaces show neither /proc/net/stat/ndisc_cache nor gc_thresh3)."""
    if os.path.exists(NDISC_STATS) and os.path.exists(GC_THRESH3):
        return {**ndisc_stats(_read(NDISC_STATS)), "thresh3": int(_read(GC_THRESH3))}
    table = neigh_limit.table()
    return {"entries": table.entries, "table_fulls": table.table_fulls, "thresh3": table.thresh3}


def nd_scan(ctx: AuditContext) -> Outcome:
    assert ctx.stimulus is not None and ctx.target_if is not None
    stim, iface = ctx.stimulus, ctx.target_if.name
    gua = ctx.global_address(None, iface)
    if gua is None:
        return Outcome.na(f"no global address on {iface}: no /64 to scan")
    prefix = ipaddress.IPv6Network((int(gua) >> 64 << 64, 64))
    before = machine_table()
    # A router holds two entries per address: the address, incomplete, and the
    # solicited-node group it sends its NS to (NOARP). One more pair: the sender's.
    room = before["thresh3"] - before["entries"] - HEADROOM - 2
    count = min(ctx.options.scan_count, max(room, 0) // 2)
    if count <= 0:
        return Outcome.na(
            f"the machine's neighbour table holds {before['entries']} entries: no room to scan"
        )
    held = {a.address for a in ctx.addresses(None)} | {a.address for a in ctx.addresses(stim.node)}
    targets = random_hosts(prefix, count + 1, held, random.Random())
    sender, targets = targets[0], targets[1:]
    stim_mac = ctx.mac(stim.node, stim.iface.name)
    target_mac = ctx.mac(None, iface)
    source = ctx.global_address(stim.node, stim.iface.name) or ctx.link_local(
        stim.node, stim.iface.name
    )
    if source is None:
        return Outcome.failed(f"{stim} has no usable address to scan from")
    frames = [
        frame
        for n, t in enumerate(targets)
        for frame in (
            ns_frame(src_mac=stim_mac, src=source, target=t),
            echo_frame(src_mac=stim_mac, dst_mac=target_mac, src=sender, dst=t, ident=0x5CA, seq=n),
        )
    ]
    pings: list[float | None] = []
    burst = -(-len(frames) // BURSTS)
    start = time.monotonic()
    try:
        with LinkSocket(ctx.netns(stim.node), stim.iface.name) as sock:
            for i in range(0, len(frames), burst):
                sock.send_all(frames[i : i + burst])
                pings.append(ctx.ping(stim.node, gua, stim.iface.name))
        took = time.monotonic() - start
        after = machine_table()
        entries = len(_entries(ctx, None, set(targets)))
    finally:
        # Before the entries fail (3 s): then no Address Unreachable goes out either.
        scanned = {*targets, sender}
        _clean(ctx, None, scanned | {solicited_node(a) for a in scanned})
    answered = sum(p is not None for p in pings)
    fulls = after["table_fulls"] - before["table_fulls"]
    worst = max((p for p in pings if p is not None), default=None)
    evidence = (
        f"{count} NS + {count} echo requests to random addresses of {prefix} from {stim}"
        f" in {took:.2f} s: {ctx.target.name} answered {answered}/{len(pings)} ping6 during and"
        f" after"
        + (f" (slowest {worst:g} ms)" if worst is not None else "")
        + f", held {entries} neighbour entries for them;"
        f" machine table_fulls {before['table_fulls']} -> {after['table_fulls']}"
        f" (entries {before['entries']} -> {after['entries']})"
    )
    if answered < len(pings) or fulls:
        return Outcome.failed(evidence)
    return Outcome.passed(evidence)


def _entries(ctx: AuditContext, node: NodePlan | None, wanted: set[ipaddress.IPv6Address]) -> list:
    return [
        n
        for n in ctx.ip_json(node, "-6", "neigh", "show", "nud", "all")
        if "dst" in n and ipaddress.IPv6Address(n["dst"]) in wanted
    ]


def _clean(ctx: AuditContext, node: NodePlan | None, wanted: set[ipaddress.IPv6Address]) -> None:
    """Delete a node's neighbour entries for the scanned addresses."""
    lines = [f"neigh del {n['dst']} dev {n['dev']}" for n in _entries(ctx, node, wanted)]
    if lines:
        ctx.run(node, ["ip", "-force", "-batch", "-"], stdin="\n".join(lines) + "\n")
