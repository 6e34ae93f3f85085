"""Which LXD cluster members run on this machine (backends/lxd/locality.py), against
this machine's real /proc: a process named `lxd` made here, in a namespace of its own
that holds a documentation address."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from palmnet.backends.lxd.locality import host_of, lxd_here

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace)")

ADDRESS = "192.0.2.77"
ADDRESS6 = "2001:db8:77::7"


@pytest.fixture
def fake_lxd(tmp_path: Path) -> Iterator[int]:
    """A process whose comm is `lxd` (a copy of sleep under that name), alone in a new
    network namespace holding ADDRESS and ADDRESS6 on its loopback."""
    exe = tmp_path / "lxd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    script = (
        f"ip link set lo up && ip addr add {ADDRESS}/32 dev lo && "
        f"ip -6 addr add {ADDRESS6}/128 dev lo nodad && exec {exe} 60"
    )
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", script])
    try:
        deadline = time.monotonic() + 5
        # poll: the shell execs the fake lxd once its addresses are set; no event says so
        while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "lxd":
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the fake lxd did not start within 5 s (ip or unshare failed?)")
            os.sched_yield()
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_member_is_here_when_an_lxd_process_holds_its_pid_and_address(fake_lxd: int) -> None:
    assert lxd_here(fake_lxd, [f"{ADDRESS}:8443"])
    assert lxd_here(fake_lxd, [f"[{ADDRESS6}]:8443"])


def test_the_pid_alone_or_the_address_alone_is_not_enough(fake_lxd: int) -> None:
    assert not lxd_here(fake_lxd, ["198.51.100.250:8443"])  # same pid, address elsewhere
    assert not lxd_here(os.getpid(), [f"{ADDRESS}:8443"])  # not an lxd process
    assert not lxd_here(0, [f"{ADDRESS}:8443"])


def test_host_of_cluster_addresses() -> None:
    assert host_of("198.51.100.12:8443") == "198.51.100.12"
    assert host_of("[2001:db8::1]:8443") == "2001:db8::1"
    assert host_of("2001:DB8::1") == "2001:db8::1"
