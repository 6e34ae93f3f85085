"""What the machine's own interfaces are, read from sysfs, without changing them.

An external network (issue 16) joins a lab to a host bridge or hangs macvlans on a
host interface: `up` first checks that the interface is there and is what the file
says, and reads the bridge's MTU so that the ports it adds never lower it (a bridge
takes the smallest MTU of its ports). /sys/class/net shows the namespace that
mounted /sys: palmnet's own, the machine's, where these interfaces live.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class HostLink:
    name: str
    kind: str  # bridge, loopback, or the kernel's ARPHRD-based word: ether, other
    master: str | None  # the bridge (or bond) it is a port of
    mtu: int
    up: bool


def host_link(name: str) -> HostLink | None:
    """The host interface `name`, None if there is none."""
    base = SYS_NET / name
    if "/" in name or not base.exists():
        return None
    master = base / "master"
    kind = "bridge" if (base / "bridge").is_dir() else _kind(base)
    return HostLink(
        name=name,
        kind=kind,
        master=os.path.basename(os.readlink(master)) if master.is_symlink() else None,
        mtu=int(_read(base / "mtu") or 0),
        up=(int(_read(base / "flags") or "0", 16) & 1) == 1,
    )


def host_link_names() -> list[str]:
    try:
        return sorted(os.listdir(SYS_NET))
    except FileNotFoundError:
        return []


def bridge_ports(bridge: str) -> list[str]:
    try:
        return sorted(os.listdir(SYS_NET / bridge / "brif"))
    except FileNotFoundError:
        return []


def _kind(base: Path) -> str:
    arphrd = _read(base / "type")
    if arphrd == "772":
        return "loopback"
    return "ether" if arphrd == "1" else "other"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
