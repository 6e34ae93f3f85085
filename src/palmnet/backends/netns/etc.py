"""A node's own /etc: an overlay of the host's /etc, the lab's shared layer above it
and the node's upper dir on top, seeded before it is mounted (the host's /etc is
never written; files no layer has follow the host).

The lab's layer holds what every node has alike (resolv.conf): one copy for the
lab instead of a tmpfs page per node (4 KiB, about 1 % of a plain host's memory,
issue 15). A node that writes it (rdnssd renames its own over it, a user edits it)
gets its copy in its upper dir, as overlayfs copies up any lower file; the other
nodes keep the lab's.
"""

from __future__ import annotations

from pathlib import Path

from palmnet.interpreter import this_palmnet
from palmnet.plan.etc_files import lab_etc_files, node_etc_files
from palmnet.plan.model import NodePlan, Plan

HOSTNAME = "/proc/sys/kernel/hostname"
"""What /etc/hostname points to: the node's UTS hostname (kernel/mountns.py sets it),
read through the node's own /proc. A file would say the same and cost a page of
the state tmpfs per node; a short symlink lives in its inode. `hostname NAME` in
the node and the file stay one."""


def seed_lab_etc(plan: Plan, shared: Path) -> None:
    """The lab's layer. resolv.conf is a regular file: it hides a host symlink
    (systemd-resolved), so nothing inside a node writes through it."""
    for rel, text in lab_etc_files(plan).items():
        path = shared / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_symlink() and path.exists() and path.read_text() == text:
            continue  # a lower layer of running nodes: left alone when it says this
        _write(path, text)


def seed_etc(plan: Plan, node: NodePlan, upper: Path) -> None:
    """The node's files, and for an openwrt node /etc/init.d/firewall as on OpenWrt.
    A copy of a lab file the node made in an earlier run goes: it starts again
    from the lab's, as it started from the rendered file before."""
    upper.mkdir(parents=True, exist_ok=True)
    for rel in lab_etc_files(plan):
        (upper / rel).unlink(missing_ok=True)
    for rel, text in node_etc_files(plan, node).items():
        path = upper / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == "hostname":
            _link(path, HOSTNAME)
        else:
            _write(path, text)
    if node.uci:
        from palmnet.openwrt.firewall_cli import render_init_script

        script = upper / "init.d" / "firewall"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(render_init_script(this_palmnet()))
        script.chmod(0o755)


def _write(path: Path, text: str) -> None:
    if path.is_symlink():
        path.unlink()
    path.write_text(text)


def _link(path: Path, target: str) -> None:
    if path.is_symlink() and str(path.readlink()) == target:
        return
    path.unlink(missing_ok=True)
    path.symlink_to(target)
