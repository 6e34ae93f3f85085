"""A node's own /etc, seeded into its overlay's upper dir before it is mounted
(the host's /etc is never written; files the node never wrote follow the host)."""

from __future__ import annotations

from pathlib import Path

from palmnet.interpreter import this_palmnet
from palmnet.plan.etc_files import etc_files
from palmnet.plan.model import NodePlan, Plan

HOSTNAME = "/proc/sys/kernel/hostname"
"""What /etc/hostname points to: the node's UTS hostname (kernel/mountns.py sets it),
read through the node's own /proc. A file would say the same and cost a page of
the state tmpfs per node (4 KiB, 1 % of a plain host's memory, issue 15); a short
symlink lives in its inode. `hostname NAME` in the node and the file stay one."""


def seed_etc(plan: Plan, node: NodePlan, upper: Path) -> None:
    """The node's files, and for an openwrt node /etc/init.d/firewall as on OpenWrt.

    resolv.conf is written as a regular file: it hides a host symlink
    (systemd-resolved), so nothing inside the node writes through it."""
    upper.mkdir(parents=True, exist_ok=True)
    for rel, text in etc_files(plan, node).items():
        path = upper / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == "hostname":
            _link(path, HOSTNAME)
            continue
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    if node.uci:
        from palmnet.openwrt.firewall_cli import render_init_script

        script = upper / "init.d" / "firewall"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(render_init_script(this_palmnet()))
        script.chmod(0o755)


def _link(path: Path, target: str) -> None:
    if path.is_symlink() and str(path.readlink()) == target:
        return
    path.unlink(missing_ok=True)
    path.symlink_to(target)
