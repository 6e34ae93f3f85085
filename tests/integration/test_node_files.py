"""A node's own /etc: files written to a node through the Lab API land in the
node's overlay, never in the machine's /etc (netns backend)."""

from __future__ import annotations

import os
from pathlib import Path

from palmnet.lab import LabAPI
from tests.integration.labs import lab_traces, node_exec, run, write_lab

LAB = """\
name: {name}
networks:
  lan: {{}}
nodes:
  h:
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:f1::2/64"]}}
"""


def test_write_under_etc_stays_in_the_node(tmp_path: Path) -> None:
    name = f"nf{os.getpid() % 100000}"
    target = Path(f"/etc/palmnet-test-{name}/conf")
    run("up", str(write_lab(tmp_path / "lab.yaml", LAB.format(name=name))))
    try:
        with LabAPI().session(name) as s:
            s.running_node("h").write({target: "#!/bin/sh\necho hello\n"})
        assert not target.parent.exists(), "written to the machine's own /etc"
        seen = node_exec(name, "h", "sh", "-c", f"cat {target}; test -x {target} && echo x")
        assert seen.stdout == "#!/bin/sh\necho hello\nx\n"
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []
    assert not target.parent.exists()
