"""The address watch's count of links not up yet (kernel/watch.py `links_down`),
which `bring_up` paces by, against the kernel.

A namespace of the test's own (pnwatch-*) holding a veth pair: one end up without
its peer has no carrier, so it is owed, and a wait for it returns at its timeout
with the count unchanged (it paces, it never fails); with both up, both count as
soon as the kernel says operstate UP, before the link-local's DAD (3 s) ends.
Nothing outside the namespace is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from palmnet.addressing.eui64 import link_local
from palmnet.kernel import namespaces, nsfs
from palmnet.kernel.watch import AddressWatch

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]

MAC = "02:00:5e:00:53:01"  # a documentation MAC (RFC 7042)
LL = str(link_local(MAC))


def _ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"pnwatch-{secrets.token_hex(3)}"
    namespaces.create_netns(name)
    try:
        _ip(name, "link", "add", "name", "wa", "address", MAC, "type", "veth", "peer", "name", "wb")
        for key, value in (("dad_transmits", "1"), ("addr_gen_mode", "0")):
            subprocess.run(
                ["ip", "netns", "exec", name, "sysctl", "-qw", f"net.ipv6.conf.wa.{key}={value}"],
                check=True,
            )
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                name,
                "sysctl",
                "-qw",
                "net.ipv6.neigh.wa.retrans_time_ms=3000",
            ],
            check=True,
        )
        yield name
    finally:
        namespaces.delete_netns(name)


def test_links_count_once_the_kernel_reports_them_up(ns: str) -> None:
    watch = AddressWatch()
    try:
        watch.watch("n", nsfs.netns_path(ns), [LL])
        owed = {"n": 2}  # wa and wb
        assert watch.links_down(owed) == 2
        _ip(ns, "link", "set", "wa", "up")  # no carrier while its peer is down
        started = time.monotonic()
        assert watch.links_down(owed, fewer_than=2, timeout=0.5) == 2  # at its timeout, no error
        assert time.monotonic() - started >= 0.5
        assert "LOWERLAYERDOWN" in _ip(ns, "-br", "link", "show", "wa")
        _ip(ns, "link", "set", "wb", "up")
        assert watch.links_down(owed, fewer_than=1, timeout=10) == 0, "no operstate UP in 10 s"
        assert _tentative(ns), "reported up while the link-local is still in DAD (3 s)"
    finally:
        watch.close()


def _tentative(ns: str) -> bool:
    rows = json.loads(_ip(ns, "-j", "-6", "addr", "show", "dev", "wa"))
    return any(a["local"] == LL and a.get("tentative") for r in rows for a in r["addr_info"])
