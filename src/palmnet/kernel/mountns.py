"""A private /etc (and hostname) per node: mount + UTS namespace with an overlay.

Recipe measured in reference/node-notes.md: the node's files are seeded into
an upper directory first (the host's /etc is never written), then a process
joins the node's netns, unshares mount and UTS namespaces from a private
template (see `_template`), mounts the overlay on /etc and
a sysfs that shows the node's interfaces, and the namespace files are
bind-mounted into the lab's state dir so they outlive that process.

Unsharing a mount namespace needs a single-threaded process, so one forked
child does it for every node in a loop (no process per node), returning to the
host's namespaces to bind each result. A job may carry its `seed` (writing the
node's upper /etc): the child runs it just before that node's mounts, so a
background job costs the parent nothing per node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from palmnet.kernel import nsfs

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class NodeMounts:
    netns_path: str
    hostname: str
    upper: Path  # seeded /etc files of the node
    work: Path
    mnt_file: Path  # bind target of the node's mount namespace
    uts_file: Path
    binds: tuple[tuple[str, str], ...] = ()  # (per-node dir, path inside the node)
    shared: Path | None = None  # the lab's /etc layer, between the host's and `upper`
    seed: Callable[[], None] | None = None  # writes `upper` (run by the child if given)


def mount_state_tmpfs(path: Path) -> None:
    """Give the lab's state dir its own private tmpfs.

    Private, because namespace files can only be bind-mounted onto a mount
    that is not shared (EINVAL otherwise). tmpfs, because the overlay's upper
    and work dirs live here: on this kind of machine /run may be the root ext4,
    where each overlay mount cost 3-5 ms instead of 0.1 ms. It also makes the
    state as volatile as the namespaces it describes.
    """
    path.mkdir(parents=True, exist_ok=True)
    nsfs.mount("palmnet", str(path), "tmpfs", nsfs.MS_NOSUID | nsfs.MS_NODEV, "mode=0755")
    nsfs.mount(None, str(path), None, nsfs.MS_PRIVATE)


def release_state_tmpfs(path: Path) -> None:
    """Unmount the lab's tmpfs (and any stacked by an interrupted run)."""
    for _ in range(8):
        try:
            nsfs.umount(str(path))
        except OSError:
            return


def _template(ns_dir: Path, host_mnt: int, keep: list[Path]) -> int:
    """A private copy of the host's mounts without the namespace files.

    Every node's mount namespace is copied from this one rather than from the
    host's: the host holds a mount per namespace file of every lab (2-3 per
    node), and copying them all for every node made bring-up quadratic. That
    is every lab's, not only this one's: with another 500-node lab running,
    its 1,000 files were copied into each new node (a 500-node bring-up's
    mount child went from 0.5 to 1.3 s of CPU). It is also private: a mount
    propagated into hundreds of node namespaces costs the same, and nothing
    inside a node needs the host's later mounts. `ns_dir` is the lab's own
    tmpfs holding the namespace files; `keep` are paths the nodes' mounts
    use (upper and work dirs, bind sources), whose mounts must stay.
    """
    nsfs.unshare(nsfs.CLONE_NEWNS)
    nsfs.mount(None, "/", None, nsfs.MS_REC | nsfs.MS_PRIVATE)
    for path in (ns_dir, Path(nsfs.NETNS_DIR)):
        with contextlib.suppress(OSError):
            nsfs.umount(str(path))
    _detach_namespace_files(keep)
    # Every node mounts a sysfs of its own on /sys, over the host's and the dozen
    # mounts below it (cgroups, debugfs, bpf...), which it then never sees: copied
    # into each node they cost about 12 mounts per node (memory, and the mount
    # child's work). Detached here, a node's /sys is its own sysfs alone. In a user
    # namespace (a rootless lab) they are locked to it and stay.
    with contextlib.suppress(OSError):
        nsfs.umount("/sys")
    # Under the unmounted /run/netns lie the names of every namespace on the machine,
    # as empty files: `ip addr` in a node opened each to name its peers and said
    # "Peer netns reference is invalid" once per file. A node sees none of them.
    with contextlib.suppress(OSError):
        nsfs.mount("palmnet", nsfs.NETNS_DIR, "tmpfs", nsfs.MS_NOSUID | nsfs.MS_NODEV, "mode=0755")
    template = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    nsfs.setns(host_mnt, nsfs.CLONE_NEWNS)
    return template


def _detach_namespace_files(keep: list[Path]) -> None:
    """Unmount every namespace file (nsfs) left in this mount namespace.

    Where they sit on a mount of their own (a lab's ns dir, /run/netns, a
    container manager's dir) that mount goes in one call, with all of them
    (each unmount waits for an RCU grace period); elsewhere one by one.
    """
    points: dict[int, tuple[int, str, str]] = {}  # id -> (parent id, mount point, fstype)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            point = _OCTAL.sub(lambda m: chr(int(m[1], 8)), fields[4])  # \040 is a space
            points[int(fields[0])] = (int(fields[1]), point, fstype)
    holders: dict[int, list[str]] = {}
    for parent, point, fstype in points.values():
        if fstype == "nsfs":
            holders.setdefault(parent, []).append(point)
    outer_first = sorted(holders, key=lambda p: len(points.get(p, (0, "/", ""))[1]))
    for parent in outer_first:
        files = holders[parent]
        where = points.get(parent, (0, "/", ""))[1]
        if where != "/" and not any(_under(k, where) for k in keep):
            with contextlib.suppress(OSError):  # already gone with an outer one
                nsfs.umount(where)
            continue
        for point in files:
            with contextlib.suppress(OSError):
                nsfs.umount(point)


def _under(path: Path, point: str) -> bool:
    return str(path) == point or str(path).startswith(point.rstrip("/") + "/")


def _setup_one(job: NodeMounts, template: int, host_mnt: int, host_uts: int) -> None:
    net = os.open(job.netns_path, os.O_RDONLY)
    try:
        nsfs.setns(net, nsfs.CLONE_NEWNET)
    finally:
        os.close(net)
    nsfs.setns(template, nsfs.CLONE_NEWNS)
    nsfs.unshare(nsfs.CLONE_NEWNS | nsfs.CLONE_NEWUTS)
    nsfs.sethostname(job.hostname)
    lowers = f"{job.shared}:/etc" if job.shared is not None else "/etc"  # leftmost on top
    nsfs.mount(
        "overlay",
        "/etc",
        "overlay",
        0,
        f"lowerdir={lowers},upperdir={job.upper},workdir={job.work}",
    )
    nsfs.mount("sysfs", "/sys", "sysfs", nsfs.MS_NOSUID | nsfs.MS_NODEV | nsfs.MS_NOEXEC)
    for source, target in job.binds:
        os.makedirs(target, exist_ok=True)  # e.g. /run/dhcpcd, which no package creates
        nsfs.mount(source, target, None, nsfs.MS_BIND)
    mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
    try:
        nsfs.setns(host_mnt, nsfs.CLONE_NEWNS)
        nsfs.setns(host_uts, nsfs.CLONE_NEWUTS)
        for fd, ns_file in ((mnt, job.mnt_file), (uts, job.uts_file)):
            os.close(os.open(ns_file, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
            nsfs.mount(f"/proc/self/fd/{fd}", str(ns_file), None, nsfs.MS_BIND)
    finally:
        os.close(mnt)
        os.close(uts)


NS_GET_MNTNS_ID = 0x8008B705  # _IOR(0xb7, 5, __u64), Linux >= 6.8


def _mntns_id(fd: int) -> int | None:
    buf = bytearray(8)
    try:
        fcntl.ioctl(fd, NS_GET_MNTNS_ID, buf)
    except OSError:
        return None
    return int.from_bytes(buf, sys.byteorder)


def _pin_to_a_newer_cpu(host_mnt: int) -> None:
    """Run this child on a CPU where new mount namespaces get a larger id than ours.

    The kernel refuses (EINVAL) to bind a mount namespace's file into a mount
    namespace whose id is not smaller (mnt_ns_loop: a loop could keep both alive).
    Since 6.18 the ids come from per-CPU batches of a global counter (gen_cookie),
    so they grow on each CPU but not across CPUs: measured as a plain user, about
    half of 40 node namespaces made right after the lab's own (a rootless lab's
    holder) got a smaller id than it and could not be bound. The CPU that made our
    namespace, or one whose batch is newer, always gives larger ids; this finds one
    with a throwaway namespace per CPU tried. The machine's own mount namespace (a
    lab with root) is older than any: the first CPU does."""
    ours = _mntns_id(host_mnt)
    if ours is None:  # older kernels: a global sequence, always larger
        return
    for cpu in sorted(os.sched_getaffinity(0)):
        os.sched_setaffinity(0, {cpu})
        nsfs.unshare(nsfs.CLONE_NEWNS)
        probe = os.open("/proc/self/ns/mnt", os.O_RDONLY)
        try:
            newer = (_mntns_id(probe) or 0) > ours
        finally:
            nsfs.setns(host_mnt, nsfs.CLONE_NEWNS)
            os.close(probe)
        if newer:
            return


class MountJob:
    """The forked child making mount namespaces; `wait()` joins it."""

    def __init__(self, pid: int, errors: int, nodes: int = 0) -> None:
        self.pid = pid
        self.errors = errors
        self.nodes = nodes
        self.started = time.monotonic()

    def wait(self, check: bool = True) -> None:
        if self.pid == 0:
            return
        with os.fdopen(self.errors, "rb") as f:
            err = f.read().decode()
        _, status, usage = os.wait4(self.pid, 0)
        self.pid = 0
        if os.environ.get("PALMNET_TRACE") == "1":
            print(
                f"palmnet: mount namespaces of {self.nodes} nodes: child done after"
                f" {time.monotonic() - self.started:.3f} s at most,"
                f" cpu {usage.ru_utime + usage.ru_stime:.3f} s",
                file=sys.stderr,
            )
        if status != 0 and check:
            raise OSError(f"creating node mount namespaces failed:\n{err}")


def create_mount_namespaces(jobs: list[NodeMounts]) -> MountJob:
    """Start one forked child that makes every node's mount+UTS namespace."""
    if not jobs:
        return MountJob(0, -1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: single-threaded, may unshare a mount namespace
        os.close(read)
        code = 0
        try:
            host_mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
            host_uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
            keep = [p for j in jobs for p in (j.upper, j.work, *(Path(s) for s, _ in j.binds))]
            _pin_to_a_newer_cpu(host_mnt)
            template = _template(jobs[0].mnt_file.parent, host_mnt, keep)
            for job in jobs:
                if job.seed is not None:
                    job.seed()
                job.work.mkdir(parents=True, exist_ok=True)
                _setup_one(job, template, host_mnt, host_uts)
        except BaseException:
            os.write(write, traceback.format_exc().encode()[-4000:])
            code = 1
        os._exit(code)
    os.close(write)
    return MountJob(pid, read, len(jobs))


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
