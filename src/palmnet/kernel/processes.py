"""Processes inside a node: started in its namespaces, stopped by recorded pid.

A process is started in its own session so its children (privsep helpers,
forks) can be signalled as a group. Stopping waits on a pidfd for the exit
instead of sleeping.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import time
from pathlib import Path

from palmnet.kernel import nsfs
from palmnet.kernel.mountns import enter_node


def spawn(
    argv: list[str],
    netns_path: str,
    mnt_file: Path | None,
    uts_file: Path | None,
    log: Path,
    env: dict[str, str] | None = None,
) -> int:
    """Start argv inside the node; returns its pid. Output goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: enter_node(netns_path, mnt_file, uts_file),
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    # Popen keeps a handle only to reap; the journal holds the pid from here on.
    proc.returncode = 0  # do not warn about it in __del__
    return proc.pid


def start_time(pid: int) -> int | None:
    """Kernel start time of a pid (field 22 of stat): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


# struct pidfd_info (linux/pidfd.h), its first version: 64 bytes, exit_code at 60.
PIDFD_INFO_EXIT = 0x8
PIDFD_INFO_SIZE = 64
PIDFD_GET_INFO = (3 << 30) | (PIDFD_INFO_SIZE << 16) | (0xFF << 8) | 11  # _IOWR(0xFF, 11, ..)


def exit_status(pid: int, pidfd: int, started: int | None = None) -> int | None:
    """How a process that exited ended, as waitpid() reports it; None if nobody can
    tell any more. `pidfd` is the process's (it said the exit).

    Its parent takes it with waitid() (and reaps it). Anyone else: the kernel keeps
    it for the pidfd once the parent reaped it (PIDFD_INFO_EXIT, Linux 6.15), and
    /proc/PID/stat shows it (field 52) while the process is a zombie; asked in that
    order twice, since the parent may reap it in between."""
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        result = None  # not ours: another process is its parent
    else:
        if result is not None:
            return _wait_status(result.si_code, result.si_status)
    for _ in range(2):
        status = _pidfd_exit_code(pidfd)
        if status is None:
            status = _zombie_exit_code(pid, started)
        if status is not None:
            return status
    return None


def _wait_status(code: int, value: int) -> int:
    """waitid()'s (si_code, si_status) as waitpid()'s status word."""
    if code == os.CLD_KILLED:
        return value
    if code == os.CLD_DUMPED:
        return value | 0x80
    return (value & 0xFF) << 8


def _pidfd_exit_code(pidfd: int) -> int | None:
    buf = bytearray(struct.pack("=Q", PIDFD_INFO_EXIT) + bytes(PIDFD_INFO_SIZE - 8))
    try:
        fcntl.ioctl(pidfd, PIDFD_GET_INFO, buf)
    except OSError:  # before Linux 6.13 (no such ioctl); ESRCH: reaped, nothing kept
        return None
    (mask,) = struct.unpack_from("=Q", buf, 0)
    if not mask & PIDFD_INFO_EXIT:
        return None  # not reaped yet (6.15 keeps it from the reap on), or before 6.15
    return int(struct.unpack_from("=i", buf, 60)[0])


def _zombie_exit_code(pid: int, started: int | None) -> int | None:
    fields = stat_fields(pid)
    if fields is None or len(fields) < 50 or fields[0] != "Z":
        return None
    if started is not None and int(fields[19]) != started:
        return None
    return int(fields[49])


def _wait_exit(pid: int, timeout: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()  # fds may be above 1023 in a big lab
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def stop(pid: int, started: int | None = None, timeout: float = 3.0) -> None:
    """SIGTERM, wait for the exit, SIGKILL if it ignores us. Only our pid (same start time).

    A second SIGTERM comes after 0.3 s: dhcpcd 9.4 drops one that arrives just after
    it bound a lease (reference/pd-notes.md), and a second one ends it at once.
    """
    if started is not None and start_time(pid) != started:
        return
    _signal(pid, signal.SIGTERM)
    if _wait_exit(pid, 0.3):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal(pid, sig)
        if _wait_exit(pid, timeout):
            return


def _signal(pid: int, sig: int) -> None:
    """The process group we started (the daemon and its helpers), else the pid."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_all(pids: list[int], timeout: float = 3.0) -> None:
    """Stop every process left in a lab namespace: TERM all, wait, KILL the rest."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        if not _wait_exit(pid, max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 1.0)


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_in_netns(
    netns_path: str, argv: list[str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A host program run in a network namespace only (its files stay the host's).

    The child joins the namespace before exec; this process and its threads
    stay where they are."""

    def enter() -> None:
        fd = os.open(netns_path, os.O_RDONLY)
        try:
            nsfs.setns(fd, nsfs.CLONE_NEWNET)
        finally:
            os.close(fd)

    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, preexec_fn=enter
    )


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def kill_group_leftovers(pgid: int, started: int | None) -> list[int]:
    """SIGKILL what is left of a dead daemon's process group (its privsep helpers:
    dhcpcd's network proxy keeps the DHCP socket when the manager dies, and a new
    dhcpcd then hears nothing). Only processes of that group that started no earlier
    than its leader did (a reused pid number is not the group). The killed pids."""
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is None or int(fields[2]) != pgid or fields[0] == "Z":
            continue
        if started is not None and int(fields[19]) < started:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
    return killed
