"""The spine, end to end on the real kernel: plan == kernel, stability, cleanup."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from palmnet.kernel import nsfs
from tests.integration.labs import ip_json, lab_traces, node_exec, run, run_json, write_lab

pytestmark = pytest.mark.root

FARM = """\
name: {name}
domain: farm.example
networks:
  br0: {{}}
  lxdbr0: {{}}
profiles:
  default:
    interfaces:
      eth0: {{network: lxdbr0}}
  extbridge:
    interfaces:
      eth0: {{network: br0}}
nodes:
  up:
    kind: router
    interfaces:
      eth0: {{network: br0, ipv6: [2001:db8:ebbd:2080::1/64], ra: true}}
      eth1: {{network: lxdbr0, ipv6: [2001:db8:ebbd:2084::1/64], ra: true}}
  alpine:
    profiles: [default, extbridge]
  w:
    count: 3
    profiles: [default]
"""


IFAPROT_KERNEL_RA = 2  # include/uapi/linux/if_addr.h


def address_protocols(netns_path: str) -> dict[str, int]:
    """Who made each address, as the kernel records it (IFA_PROTO, Linux >= 6.3)."""
    from pyroute2.iproute.linux import IPRoute

    with nsfs.netns(netns_path):
        ipr = IPRoute()
    try:
        return {m.get_attr("IFA_ADDRESS"): m.get_attr("IFA_PROTO") for m in ipr.get_addr()}
    finally:
        ipr.close()


def _reversed_nodes(text: str) -> str:
    yaml = YAML()
    data = yaml.load(text)
    items = list(data["nodes"].items())
    data["nodes"].clear()
    for k, v in reversed(items):
        data["nodes"][k] = v
    from io import StringIO

    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _addresses(nodes: list[dict]) -> dict[tuple[str, str], set[str]]:
    return {
        (n["name"], i["name"]): set(i["ipv6"]) | set(i["ipv4"])
        for n in nodes
        for i in n["interfaces"]
    }


@pytest.fixture
def farm(tmp_path: Path):
    name = f"t{os.getpid() % 100000}"
    path = write_lab(tmp_path / "farm.yaml", FARM.format(name=name))
    yield name, path
    run("down", name, check=False)
    assert lab_traces(name) == []


def test_plan_equals_kernel_and_is_stable_across_order(farm, tmp_path: Path) -> None:
    name, path = farm
    planned = run_json("plan", str(path))
    live = run_json("up", str(path))
    assert _addresses(live) == _addresses(planned)
    assert {n["state"] for n in live} == {"RUNNING"}
    macs = {(n["name"], i["name"]): i["mac"] for n in live for i in n["interfaces"]}
    assert macs == {(n["name"], i["name"]): i["mac"] for n in planned for i in n["interfaces"]}

    # The GUAs are the kernel's SLAAC addresses from the RA: dynamic, finite
    # lifetimes, and the kernel says so itself (IFA_PROTO kernel_ra).
    gua = [
        info
        for addr in ip_json(name, "w2", "-6", "addr", "show", "dev", "eth0", "scope", "global")
        for info in addr["addr_info"]
        if info
    ]
    assert len(gua) == 1
    assert gua[0].get("dynamic") is True, gua
    assert gua[0]["valid_life_time"] < 0xFFFFFFFF, gua
    assert gua[0]["local"].startswith("2001:db8:ebbd:2084:216:3eff:fe")
    protos = address_protocols(f"/run/netns/palmnet-{name}.w2")
    assert protos[gua[0]["local"]] == IFAPROT_KERNEL_RA

    run("down", name)
    assert lab_traces(name) == []
    reversed_path = write_lab(tmp_path / "farm-reversed.yaml", _reversed_nodes(path.read_text()))
    again = run_json("up", str(reversed_path))
    assert _addresses(again) == _addresses(planned)


def test_farm_hosts_reach_each_other(farm) -> None:
    name, path = farm
    planned = {n["name"]: n for n in run_json("up", str(path))}
    w2 = planned["w2"]["interfaces"][0]
    gua = next(a.split("/")[0] for a in w2["ipv6"] if a.startswith("2001:"))
    lla = next(a.split("/")[0] for a in w2["ipv6"] if a.startswith("fe80:"))
    node_exec(name, "w1", "ping", "-c", "1", "-W", "2", gua)
    node_exec(name, "w1", "ping", "-c", "1", "-W", "2", f"{lla}%eth0")
    # across the router, from lxdbr0 to br0
    alpine = planned["alpine"]["interfaces"][0]
    far = next(a.split("/")[0] for a in alpine["ipv6"] if a.startswith("2001:"))
    node_exec(name, "w1", "ping", "-c", "1", "-W", "2", far)

    router_ll = next(
        a.split("/")[0]
        for i in planned["up"]["interfaces"]
        if i["name"] == "eth1"
        for a in i["ipv6"]
        if a.startswith("fe80:")
    )
    routes = ip_json(name, "w1", "-6", "route", "show", "default")
    assert [r["gateway"] for r in routes] == [router_ll]
    assert routes[0]["protocol"] == "ra"
    assert ipaddress.IPv6Address(routes[0]["gateway"]).is_link_local


def test_exec_passes_exit_code_and_sees_node_files(farm) -> None:
    name, path = farm
    run("up", str(path))
    assert node_exec(name, "w3", "sh", "-c", "exit 7", check=False).returncode == 7
    missing = node_exec(name, "w3", "no-such-program", check=False)
    assert missing.returncode == 127 and "command not found in node w3" in missing.stderr
    assert node_exec(name, "w3", "/etc", check=False).returncode == 126  # not a program
    late = run("exec", "w3", "--lab", name, "--", "hostname", check=False)  # option after NODE
    assert late.returncode == 2 and "options go before it" in late.stderr
    prefixes = run("ls", "--lab", name, "--prefixes")  # a lab without DHCPv6-PD
    assert "no router requests a delegated prefix" in prefixes.stderr
    assert node_exec(name, "w3", "hostname").stdout.strip() == "w3"
    assert node_exec(name, "w3", "cat", "/etc/hostname").stdout == "w3\n"
    # resolv.conf comes from the lab's shared layer until a node writes it: that
    # node then has its own copy, and no other node sees its change
    before = node_exec(name, "w2", "cat", "/etc/resolv.conf").stdout
    assert "search farm.example" in before
    node_exec(name, "w3", "sh", "-c", "echo '# w3 only' >> /etc/resolv.conf")
    assert node_exec(name, "w3", "tail", "-n1", "/etc/resolv.conf").stdout == "# w3 only\n"
    assert node_exec(name, "w2", "cat", "/etc/resolv.conf").stdout == before
    from palmnet.lab import LabAPI

    with LabAPI().session(name) as s:  # the files as the toolbox reads them from outside
        assert s.running_node("w3").read_file("/etc/hostname") == "w3\n"
        assert s.running_node("w2").read_file("/etc/resolv.conf") == before
        assert s.running_node("w3").read_file("/etc/resolv.conf").endswith("# w3 only\n")
    assert "w3.farm.example" in node_exec(name, "w3", "cat", "/etc/hosts").stdout
    assert Path("/etc/hostname").read_text().strip() != "w3"
    links = node_exec(name, "w3", "ls", "/sys/class/net").stdout.split()
    assert sorted(links) == ["eth0", "lo"]
    # its /sys is its own sysfs alone: the host's, and the mounts below it, are not
    # copied into the node under it (kernel/mountns.py)
    mounts = node_exec(name, "w3", "cat", "/proc/self/mountinfo").stdout.splitlines()
    at_sys = [(m.split()[4], m.split(" - ")[1].split()[0]) for m in mounts]
    assert [(p, t) for p, t in at_sys if p == "/sys" or p.startswith("/sys/")] == [
        ("/sys", "sysfs")
    ]


def test_up_again_reconciles(farm, tmp_path: Path) -> None:
    name, path = farm
    before = _addresses(run_json("up", str(path)))
    same = run("up", str(path))
    assert "no change" in same.stderr

    grown = write_lab(tmp_path / "grown.yaml", path.read_text().replace("count: 3", "count: 4"))
    after = run_json("up", str(grown))
    assert {n["name"] for n in after} == {"up", "alpine", "w1", "w2", "w3", "w4"}
    assert {k: v for k, v in _addresses(after).items() if k[0] != "w4"} == before
    shrunk = write_lab(tmp_path / "shrunk.yaml", path.read_text().replace("count: 3", "count: 2"))
    run("up", str(shrunk))
    assert not os.path.exists(f"/run/netns/palmnet-{name}.w3")
    assert not os.path.exists(f"/run/netns/palmnet-{name}.w4")

    moved = write_lab(
        tmp_path / "moved.yaml", shrunk.read_text().replace("2080::1/64", "2081::1/64")
    )
    refused = run("up", str(moved), check=False)
    assert refused.returncode == 2
    assert "node up" in refused.stderr and "2081" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_stop_start_keeps_addresses(farm) -> None:
    name, path = farm
    before = _addresses(run_json("up", str(path)))
    run("stop", "--lab", name, "w2")
    states = {n["name"]: n["state"] for n in run_json("ls", name)}
    assert states["w2"] == "STOPPED"
    assert not os.path.exists(f"/run/netns/palmnet-{name}.w2")
    run("start", "--lab", name, "w2")
    assert _addresses(run_json("ls", name)) == before
    run("restart", "--lab", name, "up")
    run("restart", "--lab", name, "w1")
    assert _addresses(run_json("ls", name)) == before


def test_two_labs_side_by_side(tmp_path: Path) -> None:
    names = [f"a{os.getpid() % 10000}", f"b{os.getpid() % 10000}"]
    try:
        live = []
        for n in names:
            live.append(run_json("up", str(write_lab(tmp_path / f"{n}.yaml", FARM.format(name=n)))))
        # same addresses plan-wise prefix, different MACs (the lab is in the hash), both running
        assert all(node["state"] == "RUNNING" for lab in live for node in lab)
        macs = [{i["mac"] for node in lab for i in node["interfaces"]} for lab in live]
        assert not macs[0] & macs[1]
        exec_ = run("exec", "w1", "--", "true", check=False)
        assert exec_.returncode == 2 and "several labs" in exec_.stderr
        node_exec(names[0], "w1", "true")
        node_exec(names[1], "w1", "true")
    finally:
        for n in names:
            run("down", n, check=False)
    for n in names:
        assert lab_traces(n) == []


def test_a_file_planned_for_a_cluster_gets_its_link_mtu_here_too(tmp_path: Path) -> None:
    """`placement:` plans the links at 1450 (VXLAN between LXD members): on the netns
    backend the links get it too, so plan == live and the lab behaves as on the cluster."""
    name = f"m{os.getpid() % 100000}"
    text = f"""\
name: {name}
placement: spread
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:1::1/64"], ra: true}}
  h:
    interfaces:
      eth0: {{network: lan}}
"""
    path = write_lab(tmp_path / "mtu.yaml", text)
    try:
        assert "links: MTU 1450" in run("plan", str(path)).stderr
        run("up", str(path))
        for node in ("r", "h"):
            assert node_exec(name, node, "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1450"
        fits = node_exec(name, "h", "ping", "-c1", "-W2", "-M", "do", "-s", "1402", "2001:db8:1::1")
        assert fits.returncode == 0
        big = node_exec(
            name, "h", "ping", "-c1", "-W2", "-M", "do", "-s", "1403", "2001:db8:1::1", check=False
        )
        assert big.returncode != 0
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []
