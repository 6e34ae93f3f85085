"""A user namespace that holds a rootless lab: made, entered, and emptied.

A plain user may create a user namespace and, inside it, network and mount
namespaces, bridges, veth pairs, nftables tables and sysctls of those network
namespaces (reference/platform-notes.md, checked by hand). palmnet makes one
per lab: a small holder process unshares user, mount, network and UTS namespaces,
gets its uid/gid maps from its parent, mounts a tmpfs over /run (so the lab
has its own /run/netns, and daemons their /run/dhcpcd...) and over the lab's
state root, then execs `sleep infinity` to keep them alive at ~1 MB.

Whoever acts on the lab (`up`, `exec`, the toolbox) enters the holder's
namespaces with setns: user first (which gives the full capability set in
it), then mount, network and UTS (the holder has its own UTS namespace too).
From there the netns backend runs unchanged as uid 0 of the lab's user
namespace. Everything the lab makes belongs to that
user namespace, so emptying it (SIGKILL to every process in it) removes the
whole lab: namespaces, mounts and tmpfs go when their last holder goes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import traceback  # at import, not in the child: it may not see the host's files
from dataclasses import dataclass
from pathlib import Path

from palmnet.kernel import nsfs

CLONE_NEWUSER = 0x10000000
SLEEP = "/bin/sleep"


@dataclass(frozen=True)
class IdMap:
    """How the user's ids appear inside: `0 UID 1` alone, or with a subordinate range
    (/etc/subuid) written by newuidmap/newgidmap, so daemons' own users exist."""

    uid: int
    gid: int
    sub_uid: tuple[int, int] | None = None  # (first, count)
    sub_gid: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.sub_uid and self.sub_gid:
            return f"0 -> {self.uid}, 1..{self.sub_uid[1]} -> {self.sub_uid[0]}.. (newuidmap)"
        return f"0 -> {self.uid} only (single mapping)"


def _sub_range(path: str, user: str, uid: int) -> tuple[int, int] | None:
    """The user's first subordinate range in /etc/subuid or /etc/subgid."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)):
            with contextlib.suppress(ValueError):
                return int(parts[1]), int(parts[2])
    return None


def id_map_for_me() -> IdMap:
    """The map a holder of this user gets: with the user's subordinate ids where
    newuidmap and newgidmap are installed and /etc/subuid and /etc/subgid give a
    range, else the single mapping any user may write."""
    import pwd

    uid, gid = os.geteuid(), os.getegid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    import shutil  # here: only a rootless lab asks, and every command imports this module

    if uid != 0 and shutil.which("newuidmap") and shutil.which("newgidmap"):
        sub_uid = _sub_range("/etc/subuid", user, uid)
        sub_gid = _sub_range("/etc/subgid", user, uid)
        if sub_uid and sub_gid:
            return IdMap(uid, gid, sub_uid, sub_gid)
    return IdMap(uid, gid)


def _write_maps(pid: int, ids: IdMap) -> None:
    if ids.sub_uid and ids.sub_gid:
        for tool, own, (first, count) in (
            ("newuidmap", ids.uid, ids.sub_uid),
            ("newgidmap", ids.gid, ids.sub_gid),
        ):
            argv = [tool, str(pid), "0", str(own), "1", "1", str(first), str(count)]
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise OSError(f"{' '.join(argv)}: {done.stderr.strip()}")
        return
    Path(f"/proc/{pid}/setgroups").write_text("deny")
    Path(f"/proc/{pid}/uid_map").write_text(f"0 {ids.uid} 1\n")
    Path(f"/proc/{pid}/gid_map").write_text(f"0 {ids.gid} 1\n")


def _tmpfs(path: Path, mode: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    nsfs.mount("palmnet", str(path), "tmpfs", nsfs.MS_NOSUID | nsfs.MS_NODEV, f"mode={mode}")


def _holder_mounts(keep: Path | None, state_root: Path) -> None:
    """In the holder (its own user and mount namespace): nothing propagates either way,
    /run is the lab's own tmpfs with an empty /run/netns, `keep` (the user's runtime
    directory, where the lab's outer record lives) is bound back in its place, and the
    lab's state root is a tmpfs of its own."""
    nsfs.mount(None, "/", None, nsfs.MS_REC | nsfs.MS_PRIVATE)
    kept = os.open(keep, os.O_PATH | os.O_DIRECTORY) if keep is not None else -1
    try:
        _tmpfs(Path("/run"), "0755")
        os.mkdir(nsfs.NETNS_DIR, 0o755)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            nsfs.mount(f"/proc/self/fd/{kept}", str(keep), None, nsfs.MS_BIND | nsfs.MS_REC)
    finally:
        if kept >= 0:
            os.close(kept)
    _tmpfs(state_root, "0700")


def start_holder(title: str, ids: IdMap, keep: Path | None, state_root: Path) -> int:
    """Fork the holder of a new user + mount + network namespace; its pid once it is
    ready (maps written, mounts made). `title` is its argv[0], for `ps`."""
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the holder: single-threaded after fork, may unshare a user namespace
        try:
            os.close(to_child_w)
            os.close(to_parent_r)
            os.setsid()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            nsfs.unshare(CLONE_NEWUSER | nsfs.CLONE_NEWNS | nsfs.CLONE_NEWNET | nsfs.CLONE_NEWUTS)
            os.write(to_parent_w, b"u")
            if os.read(to_child_r, 1) != b"m":
                os._exit(1)
            _holder_mounts(keep, state_root)
            os.chdir("/")
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.write(to_parent_w, b"k")
            os.execv(SLEEP, [title, "infinity"])  # closes the pipes (O_CLOEXEC)
        except BaseException:
            with contextlib.suppress(OSError):
                os.write(to_parent_w, traceback.format_exc().encode()[-3000:])
        os._exit(1)
    os.close(to_child_r)
    os.close(to_parent_w)
    try:
        first = os.read(to_parent_r, 1)
        if first == b"u":
            try:
                _write_maps(pid, ids)
            except OSError:
                os.write(to_child_w, b"x")
                raise
            os.write(to_child_w, b"m")
        said = first + _read_all(to_parent_r)
    except BaseException:
        _reap(pid)
        raise
    finally:
        os.close(to_child_w)
        os.close(to_parent_r)
    if said != b"uk":
        _reap(pid)
        lines = said.decode(errors="replace").strip().splitlines()
        raise OSError(
            f"could not make the lab's user namespace: {lines[-1] if lines else '?'}"
            f"{why_no_userns()}"
        )
    # Not reaped here: a thread would keep this process from entering the namespace,
    # and the holder outlives it (init reaps it after `down`).
    return pid


def why_no_userns() -> str:
    """What on this machine keeps a plain user from a usable user namespace, if seen."""

    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    if read("/proc/sys/user/max_user_namespaces") == "0":
        return " (user.max_user_namespaces is 0: user namespaces are off)"
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return (
            " (kernel.apparmor_restrict_unprivileged_userns is 1: AppArmor gives a user"
            " namespace no capabilities unless the program has a profile allowing `userns`;"
            " see the README, labs without root)"
        )
    if read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return " (kernel.unprivileged_userns_clone is 0)"
    return ""


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 4096):
        out += chunk
    return out


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


def single_mapping() -> bool:
    """This process is in a user namespace that maps one id only (`0 UID 1`, no
    newuidmap): no other user or group exists in it, and setgroups() is denied, so
    a daemon cannot switch to its own user (radvd -u, rdnssd's initgroups, dnsmasq's
    group `dip`, dhcpcd's privilege separation)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().split("\n")
    except OSError:
        return False
    rows = [line.split() for line in lines if line.strip()]
    return len(rows) == 1 and rows[0][2] == "1"


def userns_inode(pid: int) -> int | None:
    """The inode of a process's user namespace (what tells the lab's processes apart)."""
    try:
        return os.stat(f"/proc/{pid}/ns/user").st_ino
    except OSError:
        return None


def own_userns_inode() -> int:
    return os.stat("/proc/self/ns/user").st_ino


def enter(pid: int) -> None:
    """Move this process into the holder's user, mount, network and UTS namespaces
    (UTS too: a node's mount child returns to the lab's UTS namespace between nodes,
    and only one the lab's user namespace owns lets it).

    Only a single-threaded process may join a user or mount namespace (EINVAL
    otherwise). The working directory is kept: the holder sees the machine's files
    except /run and the lab's state root."""
    if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
        raise OSError("cannot enter a rootless lab from a process with threads")
    cwd = None
    with contextlib.suppress(OSError):
        cwd = os.getcwd()
    kinds = {
        "user": CLONE_NEWUSER,
        "mnt": nsfs.CLONE_NEWNS,
        "net": nsfs.CLONE_NEWNET,
        "uts": nsfs.CLONE_NEWUTS,
    }
    fds = [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY) for kind in kinds]
    try:
        for fd, kind in zip(fds, kinds.values(), strict=True):
            nsfs.setns(fd, kind)
    finally:
        for fd in fds:
            os.close(fd)
    try:
        os.chdir(cwd or "/")
    except OSError:
        os.chdir("/")


def pids_in(userns: int, mount_point: str | None = None) -> list[int]:
    """Every process in the user namespace with this inode (not this process).

    With `mount_point`, only those whose mount namespace has a mount there: an
    inode number is reused once its namespace is gone, so where no live holder
    vouches for the namespace, a mount only the lab's namespaces have does."""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/user").st_ino != userns:
                continue
            if mount_point is not None and not _has_mount(int(entry.name), mount_point):
                continue
            if _dead(entry.name):
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def _dead(pid: str) -> bool:
    """A zombie (or exiting) process: it has left its namespaces already but keeps its
    credentials, so it still shows in the user namespace until its new parent reaps it
    (measured: 1.4 s of rescans at a 10-node `down` before this was skipped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _has_mount(pid: int, point: str) -> bool:
    with open(f"/proc/{pid}/mountinfo") as f:
        return any(line.split()[4] == point for line in f)


def empty(userns: int, mount_point: str | None = None, timeout: float = 5.0) -> list[int]:
    """SIGKILL every process of the user namespace until none is left (a supervisor
    could start one between two scans); what is still there at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = pids_in(userns, mount_point)
        if not left or time.monotonic() > deadline:
            return left
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in left:
            _wait_gone(pid, max(0.0, deadline - time.monotonic()))


def _wait_gone(pid: int, timeout: float) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(timeout * 1000)
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
