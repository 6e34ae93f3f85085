"""External networks (issue 16): lab nodes on a "home LAN" the test builds itself.

Never the machine's real interfaces: the home LAN is a bridge `pnextbr0` in the host
namespace (IPv6 off on it: it is a switch) and a namespace `pnext-home` on it running
a home router (radvd with 2001:db8:ebbd:2080::/64, dnsmasq as DHCPv4 server for
192.0.2.0/24); tests/integration/homelan.py makes and removes them. Lab names start
with `ext`.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.homelan import HOME_GUA, HOME_PREFIX, HomeLan, bridge_state
from tests.integration.labs import lab_traces, run, run_json, write_lab

pytestmark = pytest.mark.root

BRIDGE = "pnextbr0"

SLAAC = """\
name: {name}
networks:
  home:
    external: {{bridge: {bridge}{prefix}}}
nodes:
  a:
    interfaces:
      eth0: {{network: home}}
  b:
    interfaces:
      eth0: {{network: home}}
"""


@pytest.fixture
def home() -> Iterator[HomeLan]:
    lan = HomeLan(bridge=BRIDGE).open()
    try:
        yield lan
    finally:
        lan.close()


def _lab_name(tag: str) -> str:
    return f"ext{tag}{os.getpid() % 1000}"


def _gua(addresses: list[str]) -> list[str]:
    home = ipaddress.IPv6Network(HOME_PREFIX)
    return sorted(a for a in addresses if ipaddress.IPv6Interface(a).ip in home)


def _ls_gua(lab: str) -> dict[str, list[str]]:
    nodes = run_json("ls", lab)
    assert isinstance(nodes, list)
    return {n["name"]: _gua([a for i in n["interfaces"] for a in i["ipv6"]]) for n in nodes}


def _plan_gua(path: Path) -> dict[str, list[str]]:
    nodes = run_json("plan", str(path))
    assert isinstance(nodes, list)
    return {n["name"]: _gua([a for i in n["interfaces"] for a in i["ipv6"]]) for n in nodes}


def test_slaac_from_home_router_as_planned_and_stable(home: HomeLan, tmp_path: Path) -> None:
    """GUAs from the home router's RA equal what `plan` printed with `prefix:`, stay
    the same across down/up; the home host and the nodes reach each other by GUA;
    down leaves the bridge exactly as it was (ports, addresses, sysctls)."""
    name = _lab_name("s")
    prefix = f", prefix: {HOME_PREFIX}"
    path = write_lab(tmp_path / "lab.yaml", SLAAC.format(name=name, bridge=BRIDGE, prefix=prefix))
    planned = _plan_gua(path)
    assert all(len(v) == 1 for v in planned.values()), planned
    before = bridge_state(BRIDGE)
    try:
        for round_ in range(2):
            run("up", str(path))
            assert len(bridge_state(BRIDGE)["ports"]) == len(before["ports"]) + 2  # type: ignore[arg-type]
            assert _ls_gua(name) == planned, f"round {round_}"
            for node, (gua,) in planned.items():
                address = gua.split("/")[0]
                assert home.ping(address), f"home host cannot reach {node} at {address}"
                reply = run("exec", "--lab", name, node, "--", "ping", "-c1", "-W2", HOME_GUA)
                assert "1 received" in reply.stdout, reply.stdout
            run("down", name)
            assert bridge_state(BRIDGE) == before, f"down changed {BRIDGE} (round {round_})"
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []


def test_prefix_learnt_at_up(home: HomeLan, tmp_path: Path) -> None:
    """Without `prefix:`, plan prints the interface identifiers; up takes whatever
    the home router advertises, and the addresses end in those identifiers."""
    name = _lab_name("l")
    path = write_lab(tmp_path / "lab.yaml", SLAAC.format(name=name, bridge=BRIDGE, prefix=""))
    shown = run("plan", str(path))
    assert "prefix learnt at up" in shown.stdout
    planned = run_json("plan", str(path))
    assert isinstance(planned, list)
    iids = {n["name"]: n["interfaces"][0]["interface_id"] for n in planned}
    try:
        run("up", str(path))
        home_prefix = ipaddress.IPv6Network(HOME_PREFIX)
        for node, iid in iids.items():
            want = ipaddress.IPv6Address(int(home_prefix.network_address) | int(
                ipaddress.IPv6Address(iid)))  # fmt: skip
            assert home.ping(str(want)), f"{node} has no {want} from the home router's RA"
    finally:
        run("down", name, check=False)


BAD_BRIDGE = """\
name: {name}
networks:
  home:
    external: {{{key}}}
nodes:
  a:
    interfaces:
      eth0: {{network: home}}
"""


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("bridge: pnextnone0", "this machine has no interface pnextnone0"),
        ("bridge: lo", "lo is the machine's loopback, not a LAN"),
        ("bridge: pnextv0", "pnextv0 is not a bridge"),
        ("macvlan: pnextnone0", "this machine has no interface pnextnone0"),
        ("prefix: 2001:db8:ebbd:2080::/64", "names exactly one host interface, neither given"),
    ],
)
def test_refused_with_exit_2_and_nothing_made(key: str, says: str, tmp_path: Path) -> None:
    name = _lab_name("x")
    path = write_lab(tmp_path / "lab.yaml", BAD_BRIDGE.format(name=name, key=key))
    subprocess.run(["ip", "link", "add", "pnextv0", "type", "veth", "peer", "pnextv1"], check=True)
    try:
        links = sorted(os.listdir("/sys/class/net"))
        proc = run("up", str(path), check=False)
    finally:
        subprocess.run(["ip", "link", "del", "pnextv0"], check=True)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert "lab.yaml:4: networks.home.external" in proc.stderr
    assert lab_traces(name) == []
    assert sorted(os.listdir("/sys/class/net")) == [
        n for n in links if n not in ("pnextv0", "pnextv1")
    ]
