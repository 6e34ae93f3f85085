"""Tables like `lxc ls`: one `address (iface)` per line, link-locals left out.

They are drawn by cli/grid.py (Rich's look; Rich itself only for cells that need it):
neither `--format json` nor a plain table pays Rich's start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from palmnet.cli.grid import Grid
from palmnet.lab import LiveNode
from palmnet.plan.external import LEARNT_AT_UP, pending_identifier
from palmnet.plan.model import Plan


def _lines(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"{addr.split('/')[0]} ({iface})" for addr, iface in pairs)


def _table(title: str | None, member: bool = False) -> Grid:
    return Grid(("NAME", "STATE", "IPV4", "IPV6", "KIND", *(("MEMBER",) if member else ())), title)


def plan_table(plan: Plan) -> Grid:
    t = _table(f"plan of lab {plan.lab} ({plan.domain})")
    for node in plan.nodes:
        v4 = [(str(a), i.name) for i in node.interfaces for a in i.ipv4]
        v6 = []
        for i in node.interfaces:
            v6 += [(str(a), i.name) for a in i.ipv6[1:]]
            ext = plan.network(i.network).external
            iid = pending_identifier(i, ext.prefix) if ext is not None else None
            if iid is not None:
                v6.append((iid, f"{i.name}, {LEARNT_AT_UP}"))
        t.add_row(node.name, "PLANNED", _lines(v4), _lines(v6), node.kind)
    return t


def ls_table(nodes: Sequence[LiveNode]) -> Grid:
    """`lxc ls`'s columns; MEMBER (where the node runs) when the lab is on a cluster."""
    member = any(n.member for n in nodes)
    t = _table(None, member)
    for node in nodes:
        v4 = [(a, i.name) for i in node.interfaces for a in i.ipv4]
        v6 = [(a, i.name) for i in node.interfaces for a in i.ipv6 if not a.startswith("fe80:")]
        where = (node.member,) if member else ()
        t.add_row(node.name, _state(node), _lines(v4), _lines(v6), node.kind, *where)
    return t


def _state(node: LiveNode) -> str:
    """The node's state, and under it each daemon that is not running."""
    down = [f"{s.name} {s.state}" for s in node.services if s.state != "running"]
    containers = [f"docker {c.name} {c.state}" for c in node.docker or ()]
    return "\n".join([node.state, *down, *containers])


def live_json(nodes: Sequence[LiveNode]) -> list[dict[str, object]]:
    out = [_live_json(n) for n in nodes]
    for row, node in zip(out, nodes, strict=True):
        if node.docker is not None:  # docker nodes only: other nodes keep the contract shape
            row["docker"] = [dataclasses.asdict(c) for c in node.docker]
    return out


def _live_json(n: LiveNode) -> dict[str, object]:
    return {
        "name": n.name,
        "kind": n.kind,
        "state": n.state,
        **({"member": n.member} if n.member else {}),
        "interfaces": [
            {
                "name": i.name,
                "network": i.network,
                "mac": i.mac,
                "ipv4": list(i.ipv4),
                "ipv6": list(i.ipv6),
                "sources": dict(i.sources),
            }
            for i in n.interfaces
        ],
        "services": [
            {
                "name": s.name,
                "state": s.state,
                "pid": s.pid,
                "restarts": s.restarts,
                "last_exit": s.last_exit,
            }
            for s in n.services
        ],
    }


def rows_table(rows: Sequence[dict[str, object]]) -> Grid:
    """A table of uniform dicts, columns in key order, lists one item per line."""
    keys = list(rows[0]) if rows else []
    t = Grid([key.upper() for key in keys])
    for row in rows:
        cells = []
        for key in keys:
            value = row.get(key)
            if isinstance(value, (list, tuple)):
                cells.append("\n".join(str(v) for v in value))
            else:
                cells.append("" if value is None else str(value))
        t.add_row(*cells)
    return t
