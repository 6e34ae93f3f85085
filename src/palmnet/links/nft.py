"""The nftables text of link impairments, and reading it back.

One netdev table of the lab's in the namespace of its bridges (its name is
the backend's: `palmnet_impair` in a netns lab's hidden namespace, one per lab
in LXD's), one base chain per impaired port, hooked on that port's ingress:
every frame a node sends onto the link enters the bridge through its own
port, so it meets exactly one chain on its way, whatever its destination.
`--loss N` drops each frame with probability N % (`numgen random mod 100 <
N`): each direction of a link loses N %, a round trip (a ping) loses
1 - (1 - N/100)^2 of its probes (75 % at 50 %). `--blackhole` drops all.
The nodes' own tables (fw4) and other tables are never touched.

Files for `nft -f`, never the one-line `table netdev t { chain c { ... } }`
form (nft 1.0.6 refused it, reference/routing-notes.md). Every change is
idempotent: `add` then `flush` a chain to set it, `add` then `delete` it to
remove it (nft 1.0.6 has no `destroy`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

FAMILY = "netdev"
PRIORITY = -500  # before anything else on the port
COMMENT = "palmnet"


@dataclass(frozen=True)
class Impairment:
    port: str
    loss: int  # percent of frames dropped; 100 with blackhole
    blackhole: bool
    dropped: int = 0  # frames dropped so far (the rule's counter)

    def describe(self) -> str:
        return "blackhole" if self.blackhole else f"loss {self.loss}%"


def _chain(table: str, port: str) -> str:
    return (
        f"add chain {FAMILY} {table} {port} "
        f'{{ type filter hook ingress device "{port}" priority {PRIORITY}; policy accept; }}'
    )


def rule_text(loss: int | None) -> str:
    """The rule body: `None` is a blackhole, else the percent of frames to drop."""
    if loss is None:
        return f'counter drop comment "{COMMENT} blackhole"'
    if not 0 < loss <= 100:
        raise ValueError(f"loss must be 1..100 percent, not {loss}")
    return f'numgen random mod 100 < {loss} counter drop comment "{COMMENT} loss {loss}"'


def impair_text(table: str, ports: Iterable[str], loss: int | None) -> str:
    """Set (or replace) the impairment of each port: blackhole when loss is None."""
    lines = [f"add table {FAMILY} {table}"]
    for port in ports:
        lines += [
            _chain(table, port),
            f"flush chain {FAMILY} {table} {port}",
            f"add rule {FAMILY} {table} {port} {rule_text(loss)}",
        ]
    return "\n".join(lines) + "\n"


def clear_text(table: str, ports: Iterable[str]) -> str:
    """Remove the impairment of each port (whether it had one or not)."""
    lines = [f"add table {FAMILY} {table}"]
    for port in ports:
        lines += [_chain(table, port), f"delete chain {FAMILY} {table} {port}"]
    return "\n".join(lines) + "\n"


def drop_table_text(table: str) -> str:
    """Remove the whole table (whether it exists or not)."""
    return f"add table {FAMILY} {table}\ndelete table {FAMILY} {table}\n"


def parse_table(text: str, table: str) -> dict[str, Impairment]:
    """Impairments by port from `nft -j list table netdev TABLE`.

    Chains without a palmnet rule (someone flushed them) are not impairments.
    """
    if not text.strip():
        return {}
    out: dict[str, Impairment] = {}
    for item in json.loads(text).get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != table:
            continue
        comment = str(rule.get("comment", ""))
        words = comment.split()
        if not words or words[0] != COMMENT:
            continue
        dropped = 0
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and "counter" in expr:
                dropped = int(expr["counter"].get("packets", 0))
        chain = str(rule["chain"])
        if words[1:2] == ["blackhole"]:
            out[chain] = Impairment(chain, 100, True, dropped)
        elif words[1:2] == ["loss"] and len(words) > 2 and words[2].isdigit():
            out[chain] = Impairment(chain, int(words[2]), False, dropped)
    return out


def chains_in(text: str, table: str) -> list[str]:
    """Names of the chains the table holds (JSON listing)."""
    if not text.strip():
        return []
    return [
        str(item["chain"]["name"])
        for item in json.loads(text).get("nftables", [])
        if "chain" in item and item["chain"].get("table") == table
    ]
