"""A node's /etc layers on the netns backend: what goes in the lab's shared layer,
what in the node's upper dir (backends/netns/etc.py)."""

from __future__ import annotations

import os
from pathlib import Path

from palmnet.backends.netns.etc import HOSTNAME, seed_etc, seed_lab_etc
from palmnet.plan.build import plan_lab
from palmnet.topology.loader import load_lab_text

LAB = """\
name: etcs
domain: etcs.example
networks:
  lan: {}
nodes:
  h1:
    interfaces:
      eth0: {network: lan, ipv6: ["2001:db8:e::10/64"]}
"""


def test_resolv_conf_is_the_labs_and_the_rest_the_nodes(tmp_path: Path) -> None:
    plan = plan_lab(load_lab_text(LAB, "etcs.yaml"))
    node = plan.node("h1")
    shared, upper = tmp_path / "lab-etc", tmp_path / "h1-etc"
    upper.mkdir()
    (upper / "resolv.conf").write_text("nameserver 2001:db8::53\n")  # a copy from a run before
    seed_lab_etc(plan, shared)
    seed_etc(plan, node, upper)

    assert "search etcs.example" in (shared / "resolv.conf").read_text()
    assert not (upper / "resolv.conf").exists()  # back to the lab's
    assert sorted(p.name for p in upper.iterdir()) == ["hostname", "hosts"]
    assert (upper / "hostname").is_symlink() and os.readlink(upper / "hostname") == HOSTNAME
    assert "2001:db8:e::10\th1.etcs.example h1" in (upper / "hosts").read_text()

    # the shared layer is a lower layer of running nodes: not rewritten unchanged
    inode = (shared / "resolv.conf").stat()
    seed_lab_etc(plan, shared)
    again = (shared / "resolv.conf").stat()
    assert (again.st_ino, again.st_mtime_ns) == (inode.st_ino, inode.st_mtime_ns)
