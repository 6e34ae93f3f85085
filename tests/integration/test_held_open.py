"""kernel/held_open.py against the kernel: while the block runs, a detached process
holds the files open (so the last reference to what they pin, a lab's mount
namespaces at `down`, is dropped in that process), it keeps none of the caller's
other descriptors (a lab's lock stays the caller's to release), and it exits once
the block ends. Plain files in the test's own folder; no namespace is made."""

from __future__ import annotations

import fcntl
import os
import select
from pathlib import Path

from palmnet.kernel.held_open import held_elsewhere


def _holders(path: Path) -> list[int]:
    """Processes other than this one with `path` open."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if str(path) in links:
            out.append(int(pid))
    return out


def test_a_detached_process_holds_the_files_until_the_block_ends(tmp_path: Path) -> None:
    files = [tmp_path / f"f{i}" for i in range(3)]
    for f in files:
        f.write_text("x")
    lock_path = tmp_path / "lock"
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as `down` holds its lab's lock
    with held_elsewhere([*files, tmp_path / "missing"]):
        holders = {pid for f in files for pid in _holders(f)}
        assert len(holders) == 1, f"one process should hold the files, found {holders}"
        (holder,) = holders
        assert _holders(lock_path) == [], "the holder kept the caller's lock file open"
        os.close(lock)  # released here: nobody else may hold it now
        other = os.open(lock_path, os.O_RDWR)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the holder had it
        os.close(other)
        with open(f"/proc/{holder}/status") as status:
            ppid = next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
        assert ppid != os.getpid(), "the holder is not this process's child (no one reaps it)"
        pidfd = os.pidfd_open(holder)
    try:
        ready, _, _ = select.select([pidfd], [], [], 10)
        assert ready, f"the holder {holder} did not exit within 10 s of the block's end"
    finally:
        os.close(pidfd)


def test_nothing_to_hold_starts_no_process(tmp_path: Path) -> None:
    before = set(os.listdir("/proc"))
    with held_elsewhere([tmp_path / "missing"]):
        children = [
            p
            for p in set(os.listdir("/proc")) - before
            if p.isdigit() and _parent(p) == os.getpid()
        ]
        assert children == []


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
    except OSError:
        return 0
