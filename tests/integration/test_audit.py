"""`palmnet audit` on a real lab: a good farm host passes, nodes made bad fail.

One farm lab for the module (a router advertising a /64 on each bridge, three
hosts on lxdbr0). The bad nodes are set up by hand after `up` (that is making
them bad, not judging them): w2 with max_addresses 0 (no cap: an RA flood
piles up addresses), w3 with its default route replaced by one via the
router's global address. The RA flood is small here (200 RAs, 80 for the
node without a cap): the checks' verdicts do not depend on the count.
Prefix delegation gets a lab of its own, examples/cascade.yaml.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from palmnet.lab import LabAPI
from tests.integration.labs import ip_json, node_exec, node_tool, run, traces, up, write_lab

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.root

FARM = """\
name: {name}
domain: farm.example
networks:
  br0: {{}}
  lxdbr0: {{}}
nodes:
  up:
    kind: router
    interfaces:
      eth0: {{network: br0, ipv6: [2001:db8:ebbd:2080::1/64], ra: true}}
      eth1: {{network: lxdbr0, ipv6: [2001:db8:ebbd:2084::1/64], ra: true}}
  w:
    count: 3
    interfaces:
      eth0: {{network: lxdbr0}}
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, backend: str):
    name = f"au{backend[0]}{os.getpid() % 10000}"
    path = write_lab(tmp_path_factory.mktemp("audit") / "farm.yaml", FARM.format(name=name))
    try:
        up(path, backend)
        yield name
    finally:
        run("down", name, check=False)
        assert traces(name, backend) == []


def set_sysctl(lab: str, node: str, key: str, value: int) -> None:
    """A sysctl of the node's network namespace, written from a thread standing in it."""
    with LabAPI().session(lab) as s, s.running_node(node).inside():
        Path(f"/proc/sys/{key}").write_text(str(value))


def audit(lab: str, node: str, *args: str) -> tuple[int, dict]:
    proc = run("audit", "--lab", lab, node, "--format", "json", *args, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def by_check(card: dict) -> dict[str, dict]:
    return {c["check"]: c for c in card["checks"]}


def globals_of(lab: str, node: str) -> list[str]:
    return [
        info["local"]
        for link in ip_json(lab, node, "-6", "addr", "show", "dev", "eth0", "scope", "global")
        for info in link["addr_info"]
        if "local" in info
    ]


def test_good_farm_host_passes(farm: str) -> None:
    before = globals_of(farm, "w1")
    code, card = audit(farm, "w1", "--from", "w3", "--ra-count", "200")
    checks = by_check(card)
    assert code == 0, json.dumps(card, indent=1)
    assert card["from"] == "w3" and card["interface"] == "eth0"
    assert list(checks) == [
        "slaac",
        "dhcpv6",
        "link_bounce",
        "restart_stable",
        "default_route_ll",
        "rdnss_dnssl",
        "prefix_delegation",
        "ra_flood",
        "nd_scan",
        "icmpv6_essentials",
        "nat64_prefix",
        "dns64_synthesis",
        "clat_ipv4_literal",
    ]
    assert {c["verdict"] for c in card["checks"]} <= {"PASS", "N/A"}
    # Where the farm offers it, the node has it; the rest is honestly N/A.
    for name in (
        "slaac",
        "link_bounce",
        "restart_stable",
        "default_route_ll",
        "ra_flood",
        "nd_scan",
        "icmpv6_essentials",
    ):
        assert checks[name]["verdict"] == "PASS", checks[name]
    for name in (
        "dhcpv6",
        "rdnss_dnssl",
        "prefix_delegation",
        "nat64_prefix",
        "dns64_synthesis",
        "clat_ipv4_literal",
    ):
        assert checks[name]["verdict"] == "N/A", checks[name]
    assert "(EUI-64) in 2001:db8:ebbd:2084::/64" in checks["slaac"]["evidence"]
    assert re.search(r"held (\d+) global", checks["ra_flood"]["evidence"])
    held = int(re.search(r"held (\d+) global", checks["ra_flood"]["evidence"]).group(1))
    assert 1 < held <= 16
    assert "fragments" in checks["icmpv6_essentials"]["evidence"]
    # The flood's addresses are gone and the restart gave the same address back.
    assert globals_of(farm, "w1") == before


def test_ra_flood_fails_on_a_node_without_an_address_cap(farm: str) -> None:
    set_sysctl(farm, "w2", "net/ipv6/conf/eth0/max_addresses", 0)
    try:
        code, card = audit(farm, "w2", "--only", "ra_flood", "--ra-count", "80")
        (check,) = card["checks"]
        assert code == 1, check
        assert check["verdict"] == "FAIL"
        assert (
            "held 81 global addresses on eth0 (80 from the flood, 1 before; limit 16)"
            in (check["evidence"])
        )
        assert "cleanup removed 80 flood addresses" in check["evidence"]
        assert len(globals_of(farm, "w2")) == 1
    finally:
        set_sysctl(farm, "w2", "net/ipv6/conf/eth0/max_addresses", 16)


def test_default_route_via_a_global_address_fails(farm: str) -> None:
    node_tool(
        farm, "w3", "ip", "-6", "route", "replace", "default", "via", "2001:db8:ebbd:2084::1",
        "dev", "eth0",
    ).check_returncode()  # fmt: skip
    proc = run("audit", "--lab", farm, "w3", "--only", "default_route_ll", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("default_route_ll"))
    assert line.split()[1] == "FAIL"
    assert "next hop not link-local: 2001:db8:ebbd:2084::1" in line
    assert proc.stdout.splitlines()[-1].startswith("FAIL: 0 pass, 1 fail")


def test_router_answers_probes_and_scan(farm: str) -> None:
    code, card = audit(farm, "up", "--only", "icmpv6_essentials,nd_scan,slaac")
    checks = by_check(card)
    assert code == 0, json.dumps(card, indent=1)
    assert "RS: RA answered" in checks["icmpv6_essentials"]["evidence"]
    assert checks["slaac"]["verdict"] == "N/A"  # it is the router: static addresses
    assert "answered 4/4 ping6" in checks["nd_scan"]["evidence"]
    # The scan's incomplete entries were removed from the router.
    neigh = ip_json(farm, "up", "-6", "neigh", "show")
    assert len(neigh) < 16, neigh


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "no node 'nosuch'"),
        (["w1", "--from", "w1"], "must come from another node"),
        (["w1", "--ra-count", "5001"], "--ra-count 5001"),
    ],
)
def test_bad_input(farm: str, args: list[str], message: str) -> None:
    proc = run("audit", "--lab", farm, *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_slaac_judges_nothing_when_no_ra_answers(farm: str) -> None:
    """With its only router stopped, w1 still holds its SLAAC address (the kernel keeps
    it for its valid lifetime), but no RA answers its RS: that is not a PASS."""
    run("stop", "--lab", farm, "up")
    try:
        assert globals_of(farm, "w1"), "w1 kept its address"
        code, card = audit(farm, "w1", "--only", "slaac")
        (check,) = card["checks"]
        assert code == 0 and check["verdict"] == "N/A", check
        assert "no RA answered the RS on eth0: its router up is not running" in check["evidence"]
    finally:
        run("start", "--lab", farm, "up")
    _, card = audit(farm, "w1", "--only", "slaac")
    assert card["checks"][0]["verdict"] == "PASS", card


def test_no_trace_left_by_the_checks(farm: str) -> None:
    """After all of the above, no stray addresses or cached routes in the lab."""
    for node in ("w1", "w2", "w3"):
        assert len(globals_of(farm, node)) == 1, node


def test_prefix_delegation_numbers_the_lan(tmp_path: Path, backend: str) -> None:
    """examples/cascade.yaml: r2 requests a /60 from r1 and numbers its LAN from it."""
    name = f"ac{backend[0]}{os.getpid() % 10000}"
    for d in ("cascade-r1", "cascade-r2"):
        shutil.copytree(EXAMPLES / d, tmp_path / d)
    text = (EXAMPLES / "cascade.yaml").read_text().replace("name: cascade", f"name: {name}", 1)
    path = write_lab(tmp_path / "cascade.yaml", text)
    try:
        up(path, backend)
        code, card = audit(name, "r2", "--only", "prefix_delegation,default_route_ll")
        checks = by_check(card)
        assert code == 0, json.dumps(card, indent=1)
        evidence = checks["prefix_delegation"]["evidence"]
        assert "delegated 2001:db8:ebbd:c610::/60 over eth1 (as planned)" in evidence
        assert "announces 2001:db8:ebbd:c610::/64" in evidence
        _, card = audit(name, "h2", "--only", "prefix_delegation")
        assert card["checks"][0]["verdict"] == "N/A"
        routers_resolve_through_their_own_dns(name)
        renumbered_hosts_keep_their_preferred_addresses(name)
    finally:
        run("down", name, check=False)
        assert traces(name, backend) == []


def routers_resolve_through_their_own_dns(lab: str) -> None:
    """r1 and r2 ask their own dnsmasq (resolv.conf names no server: 127.0.0.1), as
    OpenWrt does: the RA's RDNSS is not expected in resolv.conf, and it is no FAIL."""
    for router in ("r1", "r2"):
        resolv = node_exec(lab, router, "cat", "/etc/resolv.conf").stdout
        assert "nameserver" not in resolv, resolv
        fqdn = f"{router}.cascade.example"
        answered = node_tool(lab, router, "dig", "+short", "@127.0.0.1", "AAAA", fqdn).stdout
        assert answered.split(), f"{router}'s dnsmasq answers {fqdn}"
        code, card = audit(lab, router, "--only", "rdnss_dnssl")
        (check,) = card["checks"]
        assert code == 0 and check["verdict"] != "FAIL", check
        assert f"127.0.0.1: its own DNS server, which answers {fqdn}" in check["evidence"]
        assert any(a in check["evidence"] for a in answered.split()), check  # any order
    # Its own server not answering is a FAIL (the daemon frozen, not killed: the
    # supervisor would start it again at once).
    live = json.loads(run("ls", "--lab", lab, "--format", "json").stdout)
    (pid,) = [
        s["pid"] for n in live if n["name"] == "r1" for s in n["services"] if s["name"] == "dnsmasq"
    ]
    os.kill(pid, signal.SIGSTOP)
    try:
        code, card = audit(lab, "r1", "--only", "rdnss_dnssl")
    finally:
        os.kill(pid, signal.SIGCONT)
    (check,) = card["checks"]
    assert code == 1 and check["verdict"] == "FAIL", check
    assert "its own DNS server (planned) does not answer r1.cascade.example" in check["evidence"]
    # A host still needs the RA's servers in its resolv.conf, and has them.
    _, card = audit(lab, "h1", "--only", "rdnss_dnssl")
    assert card["checks"][0]["verdict"] == "PASS", card


def addresses_of(lab: str, node: str, *flags: str) -> set[str]:
    data = ip_json(lab, node, "-6", "addr", "show", "dev", "eth0", "scope", "global", *flags)
    return {f"{i['local']}/{i['prefixlen']}" for link in data for i in link["addr_info"] if i}


def renumbered_hosts_keep_their_preferred_addresses(lab: str) -> None:
    """Right after a renumbering the old prefix's addresses are deprecated (preferred
    lifetime 0) and leave at the end of their valid lifetime: a bounce or a restart
    need not bring them back, only the preferred ones."""
    run("isp", "renumber", "--lab", lab, "isp", "2001:db8:beef::/48", timeout=120)
    for node, checks in (("h1", "link_bounce"), ("h2", "restart_stable")):
        old = addresses_of(lab, node, "deprecated")
        preferred = addresses_of(lab, node) - old
        assert any(a.startswith("2001:db8:ebbd:") for a in old), old
        assert any(a.startswith("2001:db8:beef:") for a in preferred), preferred
        code, card = audit(lab, node, "--only", checks)
        (check,) = card["checks"]
        assert code == 0 and check["verdict"] == "PASS", check
        for address in old:
            assert f"{address} deprecated, expected to go" in check["evidence"], check
        assert preferred <= addresses_of(lab, node), "every preferred address is back"
