"""The lab bridges snoop MLD: a group is forwarded only to ports that reported it.

A host with a static address joins that address's solicited-node group as its
link comes up, and its report can reach the bridge before the bridge's carrier
event makes the port forward (the event is asynchronous): the group was then
unknown for 10 s (MLDv1's repeat) and the address unreachable. `up` asks again
once every address is ready; here another host reaches the static address the
moment `up` returns, several bring-ups in a row.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.labs import lab_traces, node_exec, run, write_lab

LAB = """\
name: {name}
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:5e::1/64"], ra: true}}
  s:
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:5e::10/64"]}}
  h:
    count: 3
    interfaces:
      eth0: {{network: lan}}
"""


def test_a_static_address_answers_as_soon_as_up_returns(tmp_path: Path) -> None:
    name = f"sn{os.getpid() % 100000}"
    path = write_lab(tmp_path / "lab.yaml", LAB.format(name=name))
    try:
        for attempt in range(4):
            run("up", str(path))
            ping = node_exec(name, "h2", "ping", "-c1", "-W1", "2001:db8:5e::10", check=False)
            assert ping.returncode == 0, f"bring-up {attempt + 1}: {ping.stdout}{ping.stderr}"
            run("down", name)
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []
