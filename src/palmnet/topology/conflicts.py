"""Static addresses the lab would hold twice.

A static address belongs to one interface: the same global or ULA address on
two nodes fails DAD at `up` when they share a link and breaks routing when
they do not, so either way it is refused here, at the line that repeats it.
A link-local address is unique only on its link, so fe80::1/64 may be every
router's on different networks. `count:` copies take the entry's keys, so a
static address on an entry with `count: 2` or more is every copy's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from palmnet.topology.yaml_source import Path_, format_path

Report = Callable[[Path_, str], None]


@dataclass(frozen=True)
class Entry:
    """A node entry after overlay: its copies' names and its merged keys."""

    names: list[str]
    count: int | None
    merged: Any  # overlay.Overlaid


def check_statics(entries: list[Entry], line_of: Callable[[Path_], int], report: Report) -> None:
    seen: dict[Any, tuple[str, Path_]] = {}
    for entry in entries:
        if not entry.names:
            continue
        node = entry.names[0]
        for ifname, iface in entry.merged.interfaces.items():
            origin = entry.merged.origins[f"interfaces.{ifname}"]
            for family in ("ipv6", "ipv4"):
                for index, addr in enumerate(getattr(iface, family)):
                    path = (*origin, "interfaces", ifname, family, index)
                    if len(entry.names) > 1:
                        copies = ", ".join(entry.names[:2])
                        report(
                            path,
                            f"count: {entry.count} gives {addr.ip} to every copy ({copies}...): "
                            "a static address belongs to one node",
                        )
                        continue
                    key = (iface.network, addr.ip) if addr.is_link_local else addr.ip
                    other = seen.setdefault(key, (node, path))
                    if other[1] == path and other[0] != node:
                        report(
                            path,
                            f"{addr.ip} goes to node {other[0]} and node {node} from here: "
                            "a static address belongs to one interface",
                        )
                    elif other != (node, path):
                        owner = "this node" if other[0] == node else f"node {other[0]}"
                        report(
                            path,
                            f"{addr.ip} is also {owner}'s ({format_path(other[1])}, "
                            f"line {line_of(other[1])}): a static address belongs to one "
                            "interface" + (" on a link" if addr.is_link_local else ""),
                        )
