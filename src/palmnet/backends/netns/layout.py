"""Where a node's files live in the lab's state dir."""

from __future__ import annotations

from pathlib import Path

from palmnet.state.paths import lab_dir, node_dir


def ns_dir(lab: str) -> Path:
    """Holds the bind-mounted mount/UTS namespace files (a private mount)."""
    return lab_dir(lab) / "ns"


def mnt_file(lab: str, node: str) -> Path:
    return ns_dir(lab) / f"{node}.mnt"


def uts_file(lab: str, node: str) -> Path:
    return ns_dir(lab) / f"{node}.uts"


def etc_upper(lab: str, node: str) -> Path:
    return node_dir(lab, node) / "etc"


def etc_work(lab: str, node: str) -> Path:
    return node_dir(lab, node) / ".etc-work"


def etc_lab(lab: str) -> Path:
    """The /etc files every node of the lab shares: a read-only layer of each node's
    overlay, under its own upper (a node that writes one gets its own copy)."""
    return lab_dir(lab) / "etc"
