"""Remove what a lab made, from its journal, after a clean run or any crash.

Order: processes (by recorded pid, then anything else still inside the lab's
namespaces: they are the lab's), the macvlans on the machine's own LAN (external
networks), node namespaces (their veth pairs go with them; `down` waits until the
ports on a host bridge are gone, and deletes what is left), the hidden namespace
(bridges go with it), node mount namespaces, the private mounts of the state dir,
the state dir. Names are checked against the lab's prefix, so nothing else is touched.
Host-level settings the lab changed (the neighbour limit) are the Lab API's to
restore, for every backend.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from palmnet.backends.netns.external import ports_gone, remove_macvlans, remove_ports
from palmnet.backends.netns.layout import mnt_file, ns_dir, uts_file
from palmnet.backends.netns.names import node_netns, switch_netns
from palmnet.kernel import namespaces, nsfs, processes
from palmnet.kernel.held_open import held_elsewhere
from palmnet.kernel.mountns import release_node_mounts, release_state_tmpfs
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir, node_dir


def lab_netns_names(lab: str) -> list[str]:
    """Namespaces under /run/netns that carry this lab's name (also without a journal)."""
    prefix = node_netns(lab, "")
    try:
        names = os.listdir(nsfs.NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix) or n == switch_netns(lab))


def stop_node_processes(
    journal: Journal | None, netns_names: Sequence[str], node: str | None
) -> None:
    if journal is not None:
        for e in journal.entries("process", node=node):
            if e.data.get("pid"):
                processes.stop(int(e.data["pid"]), e.data.get("start"))
            journal.forget("process", e.name)
    left = namespaces.pids_by_netns(netns_names)
    processes.kill_all([p for pids in left.values() for p in pids])


def remove_node(lab: str, node: str, journal: Journal | None) -> None:
    """Remove one node: its processes, mounts, namespace (and so its veths), files."""
    name = node_netns(lab, node)
    stop_node_processes(journal, [name], node)
    remove_ports(lab, journal, node)
    release_node_mounts(mnt_file(lab, node), uts_file(lab, node))
    namespaces.delete_netns(name)
    if journal is not None:
        journal.forget("mount", str(mnt_file(lab, node)))
        journal.forget("netns", name)
    shutil.rmtree(node_dir(lab, node), ignore_errors=True)


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def destroy_lab(lab: str, journal: Journal | None) -> None:
    names = set(lab_netns_names(lab))
    if journal is not None:
        names |= {e.name for e in journal.entries("netns")}
    names = {n for n in names if n == switch_netns(lab) or n.startswith(node_netns(lab, ""))}
    stop_node_processes(journal, sorted(names), None)
    remove_macvlans(lab, journal)
    # The network namespaces go first: the kernel frees them (devices, neighbour
    # entries) in its own work after their last reference, and that overlaps the
    # rest of this teardown instead of following it (`down` waits for it before
    # it puts a raised neighbour limit back: lab/host.py).
    with ports_gone(lab, journal):  # the host ports go with their nodes' namespaces
        namespaces.delete_many(sorted(names - {switch_netns(lab)}))
    namespaces.delete_netns(switch_netns(lab))
    nsd = ns_dir(lab)
    # One lazy unmount of the lab's private tmpfs detaches every node's mount and
    # UTS namespace file below it at once: one RCU grace period instead of one per
    # file (2,000 files: 0.46 s one by one). Files left mounted without that tmpfs
    # (a crash before it was made) go one by one. The namespaces themselves are torn
    # down by another process, after `down` (kernel/held_open.py).
    with held_elsewhere(_files(nsd)):
        release_state_tmpfs(nsd)
    if nsd.is_dir():
        for f in sorted(nsd.iterdir()):
            with contextlib.suppress(OSError):
                nsfs.umount(str(f))
    release_state_tmpfs(lab_dir(lab))
    shutil.rmtree(lab_dir(lab), ignore_errors=True)
