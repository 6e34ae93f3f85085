"""Wait until the lab's DNS servers answer a changed plan's names.

`refresh` re-writes dnsmasq's hosts file and signals it; dnsmasq re-reads it when it
gets to the signal, and on LXD a router's PD hook may rewrite it once more after its
new lease. Nothing tells palmnet when that is done, so a verb that changes names
(`isp renumber`) asks each DNS server itself: an AAAA query from inside the server's
node to its own loopback, until the answer is the planned set (or a deadline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from palmnet.errors import LabError
from palmnet.plan.dns import records_by_name
from palmnet.plan.model import NodePlan, Plan

if TYPE_CHECKING:
    from palmnet.backends.base import NodeHandle

QUERY_TIMEOUT = 0.5
PAUSE = 0.05


def planned_aaaa(node: NodePlan) -> dict[str, set[str]]:
    """name -> the IPv6 addresses the node's DNS server is planned to answer."""
    if node.dns is None:
        return {}
    return {
        name: {str(a) for a in addresses if a.version == 6}
        for name, addresses in records_by_name(node.dns.records).items()
    }


def changed_names(old: Plan, new: Plan) -> dict[str, dict[str, set[str]]]:
    """server node -> {name: planned AAAA} for the names whose AAAA the new plan changes."""
    out: dict[str, dict[str, set[str]]] = {}
    for node in new.nodes:
        now = planned_aaaa(node)
        if not now:
            continue
        before = planned_aaaa(old.node(node.name)) if old.has_node(node.name) else {}
        moved = {n: a for n, a in now.items() if a and before.get(n) != a}
        if moved:
            out[node.name] = moved
    return out


def answer(handle: NodeHandle, name: str, port: int) -> set[str] | None:
    """The AAAA set the node's own DNS answers for `name` (None: no answer in time)."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(name, dns.rdatatype.AAAA)
    try:
        with handle.inside():
            reply = dns.query.udp(query, "::1", timeout=QUERY_TIMEOUT, port=port)
    except (dns.exception.DNSException, OSError):
        return None
    return {
        rd.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.AAAA for rd in rrset
    }


def wait_answers(
    handles: Callable[[str], NodeHandle],
    plan: Plan,
    wanted: dict[str, dict[str, set[str]]],
    deadline: float,
) -> None:
    """Return when every server answers each of its changed names with exactly the
    planned addresses; LabError at the deadline naming what it still answers."""
    left = {(server, name) for server, names in wanted.items() for name in names}
    last: dict[tuple[str, str], set[str] | None] = {}
    nodes = {server: handles(server) for server in wanted}
    while left:
        for server, name in sorted(left):
            port = plan.node(server).dns.port  # type: ignore[union-attr]
            got = last[(server, name)] = answer(nodes[server], name, port)
            if got == wanted[server][name]:
                left.discard((server, name))
        if not left:
            return
        if time.monotonic() > deadline:
            raise LabError(_still(left, last, wanted))
        time.sleep(PAUSE)  # poll: dnsmasq says nothing when it has re-read its hosts file


def _still(
    left: Iterable[tuple[str, str]],
    last: dict[tuple[str, str], set[str] | None],
    wanted: dict[str, dict[str, set[str]]],
) -> str:
    lines = []
    for server, name in sorted(left):
        got = last.get((server, name))
        said = "no answer" if got is None else ", ".join(sorted(got)) or "no AAAA"
        lines.append(
            f"{server}'s DNS answers {name} with {said}, planned "
            f"{', '.join(sorted(wanted[server][name]))}"
        )
    return "the lab's DNS did not follow in time: " + "; ".join(lines)
