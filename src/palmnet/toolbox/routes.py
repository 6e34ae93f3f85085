"""Routing tables and neighbours as rows: `ip -6 -j route` and BIRD's replies, parsed.

Pure functions: the CLI fetches the text (inside the node, and over BIRD's
control socket) and these turn it into rows for a table or JSON.

The kernel's table is the truth of what a node forwards; BIRD says where
its routes came from. A kernel route's `protocol` (rtm_protocol) names who
installed it: `kernel` (a connected prefix), `static`/`boot` (by hand or by
palmnet's static routes), `ra` (a router advertisement), `bird`, and 250 (no name
in iproute2) for an ISP's route to a prefix it delegated, shown as `delegated`. For `bird`
routes the source is the `Type:` BIRD gives its best route for the prefix
(`RIP`, `Babel`, `OSPF`, `OSPF-E2` ...), read from `show route all`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from palmnet.pd.kea_route import ROUTE_PROTO

Reply = Sequence[tuple[str, str]]
"""A BIRD control-socket reply: (code, text) lines, continuation lines keep their code."""

KERNEL_SOURCES = {
    "kernel": "connected",
    "static": "static",
    "boot": "static",  # `ip route add` without proto
    "ra": "ra",
    "dhcp": "dhcp",
    "redirect": "redirect",
    str(ROUTE_PROTO): "delegated",  # an ISP's route to a prefix it delegated (kea's hook)
}
BIRD_SOURCES = {
    "rip": "rip",
    "babel": "babel",
    "ospf": "ospf",
    "device": "connected",
    "static": "static",
    "inherit": "kernel",  # learned from the kernel table
}

# `2001:db8::/64  unicast [ripng1 12:00:00.000] * (120/3) [...]`; the prefix is left
# out (spaces) on the lines of a prefix's other routes.
_ROUTE_HEAD = re.compile(
    r"^(?P<prefix>\S+)?\s+(?P<kind>\w+)\s+\[(?P<proto>\S+)\s[^\]]*\]"
    r"\s*(?P<best>\*)?\s*(?P<ospf>I|IA|E1|E2)?\s*\((?P<pref>\d+)(?:/(?P<metric>\d+))?"
)
_VIA = re.compile(r"^\s*via (?P<via>\S+) on (?P<dev>\S+)")
_DEV = re.compile(r"^\s*dev (?P<dev>\S+)")


@dataclass(frozen=True)
class NextHop:
    via: str | None  # the next hop's address (a link-local for learned routes)
    dev: str | None


@dataclass(frozen=True)
class BirdRoute:
    """BIRD's best route for a prefix."""

    prefix: str
    protocol: str  # BIRD's protocol instance (ripng1, babel1, ospf1, direct1, kernel1)
    source: str  # rip, babel, ospf, connected, static, kernel
    metric: int | None  # the protocol's: RIP hops, Babel metric, OSPF cost
    ospf_type: str | None = None  # I, IA, E1, E2
    nexthops: tuple[NextHop, ...] = ()


@dataclass(frozen=True)
class RouteRow:
    prefix: str
    source: str  # connected, static, ra, rip, babel, ospf, ...
    nexthops: tuple[NextHop, ...]
    metric: int | None  # the kernel's
    protocol: str  # the kernel's route protocol (kernel, static, ra, bird, ...)
    type: str = "unicast"
    cost: int | None = None  # the routing protocol's metric, for routes from BIRD
    bird_protocol: str | None = None

    @property
    def via(self) -> str | None:
        return self.nexthops[0].via if self.nexthops else None

    @property
    def dev(self) -> str | None:
        return self.nexthops[0].dev if self.nexthops else None

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "source": self.source,
            "via": self.via,
            "dev": self.dev,
            "nexthops": [asdict(h) for h in self.nexthops],
            "metric": self.metric,
            "cost": self.cost,
            "protocol": self.protocol,
            "bird_protocol": self.bird_protocol,
            "type": self.type,
        }


@dataclass(frozen=True)
class NeighborRow:
    address: str
    interface: str
    state: str  # OSPF's adjacency state (Full/PtP ...); "up" for RIP and Babel
    metric: int | None = None  # RIP/Babel: the link's metric to this neighbour
    routes: int | None = None  # routes learned from it
    seen: float | None = None  # RIP: seconds since it was last heard
    expires: float | None = None  # Babel: hello timer, OSPF: dead timer (seconds left)
    router_id: str | None = None  # OSPF
    bfd: str | None = None  # the BFD session's state, where BFD runs
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out


# -- the kernel's table --------------------------------------------------------------
def _nexthops(entry: Mapping[str, Any]) -> tuple[NextHop, ...]:
    if "nexthops" in entry:
        return tuple(NextHop(h.get("gateway"), h.get("dev")) for h in entry["nexthops"])
    if "gateway" in entry or "dev" in entry:
        return (NextHop(entry.get("gateway"), entry.get("dev")),)
    return ()


def _prefix(dst: str) -> str:
    return "::/0" if dst == "default" else dst


def route_rows(
    ip_routes: Iterable[Mapping[str, Any]], bird: Mapping[str, BirdRoute]
) -> list[RouteRow]:
    """`ip -6 -j route` entries as rows, each with its source."""
    rows = []
    for entry in ip_routes:
        prefix = _prefix(str(entry.get("dst", "")))
        proto = str(entry.get("protocol", "boot"))
        learned = bird.get(prefix) if proto == "bird" else None
        source = learned.source if learned else KERNEL_SOURCES.get(proto, proto)
        rows.append(
            RouteRow(
                prefix=prefix,
                source=source,
                nexthops=_nexthops(entry),
                metric=entry.get("metric"),
                protocol=proto,
                type=str(entry.get("type", "unicast")),
                cost=learned.metric if learned else None,
                bird_protocol=learned.protocol if learned else None,
            )
        )
    return rows


# -- BIRD -----------------------------------------------------------------------------
def _bird_source(type_text: str) -> str:
    word = type_text.split()[0].split("-")[0].lower() if type_text.strip() else ""
    return BIRD_SOURCES.get(word, word or "bird")


def bird_routes(reply: Reply) -> dict[str, BirdRoute]:
    """BIRD's best route per prefix from `show route all`."""
    best: dict[str, BirdRoute] = {}
    prefix = ""
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None and current.pop("best"):
            best[current["prefix"]] = BirdRoute(**current)

    for _code, text in reply:
        head = _ROUTE_HEAD.match(text)
        if head:
            close()
            prefix = head["prefix"] or prefix
            current = {
                "prefix": prefix,
                "protocol": head["proto"],
                "source": "bird",
                "metric": int(head["metric"]) if head["metric"] else None,
                "ospf_type": head["ospf"],
                "nexthops": (),
                "best": bool(head["best"]),
            }
            continue
        if current is None:
            continue
        via = _VIA.match(text) or _DEV.match(text)
        if via:
            hop = NextHop(via.groupdict().get("via"), via["dev"])
            current["nexthops"] = (*current["nexthops"], hop)
        elif text.strip().startswith("Type:"):
            current["source"] = _bird_source(text.split(":", 1)[1])
    close()
    return best


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _table_lines(reply: Reply) -> list[list[str]]:
    """The data rows of a `show ... neighbors` reply, split on whitespace.

    Skipped: the greeting/end codes, the protocol instance lines (`ripng1:`)
    and the column headings.
    """
    rows = []
    for code, text in reply:
        words = text.split()
        if not words or code.startswith(("0", "8", "9")):
            continue
        if len(words) == 1 and words[0].endswith(":"):
            continue  # protocol instance
        if text.startswith(("IP address", "Router ID")):
            continue
        rows.append(words)
    return rows


def neighbor_rows(protocol: str, reply: Reply) -> list[NeighborRow]:
    """`show rip|babel|ospf neighbors` as rows.

    RIP:   IP address, Interface, Metric, Routes, Seen
    Babel: IP address, Interface, Metric, Routes, Hellos, Expires, Auth
    OSPF:  Router ID, Pri, State, DTime, Interface, Router IP
    """
    out = []
    for w in _table_lines(reply):
        if protocol == "ripng" and len(w) >= 5:
            out.append(
                NeighborRow(
                    address=w[0],
                    interface=w[1],
                    state="up",
                    metric=_int(w[2]),
                    routes=_int(w[3]),
                    seen=_number(w[4]),
                )
            )
        elif protocol == "babel" and len(w) >= 6:
            extra = {"hellos": w[4]}
            if len(w) >= 7:
                extra["auth"] = w[6]
            out.append(
                NeighborRow(
                    address=w[0],
                    interface=w[1],
                    state="up",
                    metric=_int(w[2]),
                    routes=_int(w[3]),
                    expires=_number(w[5]),
                    extra=extra,
                )
            )
        elif protocol == "ospf3" and len(w) >= 6:
            out.append(
                NeighborRow(
                    address=w[5],
                    interface=w[4],
                    state=w[2],
                    expires=_number(w[3]),
                    router_id=w[0],
                    extra={"priority": w[1]},
                )
            )
    return out


def bfd_states(reply: Reply) -> dict[tuple[str, str], str]:
    """`show bfd sessions`: (address, interface) -> state (Up, Down, Init, AdminDown)."""
    out = {}
    for w in _table_lines(reply):
        if len(w) >= 3:
            out[(w[0], w[1])] = w[2]
    return out


NEIGHBOR_COMMAND = {
    "ripng": "show rip neighbors",
    "babel": "show babel neighbors",
    "ospf3": "show ospf neighbors",
}
