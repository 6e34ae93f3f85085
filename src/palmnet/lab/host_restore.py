"""The neighbour limit put back after `down` returns, once the kernel has room.

A lab that raised gc_thresh1/2/3 (lab/host.py) gets them back at `down`, but not
before its dying namespaces have let go of their entries: the kernel frees those
in its own cleanup work after the namespaces are deleted (about 0.8 s after a
1,000-host lab's), and the old gc_thresh3 below what the table holds would
refuse every new neighbour on the machine. Waiting for that inside `down` was
half of its time at 1,000 hosts, for a setting no part of the lab needs any more.

So `down` hands the restore over: the rows go to a file under the state root
(written before the journal forgets them: a crash loses nothing), and a detached
process waits for the table to drain, puts the values back (unless someone
changed them since) and removes the file. It holds a lock while it works;
`settle` takes the same lock, so an `up` that reads or raises the limit first
waits for restores in flight and finishes any whose process died.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from palmnet.kernel import neigh_limit
from palmnet.lab import store
from palmnet.state.paths import state_root

DRAIN_TIMEOUT = 10.0  # then the old values go back all the same: they are the machine's
LOCK = ".host-sysctl"  # lab names start with a letter (topology/model.py)

Rows = dict[str, tuple[int, int]]  # key -> (old, new)


def pending_dir() -> Path:
    return state_root() / ".host-sysctl"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """The restores' lock: a lab lock (lab/store.py) of a name no lab can have. Its
    wait is bounded by the holder's, a restorer's drain wait (DRAIN_TIMEOUT). The
    last holder with nothing left to do leaves the state root as `down` does."""
    with store.locked(LOCK):
        try:
            yield
        finally:
            if not pending():
                with contextlib.suppress(OSError):
                    pending_dir().rmdir()
                store.forget_lock(LOCK)


def put_back(rows: Rows) -> None:
    """gc_thresh3 last lowered once the table is below it, then every key put back
    unless changed since we raised it."""
    if "gc_thresh3" in rows:  # past it, the kernel refuses new entries
        neigh_limit.wait_below(rows["gc_thresh3"][0], DRAIN_TIMEOUT)
    for key, (old, new) in rows.items():
        neigh_limit.restore(key, old, new)


def needs_wait(rows: Rows) -> bool:
    """Whether the table still holds more than the old gc_thresh3 allows."""
    return "gc_thresh3" in rows and neigh_limit.current_entries() >= rows["gc_thresh3"][0]


def hand_over(lab: str, rows: Rows) -> Path:
    """The rows written for a detached restorer, which is started on them."""
    folder = pending_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{lab}.{os.getpid()}.{time.monotonic_ns()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: list(v) for k, v in rows.items()}))
    tmp.rename(path)
    subprocess.Popen(
        [sys.executable, "-m", "palmnet.lab.host_restore", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,  # a Ctrl-C on the terminal after `down` must not stop it
    )
    return path


def _read(path: Path) -> Rows:
    data = json.loads(path.read_text())
    return {str(k): (int(v[0]), int(v[1])) for k, v in data.items()}


def _finish(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, IndexError, TypeError):
        put_back(_read(path))
    path.unlink(missing_ok=True)


def pending() -> list[Path]:
    try:
        return sorted(pending_dir().glob("*.json"))
    except OSError:
        return []


def settle() -> None:
    """Restores handed over and not done yet: waited for, or done here if their
    process died. Free when there are none (one directory listing)."""
    if not pending():
        return
    with _locked():
        for path in pending():
            _finish(path)


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    with _locked():
        if path.exists():
            _finish(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
