"""`palmnet ndp watch` on a real lab, on both backends: radvd, DAD, RS, RA, Redirect.

One lab per backend for the module: an openwrt router `gw` whose radvd announces
the LAN's /64 with RDNSS and DNSSL, a host `h` on that LAN, and for the
Redirect two plain routers `a` and `b` on a second link with a host `c`. A
host's first ND messages (DAD for its link-local and GUA, then its RS) are made
to happen while the watch runs by pulling its cable (`palmnet link down`/`up`):
on carrier the kernel runs DAD again and solicits a router.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from palmnet.lab import plan_file
from palmnet.plan.model import Plan
from tests.integration.labs import node_tool, run, traces, up, write_lab

PALMNET = str(Path(sys.executable).with_name("palmnet"))
DEADLINE = 30.0
PREFIX = "2001:db8:ebbd:2084::/64"
FAR = "2001:db8:9::1"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]

LAB = """\
name: {name}
domain: nd.example
networks:
  lan: {{}}
  wan: {{}}
  two: {{}}
  far: {{}}
nodes:
  gw:
    kind: openwrt
    uci: gw
    interfaces:
      eth0: {{network: lan}}
      eth1: {{network: wan}}
  h:
    interfaces:
      eth0: {{network: lan}}
  a:
    kind: router
    interfaces:
      eth0: {{network: two, ipv6: [2001:db8:1::1/64], ra: true}}
    routes:
      - {{to: 2001:db8:9::/64, via: b}}
  b:
    kind: router
    interfaces:
      eth0: {{network: two, ipv6: [2001:db8:1::2/64]}}
      eth1: {{network: far, ipv6: [{far}/64]}}
  c:
    interfaces:
      eth0: {{network: two}}
"""

NETWORK = """\
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'eth0'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ip6addr '2001:db8:ebbd:2084::1/64'

config interface 'wan'
\toption device 'eth1'
\toption proto 'static'
\toption ipaddr '192.0.2.2'
\toption netmask '255.255.255.0'
"""

# RA with RDNSS/DNSSL on the LAN, no DHCP (the watch is about ND).
DHCP = """\
config dhcp 'lan'
\toption interface 'lan'
\toption dhcpv4 'disabled'
\toption dhcpv6 'disabled'
\toption ra 'server'

config dhcp 'wan'
\toption interface 'wan'
\toption ignore '1'
"""


@pytest.fixture(scope="module")
def nd(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[tuple[str, Plan]]:
    folder = tmp_path_factory.mktemp("nd")
    (folder / "gw").mkdir()
    (folder / "gw" / "network").write_text(NETWORK)
    (folder / "gw" / "dhcp").write_text(DHCP)
    name = f"nd{backend[0]}{os.getpid() % 10000}"
    path = write_lab(folder / "lab.yaml", LAB.format(name=name, far=FAR))
    up(path, backend)
    try:
        yield name, plan_file(path)
    finally:
        run("down", name, check=False)
    assert traces(name, backend) == []


def start_watch(lab: str, node: str, *args: str) -> subprocess.Popen:
    """Run `palmnet ndp watch` and return once its sockets are open."""
    proc = subprocess.Popen(
        [PALMNET, "ndp", "watch", "--lab", lab, node, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = next(_lines(proc.stderr, DEADLINE))
    assert status.startswith("watching ") and f"in node {node}" in status, status
    return proc


def stop_watch(proc: subprocess.Popen) -> int:
    """SIGTERM, then read what it still writes until it exits (a full pipe would
    block its last writes and its exit)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=DEADLINE)
        raise
    return proc.returncode


def _lines(stream, seconds: float) -> Iterator[str]:
    """Lines from a child's pipe as they come, until EOF or the deadline."""
    end = time.monotonic() + seconds
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while (left := end - time.monotonic()) > 0:
            if not sel.select(timeout=left):
                break
            line = stream.readline()
            if not line:
                return
            yield line
    raise TimeoutError(f"deadline of {seconds} s reached")


def wait_for_messages(
    proc: subprocess.Popen, wanted: dict[str, Callable[[dict], bool]]
) -> dict[str, dict]:
    """Read JSON lines until each predicate matched one message (in any order)."""
    found: dict[str, dict] = {}
    seen: list[dict] = []
    try:
        for line in _lines(proc.stdout, DEADLINE):
            message = json.loads(line)
            seen.append(message)
            for name, predicate in wanted.items():
                if name not in found and predicate(message):
                    found[name] = message
            if len(found) == len(wanted):
                return found
    except TimeoutError:
        pass
    summary = [(m["name"], m["source"], m["destination"], m["direction"]) for m in seen]
    pytest.fail(f"missing {sorted(set(wanted) - set(found))}; saw {summary}")


def has_prefix(message: dict) -> bool:
    return any(
        o["type"] == "prefix-info" and o["prefix"] == PREFIX and o["autonomous"]
        for o in message["options"]
    )


def bounce(lab: str, node: str) -> None:
    """eth0 down and up inside the node: its addresses go, then DAD and RS again."""
    for state in ("down", "up"):
        proc = node_tool(lab, node, "ip", "link", "set", "eth0", state)
        assert proc.returncode == 0, proc.stderr


def solicited_node(address: str) -> str:
    import ipaddress

    low = int(ipaddress.IPv6Address(address)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


@pytest.mark.parametrize("watched", ["h", "gw"])
def test_watch_sees_dad_rs_and_the_answering_ra(nd: tuple[str, Plan], watched: str) -> None:
    lab, plan = nd
    h = plan.node("h").interface("eth0")
    host_ll, host_gua = str(h.link_local.ip), str(h.ipv6_slaac[0].ip)
    gw_mac = plan.node("gw").interface("br-lan").mac
    watch = start_watch(lab, watched, "eth0", "--format", "json")
    try:
        bounce(lab, "h")
        wanted = {
            "rs": lambda m: m["name"] == "RS" and m["source"] == host_ll,
            "ra": lambda m: m["name"] == "RA" and has_prefix(m),
        }
        if watched == "h":
            # A DAD probe goes to the address's solicited-node group: the lab's bridge
            # snoops MLD, so (as on a real switch) only members hear it, not gw.
            wanted["dad"] = lambda m: m["name"] == "NS" and m["dad"] and m["target"] == host_ll
            wanted["slaac-dad"] = lambda m: (
                m["name"] == "NS" and m["dad"] and m["target"] == host_gua
            )
        found = wait_for_messages(watch, wanted)
    finally:
        code = stop_watch(watch)
    assert code == 0
    rs = found["rs"]
    assert (rs["destination"], rs["destination_kind"]) == ("ff02::2", "all-routers")
    assert {"option": 1, "type": "source-lladdr", "lladdr": h.mac} in rs["options"]
    assert rs["direction"] == ("out" if watched == "h" else "in")
    ra = found["ra"]
    assert ra["source_kind"] == "link-local"
    assert ra["hop_limit"] == 255
    assert ra["flags"]["router_lifetime"] > 0
    types = {o["type"]: o for o in ra["options"]}
    assert types["rdnss"]["servers"] == ["2001:db8:ebbd:2084::1"]
    assert types["dnssl"]["domains"] == ["nd.example"]
    assert types["source-lladdr"]["lladdr"] == gw_mac
    if watched != "h":
        return
    dad = found["dad"]
    assert (dad["source"], dad["source_kind"]) == ("::", "unspecified")
    assert (dad["destination"], dad["destination_kind"]) == (
        solicited_node(host_ll),
        "solicited-node",
    )
    assert dad["destination_mac"] == "33:33:ff:" + h.mac[-8:]
    assert dad["direction"] == "out"


def test_table_format_and_count(nd: tuple[str, Plan]) -> None:
    lab, _ = nd
    watch = start_watch(lab, "gw", "--count", "1", "--timeout", str(DEADLINE))
    bounce(lab, "h")
    header, row, *_ = list(_lines(watch.stdout, DEADLINE))
    assert header.split() == [
        "TIME", "IFACE", "DIR", "TYPE", "SOURCE", "DESTINATION", "DETAILS",
    ]  # fmt: skip
    assert watch.wait(timeout=DEADLINE) == 0
    # The first ND message on the router's LAN (its bridge or port): its RA, h's RS...
    iface, direction = row.split()[1:3]
    assert iface in ("br-lan", "eth0") and direction in ("in", "out"), row
    assert any(kind in row for kind in (" RA ", " NS ", " RS ", " NA "))


def test_too_few_messages_before_timeout_is_a_failed_check(nd: tuple[str, Plan]) -> None:
    lab, _ = nd
    run("link", "down", "--lab", lab, "h:eth0")  # a silent link: nothing arrives
    try:
        result = subprocess.run(
            [PALMNET, "ndp", "watch", "--lab", lab, "h", "--count", "1", "--timeout", "0.5"],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
    finally:
        run("link", "up", "--lab", lab, "h:eth0")
    assert result.returncode == 1, result.stderr
    assert "saw 0 of 1 ND messages in 0.5 s" in result.stderr


def test_unknown_interface_is_bad_input(nd: tuple[str, Plan]) -> None:
    lab, _ = nd
    result = subprocess.run(
        [PALMNET, "ndp", "watch", "--lab", lab, "h", "eth7"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 2
    assert "node h has no interface eth7" in result.stderr
    assert "Traceback" not in result.stderr


def test_watch_sees_a_redirect_to_the_better_first_hop(nd: tuple[str, Plan]) -> None:
    """c -> router a (its default, from a's RA) -> router b on the same link: a forwards
    the packet to b and tells c, with a Redirect, to go to b itself."""
    lab, plan = nd
    a_ll = str(plan.node("a").interface("eth0").link_local.ip)
    b_ll = str(plan.node("b").interface("eth0").link_local.ip)
    c_gua = str(plan.node("c").interface("eth0").ipv6_slaac[0].ip)
    watch = start_watch(lab, "c", "eth0", "--format", "json")
    try:
        ping = node_tool(lab, "c", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", FAR)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        found = wait_for_messages(watch, {"redirect": lambda m: m["name"] == "Redirect"})
    finally:
        code = stop_watch(watch)
    assert code == 0
    redirect = found["redirect"]
    assert redirect["type"] == 137
    assert (redirect["source"], redirect["destination"]) == (a_ll, c_gua)
    assert redirect["direction"] == "in"
    assert redirect["target"] == b_ll
    assert redirect["redirect_destination"] == FAR
    options = {o["type"]: o for o in redirect["options"]}
    assert options["redirected-header"]["source"] == c_gua
    assert options["redirected-header"]["destination"] == FAR
    if "target-lladdr" in options:  # sent when a already knows b's MAC
        assert options["target-lladdr"]["lladdr"] == plan.node("b").interface("eth0").mac
