"""A private /etc (and hostname) per node: mount + UTS namespace with an overlay.

Recipe measured in reference/node-notes.md: the node's files are seeded into
an upper directory first (the host's /etc is never written), then a process
joins the node's netns, unshares mount and UTS namespaces, makes / a slave (so
namespaces created later still appear inside), mounts the overlay on /etc and
a sysfs that shows the node's interfaces, and the namespace files are
bind-mounted into the lab's state dir so they outlive that process.

Unsharing a mount namespace needs a single-threaded process, so one forked
child does it for every node in a loop (no process per node), returning to the
host's namespaces to bind each result.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from palmnet.backends.netns import nsfs


@dataclass(frozen=True)
class NodeMounts:
    netns_path: str
    hostname: str
    upper: Path  # seeded /etc files of the node
    work: Path
    mnt_file: Path  # bind target of the node's mount namespace
    uts_file: Path


def prepare_ns_dir(path: Path) -> None:
    """Namespace files must sit on a mount that is not shared (EINVAL otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    nsfs.mount(str(path), str(path), None, nsfs.MS_BIND)
    nsfs.mount(None, str(path), None, nsfs.MS_PRIVATE)


def release_ns_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        nsfs.umount(str(path))


def _setup_one(job: NodeMounts, host_mnt: int, host_uts: int) -> None:
    net = os.open(job.netns_path, os.O_RDONLY)
    try:
        nsfs.setns(net, nsfs.CLONE_NEWNET)
    finally:
        os.close(net)
    nsfs.unshare(nsfs.CLONE_NEWNS | nsfs.CLONE_NEWUTS)
    nsfs.sethostname(job.hostname)
    nsfs.mount(None, "/", None, nsfs.MS_REC | nsfs.MS_SLAVE)
    nsfs.mount(
        "overlay",
        "/etc",
        "overlay",
        0,
        f"lowerdir=/etc,upperdir={job.upper},workdir={job.work}",
    )
    nsfs.mount("sysfs", "/sys", "sysfs", nsfs.MS_NOSUID | nsfs.MS_NODEV | nsfs.MS_NOEXEC)
    mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
    try:
        nsfs.setns(host_mnt, nsfs.CLONE_NEWNS)
        nsfs.setns(host_uts, nsfs.CLONE_NEWUTS)
        for fd, target in ((mnt, job.mnt_file), (uts, job.uts_file)):
            target.touch()
            nsfs.mount(f"/proc/self/fd/{fd}", str(target), None, nsfs.MS_BIND)
    finally:
        os.close(mnt)
        os.close(uts)


def create_mount_namespaces(jobs: list[NodeMounts]) -> None:
    """Create every node's mount+UTS namespace in one forked child."""
    if not jobs:
        return
    for job in jobs:
        job.work.mkdir(parents=True, exist_ok=True)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: single-threaded, may unshare a mount namespace
        os.close(read)
        code = 0
        try:
            host_mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
            host_uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
            for job in jobs:
                _setup_one(job, host_mnt, host_uts)
        except BaseException:
            os.write(write, traceback.format_exc().encode()[-4000:])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(f"creating node mount namespaces failed:\n{err}")


def release_node_mounts(mnt_file: Path, uts_file: Path) -> None:
    """Detach the namespace files; processes still inside keep them alive until exit."""
    for f in (mnt_file, uts_file):
        with contextlib.suppress(OSError):
            nsfs.umount(str(f))
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def enter_node(netns_path: str, mnt_file: Path | None, uts_file: Path | None) -> None:
    """Move this (single-threaded) process into a node: net, then mount and UTS."""
    fds = [os.open(netns_path, os.O_RDONLY)]
    kinds = [nsfs.CLONE_NEWNET]
    for f, kind in ((mnt_file, nsfs.CLONE_NEWNS), (uts_file, nsfs.CLONE_NEWUTS)):
        if f is not None and f.exists():
            fds.append(os.open(f, os.O_RDONLY))
            kinds.append(kind)
    try:
        for fd, kind in zip(fds, kinds, strict=True):
            nsfs.setns(fd, kind)
    finally:
        for fd in fds:
            os.close(fd)
    os.chdir("/")
