"""The lab's supervisor: a daemon that dies is started again, as procd does on OpenWrt.

One process per lab (`python -m palmnet.lab.supervisor LAB`), started at the end
of `up` in its own session, its pid in the lab's journal (kind `supervisor`)
before it runs, so `down` stops it first, also after a crash or a kill -9 of
`up`. It watches every daemon the journal names with a pidfd (an event when it
exits: no polling), and when one dies it waits as services/respawn.py says,
takes the lab's lock (a verb that stops a node or the lab holds it, and
forgets the node's daemons before letting go: nothing it stopped on purpose
is started again), reads the journal again and, if the daemon is still the
lab's and its node still runs, starts it through the lab's backend (its files
rendered anew from the plan). What happened goes into the journal (kind
`respawn`), for `ls`, and into supervisor.log in the lab's state dir.

A death is counted once. The journal names a dead daemon's pid until a restart
(or a verb) replaces it, and the supervisor reads the journal at every wake:
it remembers the process whose death it counted (pid and start time) and
does not take it for one that died unseen. How it died is the kernel's word:
waitid() on the pidfd for the daemons it started itself (its children), the
pidfd's exit information or the zombie's /proc entry for those `up` started
(kernel/processes.py: exit_status).

How it is kept alive: it ignores SIGHUP's default (a SIGHUP from a verb that
started daemons makes it read the journal again) and SIGINT; `palmnet up` on
a running lab starts it again if it is gone, and `ls` shows a lab whose
supervisor is gone. It exits by itself when the lab's journal is gone.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from palmnet.errors import PalmnetError
from palmnet.kernel import processes
from palmnet.lab import store
from palmnet.lab.backends import backend_of
from palmnet.services import respawn
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir

KIND = "supervisor"
RESPAWN = "respawn"


@dataclass
class Watched:
    key: str  # NODE/SERVICE
    node: str
    service: str
    pid: int
    start: int | None  # kernel start time: a reused pid is another process
    since: float  # time.monotonic() when the supervisor first saw it running
    fd: int  # pidfd


def log_path(lab: str) -> Path:
    return lab_dir(lab) / "supervisor.log"


# -- run from the Lab API --------------------------------------------------------------
def start(lab: str, j: Journal) -> int:
    """Start the lab's supervisor (journalled before it runs); its pid."""
    j.record(KIND, KIND, None, pid=None)
    with open(log_path(lab), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "palmnet.lab.supervisor", lab],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    proc.returncode = 0  # not ours to reap: the journal holds it from here on
    j.record(KIND, KIND, None, pid=proc.pid, start=processes.start_time(proc.pid))
    return proc.pid


def pid_of(j: Journal) -> int | None:
    """The supervisor's pid if it runs."""
    for e in j.entries(KIND):
        if e.data.get("pid"):
            pid = int(e.data["pid"])
            if processes.alive(pid) and processes.start_time(pid) == e.data.get("start"):
                return pid
    return None


def stop(j: Journal) -> None:
    """Stop the supervisor (by its recorded pid) and forget it."""
    for e in j.entries(KIND):
        if e.data.get("pid"):
            processes.stop(int(e.data["pid"]), e.data.get("start"))
        j.forget(KIND, e.name)


def notify(j: Journal) -> None:
    """Tell the supervisor that daemons were started or stopped: it reads the journal."""
    pid = pid_of(j)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)


def record_of(j: Journal, key: str) -> respawn.Record:
    for e in j.entries(RESPAWN):
        if e.name == key:
            return respawn.Record.from_json(e.data)
    return respawn.Record()


def forget(j: Journal, key: str) -> None:
    """A daemon started afresh by `up`: its history starts again."""
    j.forget(RESPAWN, key)


def forget_node(j: Journal, node: str) -> None:
    """A node started afresh: its daemons' history starts again."""
    for e in j.entries(RESPAWN, node=node):
        j.forget(RESPAWN, e.name)


# -- the process ---------------------------------------------------------------------
class Supervisor:
    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.watched: dict[str, Watched] = {}
        self.due: dict[str, tuple[float, int]] = {}  # key -> (restart time, the dead pid)
        # key -> (pid, start time) of the process whose death was counted last
        self.counted: dict[str, tuple[int, int | None]] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGHUP, lambda *_: None)  # just wakes the poll
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def say(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    def lab_alive(self) -> bool:
        return store.has_journal(self.lab)

    def refresh(self) -> None:
        """Watch what the journal names now; stop watching what it forgot."""
        with store.journal(self.lab) as j:
            wanted = {}
            for e in j.entries("process"):
                pid = e.data.get("pid")
                if pid and e.node:
                    wanted[e.name] = (e.node, int(pid), e.data.get("start"))
        for key in list(self.watched):
            w = self.watched[key]
            if wanted.get(key, (None, None, None))[1:] != (w.pid, w.start):
                os.close(w.fd)
                del self.watched[key]
        self.counted = {k: v for k, v in self.counted.items() if wanted.get(k, (None,))[1:] == v}
        for key, (node, pid, start) in wanted.items():
            if key in self.watched or key in self.due or self.counted.get(key) == (pid, start):
                continue
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                fd = -1
            if fd < 0 or processes.start_time(pid) != start:
                if fd >= 0:
                    os.close(fd)
                self.died(key, node, (pid, start), 0.0, "gone before the supervisor saw it")
                continue
            service = key.rsplit("/", 1)[-1]
            self.watched[key] = Watched(key, node, service, pid, start, time.monotonic(), fd)

    def died(
        self, key: str, node: str, process: tuple[int, int | None], ran: float, how: str
    ) -> None:
        """Count the death of `process` (pid, start time) and schedule its restart."""
        pid = process[0]
        self.counted[key] = process
        with store.journal(self.lab) as j:
            before = record_of(j, key)
            if before.state == respawn.FAILED:
                self.say(f"{key} (pid {pid}) {how}: given up on already, not counted")
                return
            record = respawn.died(before, ran, how, time.time())
            j.record(RESPAWN, key, node, **record.to_json())
        if record.state == respawn.FAILED:
            self.say(f"{key} (pid {pid}) {how} after {ran:.1f} s: {record.crashes} crashes "
                     f"in a row, given up (`palmnet up` on the lab tries again)")  # fmt: skip
            return
        wait = respawn.delay(record)
        self.say(f"{key} (pid {pid}) {how} after {ran:.1f} s: restart in {wait:.1f} s")
        self.due[key] = (time.monotonic() + wait, pid)

    def reap(self, w: Watched) -> None:
        try:
            status = processes.exit_status(w.pid, w.fd, w.start)
        finally:
            os.close(w.fd)
            del self.watched[w.key]
        how = UNKNOWN_EXIT if status is None else describe(status)
        self.died(w.key, w.node, (w.pid, w.start), time.monotonic() - w.since, how)

    def restart(self, key: str) -> None:
        """Start `key` again if the journal still names the process that died (a verb
        that stopped or restarted the node meanwhile has the last word), under the
        lab's lock."""
        _, dead = self.due.pop(key)
        node, service = key.rsplit("/", 1)
        with store.locked(self.lab), store.journal(self.lab) as j:
            entry = next((e for e in j.entries("process", node=node) if e.name == key), None)
            still = entry is not None and entry.data.get("pid") == dead
            if not still or j.meta("status") != "running" or node in j.meta("stopped", []):
                self.say(f"{key}: not restarted (stopped or started anew meanwhile)")
                return
            # Counted before the start: start_service journals the new pid at once and
            # then waits for the daemon to be ready, and `ls` (no lock) must never see
            # the new pid with the old count.
            record = respawn.restarted(record_of(j, key))
            j.record(RESPAWN, key, node, **record.to_json())
            try:
                plan = store.stored_plan(j)
                pid = backend_of(j).start_service(plan, j, node, service)
            except (PalmnetError, OSError) as exc:
                record = respawn.died(record, 0.0, f"failed to start: {exc}", time.time())
                j.record(RESPAWN, key, node, **record.to_json())
                self.say(f"{key}: restart failed: {exc}")
                # the start may have journalled a pid that died at once: counted here
                entry = next((e for e in j.entries("process", node=node) if e.name == key), None)
                if entry is not None and entry.data.get("pid"):
                    dead = int(entry.data["pid"])
                    started = entry.data.get("start")
                    self.counted[key] = (dead, started)
                    if started is not None:  # never signal a pid that may be another's now
                        processes.stop(dead, started)  # or never got ready
                if record.state != respawn.FAILED:
                    self.due[key] = (time.monotonic() + respawn.delay(record), dead)
                return
        self.say(f"{key}: restarted, pid {pid} (restart {record.restarts})")

    def run(self) -> None:
        self.say(f"supervising lab {self.lab} (pid {os.getpid()})")
        while self.lab_alive():
            self.refresh()
            poller = select.poll()
            poller.register(self.wake_r, select.POLLIN)
            by_fd = {w.fd: w for w in self.watched.values()}
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            now = time.monotonic()
            timeout = min((t - now for t, _ in self.due.values()), default=None)
            events = poller.poll(None if timeout is None else max(timeout, 0) * 1000)
            for fd, _ in events:
                if fd == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 512)
                elif fd in by_fd:
                    self.reap(by_fd[fd])
            for key, (when, _) in list(self.due.items()):
                if when <= time.monotonic() and self.lab_alive():
                    self.restart(key)
        self.say(f"lab {self.lab} is gone: supervisor exits")


UNKNOWN_EXIT = "died (how unknown: reaped by its parent before the supervisor could ask)"


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m palmnet.lab.supervisor LAB", file=sys.stderr)
        return 2
    Supervisor(args[0]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
