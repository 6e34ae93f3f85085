"""NAT64 arithmetic (RFC 6052, RFC 7050), the plan of a NAT64 lab, and the configs of
its daemons (TAYGA, unbound, dnsmasq behind the DNS64)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from palmnet.addressing.nat64 import (
    IPV4ONLY_ADDRESSES,
    discover_prefix,
    embed,
    extract,
    prefix_problem,
)
from palmnet.lab import plan_file
from palmnet.services.dnsmasq import hosts_file, render_dnsmasq_config
from palmnet.services.registry import services_for
from palmnet.services.tayga import render_start, render_tayga_config, unmasquerade_ruleset
from palmnet.services.unbound import render_unbound_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ipv6only.yaml"
V4 = ipaddress.IPv4Address("192.0.2.33")

# RFC 6052 2.4's table: 192.0.2.33 under each prefix length.
RFC6052_TABLE = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
]


@pytest.mark.parametrize(("prefix", "address"), RFC6052_TABLE)
def test_rfc6052_table(prefix: str, address: str) -> None:
    net = ipaddress.IPv6Network(prefix)
    assert embed(net, V4) == ipaddress.IPv6Address(address)
    assert extract(net, ipaddress.IPv6Address(address)) == V4


@pytest.mark.parametrize(("prefix", "_"), RFC6052_TABLE)
def test_rfc7050_discovery_finds_each_length(prefix: str, _: str) -> None:
    net = ipaddress.IPv6Network(prefix)
    answers = [embed(net, a) for a in IPV4ONLY_ADDRESSES]
    assert discover_prefix(answers) == net


def test_discovery_without_a_synthesised_answer() -> None:
    assert discover_prefix([ipaddress.IPv6Address("2001:db8::1")]) is None


@pytest.mark.parametrize(
    ("prefix", "words"),
    [
        ("2001:db8::/95", "not /95"),
        ("2001:db8:0:0:100::/96", "u octet"),
        ("64:ff9b:1::/48", "TAYGA 0.9.2 refuses"),
    ],
)
def test_bad_prefixes(prefix: str, words: str) -> None:
    problem = prefix_problem(ipaddress.IPv6Network(prefix))
    assert problem is not None and words in problem


def test_example_plan_has_plat_dns64_and_clat() -> None:
    plan = plan_file(str(EXAMPLE))
    router = plan.node("router")
    assert router.nat64 is not None
    assert str(router.nat64.prefix) == "2001:db8:64:ff9b::/96"
    assert str(router.nat64.address4) == "203.0.113.129"  # pool4's first
    assert router.nat64.dns64 and router.dns is not None and router.dns.port == 5353
    names = [s.name for s in services_for(router)]
    assert {"tayga", "unbound", "dnsmasq", "radvd"} <= set(names)
    # IPv6-only LAN: no IPv4 on the router's LAN side, none on the hosts, no DHCPv4.
    assert not router.interface("br-lan").ipv4
    assert all(not i.ipv4 for n in plan.nodes if n.kind == "host" and n.name != "legacy"
               for i in n.interfaces)  # fmt: skip
    assert all(lan.dhcp4_range is None for lan in router.lans)
    app = plan.node("app")
    assert app.clat is not None and app.clat.uplink == "eth0"
    assert app.clat.ipv6 in ipaddress.IPv6Network("2001:db8:64:1::/64")
    assert app.clat.expected_prefix == router.nat64.prefix
    assert "clat" in [s.name for s in services_for(app)]
    assert any(n.startswith("router: NAT64 2001:db8:64:ff9b::/96 -> pool4") for n in plan.notes)
    assert any(n.startswith(f"app: CLAT 192.0.0.1 <-> {app.clat.ipv6}") for n in plan.notes)
    # The translator's zone is in the router's firewall.
    assert "list device 'nat64'" in dict(router.uci)["firewall"]


def test_daemon_configs() -> None:
    plan = plan_file(str(EXAMPLE))
    router = plan.node("router")
    assert router.nat64 is not None and router.dns is not None
    tayga = render_tayga_config(router.nat64, Path("/s/tayga"))
    assert "dynamic-pool 203.0.113.128/26" in tayga
    assert "prefix 2001:db8:64:ff9b::/96" in tayga
    start = render_start(router.nat64, Path("/s/tayga/tayga.conf"), Path("/s/u.nft"))
    assert "ip -6 route replace 2001:db8:64:ff9b::/96 dev nat64 proto static" in start
    assert start.splitlines()[-1].startswith("exec tayga")
    assert "snat ip to ip saddr" in unmasquerade_ruleset(router.nat64)
    unbound = render_unbound_config(router, Path("/s/unbound"), Path("/s/unbound.log"))
    assert 'module-config: "dns64 iterator"' in unbound
    assert "dns64-prefix: 2001:db8:64:ff9b::/96" in unbound
    assert "forward-addr: ::1@5353" in unbound
    dnsmasq = render_dnsmasq_config(router, Path("/s/dnsmasq"), Path("/s/dnsmasq.log"))
    assert "port=5353" in dnsmasq
    assert "192.0.0.170 ipv4only.arpa" in hosts_file(router.dns)
