"""The readiness loop `up` runs inside a node on a member elsewhere (far.py
`wait_script`), against the kernel: the machine's sh in namespaces of the test's
own (pnfar-*), joined by a veth pair. It returns once the address is out of DAD,
stops at its deadline naming what the node holds, and stops at once when an
address failed DAD (a duplicate on the link). Nothing outside them is touched."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from palmnet.backends.lxd import far

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    """Two namespaces, a veth end up in each (a: a0, b: b0)."""
    a, b = f"pnfar-{os.getpid()}-a", f"pnfar-{os.getpid()}-b"
    _ip("netns", "add", a)
    _ip("netns", "add", b)
    try:
        _ip("-n", a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b)
        for ns, dev in ((a, "a0"), (b, "b0")):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        yield a, b
    finally:
        _ip("netns", "del", a)
        _ip("netns", "del", b)


def _wait(ns: str, addresses: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    script = far.wait_script(addresses, timeout)
    return subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )


def test_it_returns_once_the_address_is_out_of_dad(pair: tuple[str, str]) -> None:
    a, _ = pair
    _ip("-n", a, "addr", "add", "2001:db8:f::5/64", "dev", "a0")  # DAD on: 1 s here
    proc = _wait(a, ["2001:db8:f::5/64"], 10)
    assert proc.returncode == 0, proc.stdout
    held = subprocess.run(
        ["ip", "-n", a, "-6", "addr", "show", "dev", "a0", "tentative"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "2001:db8:f::5" not in held, "returned while the address was still tentative"


def test_at_its_deadline_it_shows_what_the_node_holds(pair: tuple[str, str]) -> None:
    a, _ = pair
    _ip("-n", a, "addr", "add", "2001:db8:f::5/64", "dev", "a0", "nodad")
    proc = _wait(a, ["2001:db8:f::5/64", "2001:db8:f::9/64"], 0.3)
    assert proc.returncode == 1
    held = far._held(proc.stdout)
    assert "2001:db8:f::5" in held and "2001:db8:f::9" not in held


def test_a_duplicate_stops_it_at_once(pair: tuple[str, str]) -> None:
    a, b = pair
    _ip("-n", a, "addr", "add", "2001:db8:f::7/64", "dev", "a0", "nodad")
    _ip("-n", b, "addr", "add", "2001:db8:f::7/64", "dev", "b0")  # DAD finds a's
    proc = _wait(b, ["2001:db8:f::7/64"], 20)
    assert proc.returncode == 2, (proc.returncode, proc.stdout)
    assert "2001:db8:f::7" not in far._held(proc.stdout)
