"""What OpenWrt routers announce, and the names of DHCPv6 leases (issue 12.3, 12.4).

One lab on each backend: the ISP delegates a /56 to r1 (OpenWrt), which delegates
a /60 of it on to r2 (OpenWrt) behind it, as examples/cascade.yaml. r1 also runs
RIPng on its WAN with `core`, a router on the ISP's link, and `far` sits one
more hop away on `mid`:

    far --mid-- core --wan-- r1 --home-- r2 --attic-- h2
                      |           |
                     isp          h1   (home: DHCPv6 only, ra_slaac '0')

r1 announces, as the field notes' routers `export all` of their kernel table:
the unreachable /56 dhcpcd installs for its delegation, netifd's unreachable
ULA /48 and the route its kea hook adds to r2's /60. `palmnet route far` lists
all three, learnt by RIP over two hops; a ping from far to the unused part of
r1's /48 comes back "unreachable" from r1 instead of looping. On `home` the
RA carries no A flag, so h1's only global address is its DHCPv6 lease: the one
the plan reserved for its DUID, answered by r1's DNS under h1's name.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from palmnet.lab import plan_file
from palmnet.openwrt.defaults import DHCP
from palmnet.plan.model import Plan
from tests.integration.labs import ip_json, node_exec, node_tool, run, traces, up

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE = 90.0  # seconds: PD, then RIP's first updates over two hops (30 s apart)
ROUTE_PROTO = 250  # palmnet's kea hook
DHCP_ONLY = DHCP.replace("\toption ra 'server'\n", "\toption ra 'server'\n\toption ra_slaac '0'\n")

LAB = """\
name: {name}
domain: announce.example
networks:
  wan: {{}}
  home: {{}}
  attic: {{}}
  mid: {{}}
  farlan: {{}}
nodes:
  isp:
    kind: isp
    delegate: {{pool: 2001:db8:ebbd::/48, length: 56}}
    interfaces:
      eth0: {{network: wan, ipv6: [2001:db8:ebb0::1/64], ra: true}}
  core:
    kind: router
    routing:
      protocol: ripng
      interfaces: {{eth0: {{}}, eth1: {{}}}}
      defaults: &timers {{update: 1, timeout: 3, garbage: 2}}
    interfaces:
      eth0: {{network: wan, ipv6: [2001:db8:ebb0::2/64]}}
      eth1: {{network: mid}}
  far:
    kind: router
    routing:
      protocol: ripng
      interfaces: {{eth0: {{}}}}
      defaults: *timers
    interfaces:
      eth0: {{network: mid}}
      eth1: {{network: farlan, ipv6: [2001:db8:ebb1::1/64]}}
  r1:
    kind: openwrt
    uci: cascade-r1
    routing:
      protocol: ripng
      interfaces: {{eth1: {{}}}}
      defaults: *timers
    interfaces:
      eth0: {{network: home}}
      eth1: {{network: wan}}
  h1:
    interfaces:
      eth0: {{network: home}}
  r2:
    kind: openwrt
    uci: cascade-r2
    interfaces:
      eth0: {{network: attic}}
      eth1: {{network: home}}
  h2:
    interfaces:
      eth0: {{network: attic}}
"""


def _wait(check, what: str, timeout: float = DEADLINE):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.3)  # poll: routes and addresses of other namespaces, read by `ip`


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[tuple[str, Plan]]:
    assert "\toption ra_slaac '0'\n" in DHCP_ONLY
    work = tmp_path_factory.mktemp("announce")
    for folder in ("cascade-r1", "cascade-r2"):
        shutil.copytree(EXAMPLES / folder, work / folder)
    (work / "cascade-r1" / "dhcp").write_text(DHCP_ONLY)
    name = f"ann{secrets.token_hex(3)}"
    path = work / "announce.yaml"
    path.write_text(LAB.format(name=name))
    plan = plan_file(path)
    up(path, backend, timeout=240)
    try:
        yield name, plan
    finally:
        run("down", name, check=False)
    assert traces(name, backend) == []


def _globals(lab: str, node: str, dev: str = "eth0") -> set[str]:
    links = ip_json(lab, node, "-6", "addr", "show", "dev", dev, "scope", "global")
    return {
        a["local"]
        for link in links
        for a in link.get("addr_info", [])
        if "local" in a and not a.get("tentative")
    }


def test_dhcpv6_only_host_is_named_by_its_planned_lease(lab: tuple[str, Plan]) -> None:
    name, plan = lab
    (lease,) = plan.node("h1").interface("eth0").ipv6_dhcp
    held = _wait(lambda: _globals(name, "h1"), "h1 holds a global address")
    assert held == {str(lease.ip)}, "h1's only global address is its planned DHCPv6 lease"
    fqdn = f"h1.{plan.domain}"

    # h1's own resolver: the DNS server r1's RA named (RDNSS). rdnssd writes it when
    # that RA arrives, which on a loaded LXD host can be just after the lease.
    def answered() -> list[str]:
        # Before rdnssd writes resolv.conf, dig asks ::1 and prints its error on stdout.
        dig = node_exec(name, "h1", "dig", "+short", "AAAA", fqdn, check=False)
        return dig.stdout.split() if dig.returncode == 0 and ";;" not in dig.stdout else []

    answer = _wait(answered, "h1's resolver (from the RA's RDNSS) answers")
    assert answer == [str(lease.ip)], answer
    ptr = node_exec(name, "h1", "dig", "+short", "-x", str(lease.ip)).stdout.split()
    assert ptr == [f"{fqdn}."], ptr
    zone = json.loads(run("dns", "zone", name, "--format", "json").stdout)
    assert {"name": fqdn, "address": str(lease.ip)} in [
        {"name": r["name"], "address": r["address"]} for r in zone
    ]


def test_ls_says_where_each_address_comes_from(lab: tuple[str, Plan]) -> None:
    name, plan = lab
    _wait(lambda: _globals(name, "h2"), "h2 holds a global address")
    nodes = {n["name"]: n for n in json.loads(run("ls", name, "--format", "json").stdout)}

    def sources(node: str, iface: str) -> dict[str, str]:
        return next(i for i in nodes[node]["interfaces"] if i["name"] == iface)["sources"]

    eth0 = plan.node("h1").interface("eth0")
    (lease,) = eth0.ipv6_dhcp
    (lease4,) = eth0.ipv4_dhcp
    h1 = sources("h1", "eth0")
    assert h1 == {
        str(eth0.link_local): "link-local",
        str(lease): "dhcpv6",
        str(lease4): "dhcpv4",
    }, h1
    assert "slaac" in sources("h2", "eth0").values()
    assert sources("isp", "eth0")["2001:db8:ebb0::1/64"] == "static"
    assert "delegated" in sources("r1", "br-lan").values()


def _rip_routes(name: str) -> dict[str, dict]:
    proc = run("route", "--lab", name, "far", "--format", "json")
    return {r["prefix"]: r for r in json.loads(proc.stdout)}


def test_router_two_hops_away_learns_delegations_and_ula(lab: tuple[str, Plan]) -> None:
    name, plan = lab
    r1, r2 = plan.node("r1").pd_client, plan.node("r2").pd_client
    assert r1 is not None and r2 is not None and r1.delegated and r2.delegated
    ula = next(r.to for r in plan.node("r1").routes if r.kind == "unreachable")
    wanted = {str(r1.delegated), str(ula), str(r2.delegated)}

    def learnt() -> dict[str, dict] | None:
        routes = _rip_routes(name)
        return routes if wanted <= set(routes) else None

    routes = _wait(learnt, f"far learns {sorted(wanted)} by RIP")
    for prefix in wanted:
        assert routes[prefix]["source"] == "rip", routes[prefix]
    assert "::/0" not in routes  # r1's default route (from the ISP's RA) stays its own

    # what r1's kernel holds, that its BIRD announced
    kernel = {r["dst"]: r for r in ip_json(name, "r1", "-6", "route", "show", "table", "main")}
    assert kernel[str(r1.delegated)]["type"] == "unreachable"
    assert kernel[str(ula)]["type"] == "unreachable"
    assert kernel[str(r2.delegated)]["protocol"] == str(ROUTE_PROTO)
    assert kernel[str(r2.delegated)]["gateway"] == str(
        plan.node("r2").interface("eth1").link_local.ip
    )


def test_far_reaches_the_lease_and_r1_refuses_its_unused_prefix(lab: tuple[str, Plan]) -> None:
    name, plan = lab
    (lease,) = plan.node("h1").interface("eth0").ipv6_dhcp
    ula = next(r.to for r in plan.node("r1").routes if r.kind == "unreachable")
    _wait(lambda: str(ula) in _rip_routes(name), f"far learns {ula}")
    ping = node_tool(name, "far", "ping", "-6", "-c1", "-W3", str(lease.ip))
    assert ping.returncode == 0, f"far -> h1's lease {lease.ip}: {ping.stdout}{ping.stderr}"
    unused = ipaddress.IPv6Network(ula).network_address + (0xFF << 64) + 1  # subnet ff: no LAN
    ping = node_tool(name, "far", "ping", "-6", "-c1", "-W3", str(unused))
    assert ping.returncode != 0
    assert "Destination unreachable" in ping.stdout, ping.stdout
    wan = _globals(name, "r1", "eth1")
    assert any(f"From {a}" in ping.stdout for a in wan), (wan, ping.stdout)
