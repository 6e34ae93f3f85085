"""NAT64, DNS64 and 464XLAT on a real lab (issue 14), judged by what the hosts get.

examples/ipv6only.yaml: an IPv6-only LAN (no IPv4 at all) behind an openwrt
router that runs TAYGA (the PLAT, pool4 203.0.113.128/26) and unbound (DNS64,
in front of the lab's dnsmasq); `legacy` is an IPv4-only web server on the
router's WAN. From the LAN hosts:

- the lab DNS synthesises `legacy`'s AAAA from its A record with the prefix,
  `curl http://legacy/` gets its page, and legacy's access log names a pool4
  address (TAYGA's dynamic mapping, not the router's masqueraded WAN address);
- UDP (dig to a DNS server on the IPv4 side) and ICMP echo cross the translator;
- path MTU works across the boundary: 1,400 bytes of UDP over a 1,280-byte IPv6
  link and a 1,500-byte IPv4 one cross both ways, and when the IPv4 side sends
  Fragmentation Needed the IPv6 sender gets Packet Too Big (its route caches
  the MTU);
- `app` (clat: true) reaches 198.51.100.10 by its literal through its CLAT;
  `w1` (no CLAT) cannot, and says why: no IPv4 route.

The prefix is network-specific (2001:db8:64:ff9b::/96): the well-known one may
not carry documentation IPv4 (RFC 6052 3.1) and TAYGA refuses it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from palmnet.addressing.nat64 import embed
from tests.integration.labs import (
    PALMNET,
    lab_traces,
    node_exec,
    node_tool,
    run,
    service_host_path,
)

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREFIX = ipaddress.IPv6Network("2001:db8:64:ff9b::/96")
POOL4 = ipaddress.IPv4Network("203.0.113.128/26")
LEGACY4 = ipaddress.IPv4Address("198.51.100.10")
LEGACY6 = embed(PREFIX, LEGACY4)
DEADLINE = 20.0  # seconds for a first packet through (ND, TAYGA's first mapping)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("nat64")
    shutil.copytree(EXAMPLES / "ipv6only-router", folder / "ipv6only-router")
    name = f"n64{os.getpid() % 100000}"
    text = (EXAMPLES / "ipv6only.yaml").read_text().replace("name: v6only", f"name: {name}")
    path = folder / "lab.yaml"
    path.write_text(text)
    run("up", str(path), timeout=240)
    try:
        yield name
    finally:
        run("down", name, check=False)
        assert lab_traces(name) == []


def until(what: str, probe, deadline: float = DEADLINE):  # type: ignore[no-untyped-def]
    """Run `probe` until it returns a true value; fail naming `what` at the deadline."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(0.2)  # retry a probe; each one itself waits for its answer
    raise AssertionError(f"{what} did not happen within {deadline:g} s (last: {last!r})")


def ping(lab: str, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return node_exec(lab, node, "ping", "-n", "-c", "1", "-W", "2", *args, check=False)


def test_dns64_synthesises_the_ipv4_only_name(lab: str) -> None:
    out = node_exec(lab, "w1", "getent", "ahosts", "legacy").stdout
    addresses = {ipaddress.ip_address(line.split()[0]) for line in out.splitlines()}
    assert addresses == {LEGACY6}, out
    # RFC 7050: ipv4only.arpa is synthesised too, so hosts can find the prefix.
    out = node_exec(lab, "w1", "dig", "+short", "AAAA", "ipv4only.arpa").stdout.split()
    assert sorted(out) == [str(embed(PREFIX, ipaddress.IPv4Address(a))) for a in
                           ("192.0.0.170", "192.0.0.171")]  # fmt: skip


def test_no_ipv4_on_the_ipv6_only_network(lab: str) -> None:
    for node, dev in (("w1", "eth0"), ("router", "br-lan")):
        out = node_tool(lab, node, "ip", "-4", "-o", "address", "show", "dev", dev).stdout
        assert out.strip() == "", f"{node} {dev} holds IPv4: {out}"


def test_tcp_by_name_from_a_pool4_address(lab: str) -> None:
    page = node_exec(lab, "w1", "curl", "-sS", "-m", "5", "http://legacy/").stdout
    assert "<h1>legacy</h1>" in page
    log = service_host_path(lab, "legacy", "httpd", "access.log").read_text()
    client = ipaddress.ip_address(log.strip().splitlines()[-1].split()[0])
    assert client in POOL4, log
    assert client != ipaddress.IPv4Address("198.51.100.1")  # not the WAN's masquerade


def test_pool4_survives_a_firewall_reload(lab: str) -> None:
    """fw4's reload replaces its own table only: pool4 is still not masqueraded."""
    run("firewall", "reload", "--lab", lab, "router")
    node_exec(lab, "w2", "curl", "-sS", "-m", "5", "http://legacy/")
    log = service_host_path(lab, "legacy", "httpd", "access.log").read_text()
    assert ipaddress.ip_address(log.strip().splitlines()[-1].split()[0]) in POOL4, log


def test_icmp_echo_through_the_translator(lab: str) -> None:
    until("a ping from w1 to legacy's synthesised address", lambda: ping(
        lab, "w1", str(LEGACY6)).returncode == 0)  # fmt: skip
    # TAYGA answers echo itself at its own address (pool4's first), mapped into the prefix
    tayga = embed(PREFIX, POOL4.network_address + 1)
    assert ping(lab, "w1", str(tayga)).returncode == 0


def test_udp_dns_through_the_translator(lab: str, tmp_path: Path) -> None:
    """A DNS server on the IPv4 side, asked over UDP from the IPv6-only side."""
    pid_file = tmp_path / "probe-dns.pid"
    node_exec(
        lab, "legacy", "dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        f"--listen-address={LEGACY4}", "--bind-interfaces", "--port=53",
        "--address=/probe.nat64.test/192.0.2.77", f"--pid-file={pid_file}",
    )  # fmt: skip
    try:
        answer = until("a UDP DNS answer through the translator", lambda: node_exec(
            lab, "w1", "dig", "+short", "+notcp", "+time=1", "+tries=1",
            f"@{LEGACY6}", "probe.nat64.test", "A", check=False).stdout.strip())  # fmt: skip
        assert answer == "192.0.2.77"
    finally:
        os.kill(int(pid_file.read_text().split()[0]), 15)


def _mtu(lab: str, node: str, dev: str, mtu: int) -> None:
    proc = node_tool(lab, node, "ip", "link", "set", "dev", dev, "mtu", str(mtu))
    assert proc.returncode == 0, proc.stderr


# A UDP echo server on the IPv4 side that exits once idle for 5 s, so it leaves
# nothing behind.
ECHO_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{address}", 7))
s.settimeout(5)
try:
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)
except socket.timeout:
    pass
"""
ECHO_CLIENT = """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(1)
for attempt in range(10):
    s.sendto(b"x" * {size}, ("{address}", 7))
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        print("lost")
        continue
    print("echoed", len(data))
    break
"""


def test_1400_bytes_across_1280_ipv6_and_1500_ipv4(lab: str) -> None:
    """1,400 bytes of UDP each way over a 1,280-byte IPv6 link and 1,500-byte IPv4:
    the host fragments its datagram (TAYGA turns IPv6 fragments into IPv4 ones);
    the server's reply, sent with DF, meets the 1,280-byte link, whose Packet Too
    Big TAYGA turns into Fragmentation Needed, so the server learns MTU 1260 for
    the client's pool4 address and sends the next reply in IPv4 fragments, which
    TAYGA translates into IPv6 fragments. (A 1,400-byte *ping* cannot cross:
    TAYGA 0.9.2 drops fragmented ICMPv6, "fragmented ICMP is unsupported".)"""
    size = 1400
    links = [("w2", "eth0"), ("router", "eth0"), ("router", "br-lan")]
    for node, dev in links:
        _mtu(lab, node, dev, 1280)
    server = subprocess.Popen(
        [*PALMNET, "exec", "--lab", lab, "legacy", "--", "python3", "-c",
         ECHO_SERVER.format(address=LEGACY4)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        client = ECHO_CLIENT.format(address=LEGACY6, size=size)
        out = until("the echo server's socket", lambda: "echoed" in (r := node_exec(
            lab, "w2", "python3", "-c", client, check=False).stdout) and r)  # fmt: skip
        assert f"echoed {size}" in out, out
        assert server.wait(timeout=30) == 0, server.stderr.read() if server.stderr else ""
        cache = node_tool(lab, "legacy", "ip", "route", "show", "cache").stdout
        assert "mtu 1260" in cache, cache  # Fragmentation Needed from TAYGA's Packet Too Big
    finally:
        if server.poll() is None:
            server.kill()
        for node, dev in reversed(links):
            _mtu(lab, node, dev, 1500)


def test_fragmentation_needed_becomes_packet_too_big(lab: str) -> None:
    """The router's IPv4 side (its WAN, MTU 1400) sends Fragmentation Needed for a
    translated packet with DF; TAYGA turns it into Packet Too Big (MTU + 20)."""
    _mtu(lab, "router", "eth1", 1400)
    try:
        proc = ping(lab, "w1", "-M", "do", "-s", "1420", str(LEGACY6))
        said = proc.stdout + proc.stderr
        assert re.search(r"[Pp]acket too big: mtu=1420|mtu: 1420|mtu=1420", said), said
        route = node_exec(lab, "w1", "ip", "-6", "route", "get", str(LEGACY6)).stdout
        assert "mtu 1420" in route, route
        # and below the learnt MTU the path works again
        ok = until("a ping below the learnt MTU", lambda: ping(
            lab, "w1", "-M", "do", "-s", "1300", str(LEGACY6)).returncode == 0)  # fmt: skip
        assert ok
    finally:
        _mtu(lab, "router", "eth1", 1500)


def test_clat_host_reaches_an_ipv4_literal(lab: str) -> None:
    until("a ping from app (CLAT) to 198.51.100.10", lambda: ping(
        lab, "app", str(LEGACY4)).returncode == 0)  # fmt: skip
    page = node_exec(lab, "app", "curl", "-sS", "-m", "5", f"http://{LEGACY4}/").stdout
    assert "<h1>legacy</h1>" in page
    log = service_host_path(lab, "legacy", "httpd", "access.log").read_text()
    assert ipaddress.ip_address(log.strip().splitlines()[-1].split()[0]) in POOL4
    route = node_exec(lab, "app", "ip", "-4", "route", "get", str(LEGACY4)).stdout
    assert "dev clat" in route and "src 192.0.0.1" in route, route


def test_host_without_clat_has_no_ipv4_route(lab: str) -> None:
    proc = ping(lab, "w1", str(LEGACY4))
    assert proc.returncode != 0
    assert "Network is unreachable" in proc.stdout + proc.stderr
    route = node_exec(lab, "w1", "ip", "-4", "route", "get", str(LEGACY4), check=False)
    assert "Network is unreachable" in route.stdout + route.stderr


def _service(lab: str, node: str, name: str) -> dict:
    nodes = json.loads(run("ls", lab, "--format", "json").stdout)
    services = next(n for n in nodes if n["name"] == node)["services"]
    return next(s for s in services if s["name"] == name)


def test_supervisor_restarts_the_translators(lab: str) -> None:
    """TAYGA killed in the router and in the CLAT host: the supervisor starts each
    again, the tun device and routes are made again, traffic flows again."""
    for node, name in (("router", "tayga"), ("app", "clat")):
        old = _service(lab, node, name)
        os.kill(old["pid"], 9)
        until(f"{node}/{name} started again", lambda n=node, m=name, p=old["pid"]: (
            (s := _service(lab, n, m))["state"] == "running" and s["pid"] != p))  # fmt: skip
    until("a ping from app through both translators again", lambda: ping(
        lab, "app", str(LEGACY4)).returncode == 0)  # fmt: skip
    page = node_exec(lab, "w1", "curl", "-sS", "-m", "5", "http://legacy/").stdout
    assert "<h1>legacy</h1>" in page


def audit(lab: str, node: str, only: str) -> tuple[int, dict]:
    proc = run("audit", "--lab", lab, node, "--only", only, "--format", "json", check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_audit_lines(lab: str) -> None:
    only = "nat64_prefix,dns64_synthesis,clat_ipv4_literal"
    code, card = audit(lab, "app", only)
    checks = {c["check"]: c for c in card["checks"]}
    assert code == 0, card
    assert {c["verdict"] for c in checks.values()} == {"PASS"}, card
    assert f"prefix {PREFIX}" in checks["nat64_prefix"]["evidence"]
    assert str(LEGACY6) in checks["dns64_synthesis"]["evidence"]
    assert f"{LEGACY4} by its literal through clat" in checks["clat_ipv4_literal"]["evidence"]
    # A host without a CLAT: the CLAT line does not apply, the DNS64 ones do.
    code, card = audit(lab, "w1", only)
    checks = {c["check"]: c for c in card["checks"]}
    assert checks["clat_ipv4_literal"]["verdict"] == "N/A"
    assert checks["nat64_prefix"]["verdict"] == "PASS"
    # legacy is IPv4-only on the translator's IPv4 side: no global IPv6 address, no
    # route to the prefix. It is no NAT64 client, so the lines do not apply.
    legacy6 = node_tool(lab, "legacy", "ip", "-6", "addr", "show", "scope", "global").stdout
    assert legacy6.strip() == ""
    route = node_tool(lab, "legacy", "ip", "-6", "route", "get", str(PREFIX[1]))
    assert route.returncode != 0
    code, card = audit(lab, "legacy", only)
    assert code == 0, card
    for check in card["checks"]:
        assert check["verdict"] == "N/A", check
    assert "no global IPv6 address" in card["checks"][0]["evidence"]
    # The router resolves through its own DNS64 (resolv.conf names none: 127.0.0.1).
    assert "nameserver" not in node_exec(lab, "router", "cat", "/etc/resolv.conf").stdout
    code, card = audit(lab, "router", "nat64_prefix,dns64_synthesis")
    assert code == 0, card
    assert all("from 127.0.0.1" in c["evidence"] for c in card["checks"]), card


ANNOUNCE_LAB = """\
name: {name}
networks:
  core: {{}}
nodes:
  plat:
    kind: router
    nat64: {{prefix: "2001:db8:64:ff9b::/96", pool4: 203.0.113.128/26}}
    routing: {{protocol: babel, defaults: {{hello: 1}}}}
    interfaces:
      eth0: {{network: core, ipv6: [2001:db8:64:10::1/64]}}
  peer:
    kind: router
    routing: {{protocol: babel, defaults: {{hello: 1}}}}
    interfaces:
      eth0: {{network: core, ipv6: [2001:db8:64:10::2/64]}}
"""


def test_routing_protocol_announces_the_prefix(tmp_path: Path) -> None:
    """A plain router with nat64 and Babel: its neighbour learns the NAT64 prefix
    (TAYGA's route is proto static, which BIRD announces), and pool4 stays IPv4."""
    name = f"n64r{os.getpid() % 10000}"
    path = tmp_path / "announce.yaml"
    path.write_text(ANNOUNCE_LAB.format(name=name))
    run("up", str(path), timeout=240)
    try:

        def learnt() -> str:
            out = node_exec(name, "peer", "ip", "-6", "route", "show", str(PREFIX)).stdout
            return out if "proto bird" in out else ""

        route = until("peer learning the NAT64 prefix by Babel", learnt, 40)
        assert route.startswith(f"{PREFIX} via fe80::"), route
    finally:
        run("down", name, check=False)
        assert lab_traces(name) == []


def test_a_48_prefix_end_to_end(tmp_path: Path) -> None:
    """RFC 6052's other lengths: a /48 puts the IPv4 address around the u octet
    (2001:db8:6464:c633:64:a00::); TAYGA, unbound and the CLAT's discovery agree."""
    prefix = ipaddress.IPv6Network("2001:db8:6464::/48")
    name = f"n64s{os.getpid() % 10000}"
    shutil.copytree(EXAMPLES / "ipv6only-router", tmp_path / "ipv6only-router")
    text = (EXAMPLES / "ipv6only.yaml").read_text().replace("name: v6only", f"name: {name}")
    path = tmp_path / "lab.yaml"
    path.write_text(text.replace(f"prefix: {PREFIX}", f"prefix: {prefix}"))
    run("up", str(path), timeout=240)
    try:
        out = node_exec(name, "w1", "getent", "ahosts", "legacy").stdout
        assert out.split()[0] == str(embed(prefix, LEGACY4)) == "2001:db8:6464:c633:64:a00::"
        page = node_exec(name, "w1", "curl", "-sS", "-m", "5", "http://legacy/").stdout
        assert "<h1>legacy</h1>" in page
        until("a ping from app through its CLAT", lambda: ping(
            name, "app", str(LEGACY4)).returncode == 0)  # fmt: skip
    finally:
        run("down", name, check=False)
        assert lab_traces(name) == []


GOLDEN_ERRORS = Path(__file__).resolve().parents[1] / "golden" / "errors"


@pytest.mark.parametrize(
    "case",
    ["nat64_prefix_length", "nat64_pool4_overlap", "nat64_on_host", "clat_without_nat64"],
)
def test_up_refuses_bad_input_and_makes_nothing(case: str, tmp_path: Path) -> None:
    name = f"n64e{os.getpid() % 10000}"
    text = (GOLDEN_ERRORS / f"{case}.yaml").read_text().replace("name: palm", f"name: {name}")
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    proc = run("up", str(path), check=False)
    assert proc.returncode == 2, proc.stderr
    expected = (GOLDEN_ERRORS / f"{case}.expected").read_text().strip()
    assert proc.stderr.strip() == f"palmnet: {tmp_path}/{expected}", proc.stderr
    assert lab_traces(name) == []
