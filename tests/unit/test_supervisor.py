"""The supervisor counts each death once, gives up at the documented count, and says
how the daemon died as the kernel tells it (services/respawn.py, lab/supervisor.py,
kernel/processes.py: exit_status).

No lab: a journal in a state root of the test's own names `sleep` processes as the
lab's daemons, and the test kills them with SIGKILL as a crash would. Needs no root.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from palmnet.kernel import processes
from palmnet.lab import store, supervisor
from palmnet.services import respawn

KEY = "r3/bird"


def test_given_up_at_the_fifth_crash_in_a_row_and_counted_no_further() -> None:
    record = respawn.Record()
    states = []
    for _ in range(respawn.RETRY):
        record = respawn.died(record, 0.1, "killed by signal 9", 0.0)
        states.append(record.state)
    assert respawn.RETRY == 5  # README: "after 5 crashes in a row ... it gives up"
    assert states == [respawn.RESTARTING] * 4 + [respawn.FAILED]
    assert record.crashes == 5
    assert respawn.died(record, 0.0, "gone", 1.0) == record  # given up: nothing more
    # a run past the threshold starts the count again
    assert respawn.died(respawn.Record(crashes=4), 61.0, "x", 0.0).state == respawn.RESTARTING


@pytest.fixture
def sup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[supervisor.Supervisor]:
    """A supervisor object of lab `t` in this process (its signal set-up undone after)."""
    monkeypatch.setenv("PALMNET_STATE_DIR", str(tmp_path))
    with store.journal("t") as j:
        j.set_meta("status", "running")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGINT)}
    s = supervisor.Supervisor("t")
    try:
        yield s
    finally:
        signal.set_wakeup_fd(-1)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for w in s.watched.values():
            os.close(w.fd)
        os.close(s.wake_r)
        os.close(s.wake_w)


def _journal_daemon(pid: int, record: respawn.Record) -> None:
    with store.journal("t") as j:
        j.record("process", KEY, "r3", pid=pid, start=processes.start_time(pid))
        j.record(supervisor.RESPAWN, KEY, "r3", **record.to_json())


def _record() -> respawn.Record:
    with store.journal("t") as j:
        return supervisor.record_of(j, KEY)


def _wait_readable(fd: int, deadline: float = 5.0) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(deadline * 1000), f"no exit event within {deadline} s"


def test_a_death_is_counted_once_with_the_signal_that_ended_it(
    sup: supervisor.Supervisor, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fifth crash in a row (a daemon the supervisor restarted: its child) gives
    up, as `killed by signal 9`; the journal still naming the dead pid at the next
    wakes is no new death ("gone before the supervisor saw it", a sixth crash)."""
    pid = os.posix_spawnp("sleep", ["sleep", "60"], dict(os.environ))
    _journal_daemon(pid, respawn.Record(restarts=4, crashes=4))
    sup.refresh()
    watched = sup.watched[KEY]
    os.kill(pid, signal.SIGKILL)
    _wait_readable(watched.fd)
    sup.reap(watched)
    for _ in range(3):  # the loop reads the journal at every wake
        sup.refresh()
    record = _record()
    assert (record.state, record.crashes, record.restarts) == (respawn.FAILED, 5, 4)
    assert record.last_exit == "killed by signal 9"
    assert KEY not in sup.due and KEY not in sup.watched
    log = capsys.readouterr().out
    assert log.count("given up") == 1 and "5 crashes in a row" in log, log
    assert "gone before" not in log


def test_a_new_pid_in_the_journal_is_watched_again(sup: supervisor.Supervisor) -> None:
    """`up` repairs a daemon given up on: the journal names a new pid, a fresh record."""
    first = os.posix_spawnp("sleep", ["sleep", "60"], dict(os.environ))
    _journal_daemon(first, respawn.Record(crashes=4))
    sup.refresh()
    os.kill(first, signal.SIGKILL)
    _wait_readable(sup.watched[KEY].fd)
    sup.reap(sup.watched[KEY])
    second = os.posix_spawnp("sleep", ["sleep", "60"], dict(os.environ))
    try:
        _journal_daemon(second, respawn.Record())
        sup.refresh()
        assert sup.watched[KEY].pid == second
    finally:
        os.kill(second, signal.SIGKILL)
        os.waitpid(second, 0)


def _kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


@pytest.mark.parametrize("parent", ["never reaps it", "reaps it at once"])
def test_exit_status_of_a_daemon_someone_else_started(parent: str) -> None:
    """A daemon `up` started is not the supervisor's child: its exit comes from the
    zombie's /proc entry, or from the pidfd once its parent reaped it (Linux 6.15)."""
    tail = "exec sleep 60" if parent == "never reaps it" else "wait"
    proc = subprocess.Popen(
        ["sh", "-c", f"sleep 60 & echo $!; {tail}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        started = processes.start_time(pid)
        fd = os.pidfd_open(pid)
        try:
            os.kill(pid, signal.SIGKILL)
            _wait_readable(fd)
            status = processes.exit_status(pid, fd, started)
        finally:
            os.close(fd)
    finally:
        proc.kill()
        proc.wait()
    if parent == "never reaps it" or _kernel() >= (6, 15):
        assert status is not None and supervisor.describe(status) == "killed by signal 9"
    else:  # reaped, maybe before we asked, by a kernel that keeps nothing for the pidfd
        assert status is None or supervisor.describe(status) == "killed by signal 9"
