"""The audit's pure parts: the scorecard, what rdisc6/ndisc6/ip print, the frames.

The rdisc6 texts are real output, captured in labs built from
examples/farm.yaml (a plain router) and examples/palm.yaml (an OpenWrt
router with RDNSS/DNSSL and stateful DHCPv6). Frames go through bytes and
back into scapy, so what is checked is what goes on the wire.
"""

from __future__ import annotations

import ipaddress
import json
import random

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import Ether
from typer.testing import CliRunner

from palmnet.errors import InputError
from palmnet.toolbox.audit import frames
from palmnet.toolbox.audit.addressing import _slaac_kind
from palmnet.toolbox.audit.context import Address, AuditOptions, parse_ip_addr
from palmnet.toolbox.audit.flood import in_prefixes
from palmnet.toolbox.audit.model import CheckResult, Outcome, Scorecard, Verdict
from palmnet.toolbox.audit.rdisc import parse_ndisc6_mac, parse_rdisc6, unique_routers
from palmnet.toolbox.audit.routing import _next_hops, forwarders, name_servers, parse_resolv_conf
from palmnet.toolbox.audit.runner import CHECK_NAMES, CHECKS, select_checks
from palmnet.toolbox.audit.scan import ndisc_stats

FARM_RDISC6 = """\
Soliciting ff02::2 (ff02::2) on eth0...

Hop limit                 :           64 (      0x40)
Stateful address conf.    :           No
Stateful other conf.      :           No
Mobile home agent         :           No
Router preference         :       medium
Neighbor discovery proxy  :           No
Router lifetime           :         1800 (0x00000708) seconds
Reachable time            :  unspecified (0x00000000)
Retransmit time           :  unspecified (0x00000000)
 Prefix                   : 2001:db8:ebbd:2084::/64
  On-link                 :          Yes
  Autonomous address conf.:          Yes
  Valid time              :        86400 (0x00015180) seconds
  Pref. time              :        14400 (0x00003840) seconds
 Source link-layer address: 00:16:3E:60:1E:F2
 from fe80::216:3eff:fe60:1ef2
"""

PALM_RA = """\
Hop limit                 :           64 (      0x40)
Stateful address conf.    :          Yes
Stateful other conf.      :          Yes
Mobile home agent         :           No
Router preference         :       medium
Neighbor discovery proxy  :           No
Router lifetime           :         1800 (0x00000708) seconds
Reachable time            :  unspecified (0x00000000)
Retransmit time           :  unspecified (0x00000000)
 Prefix                   : 2001:db8:ebbd:2084::/64
  On-link                 :          Yes
  Autonomous address conf.:          Yes
  Valid time              :        86400 (0x00015180) seconds
  Pref. time              :        14400 (0x00003840) seconds
 Prefix                   : fd6a:c19d:b07:2084::/64
  On-link                 :          Yes
  Autonomous address conf.:          Yes
  Valid time              :        86400 (0x00015180) seconds
  Pref. time              :        14400 (0x00003840) seconds
 Recursive DNS server     : 2001:db8:ebbd:2084::1
 Recursive DNS server     : fd6a:c19d:b07:2084::1
  DNS servers lifetime    :           30 (0x0000001e) seconds
 DNS search list          : palm.example\x20
  DNS search list lifetime:           30 (0x0000001e) seconds
 Source link-layer address: 00:16:3E:0C:1F:FA
 from fe80::216:3eff:fe0c:1ffa
"""
# rdisc6 -m printed the answer to its RS and then the router's periodic RA.
PALM_RDISC6 = "Soliciting ff02::2 (ff02::2) on eth0...\n\n" + PALM_RA + "\n" + PALM_RA


def _card(*verdicts: Verdict) -> Scorecard:
    card = Scorecard("farm", "w1", "eth0", "w2", "eth0")
    for name, verdict in zip(CHECK_NAMES, verdicts, strict=False):
        card.add(CheckResult(name, f"criterion of {name}", verdict, f"evidence {name}", 0.25))
    return card


# -- the scorecard ------------------------------------------------------------------


def test_verdict_and_exit_code() -> None:
    assert _card(Verdict.PASS, Verdict.NA).verdict is Verdict.PASS
    assert _card(Verdict.PASS, Verdict.NA).exit_code == 0
    assert _card(Verdict.NA, Verdict.NA).verdict is Verdict.NA
    assert _card(Verdict.NA).exit_code == 0  # nothing to judge is not a failure
    failed = _card(Verdict.PASS, Verdict.FAIL, Verdict.NA)
    assert failed.verdict is Verdict.FAIL
    assert failed.exit_code == 1
    assert failed.counts() == {Verdict.PASS: 1, Verdict.FAIL: 1, Verdict.NA: 1}


def test_render_lists_every_check_in_checklist_order() -> None:
    card = Scorecard("farm", "w1", "eth0", "w2", "eth0")
    # Run order: the restart last; the checklist puts it fourth.
    for name in ("slaac", "ra_flood", "restart_stable"):
        card.add(CheckResult(name, "c", Verdict.PASS, f"why {name}", 1.5))
    text = card.render(CHECK_NAMES)
    lines = text.splitlines()
    assert lines[0] == "audit of w1 in lab farm: stimuli from w2 (eth0) to eth0"
    assert lines[1].split() == ["CHECK", "RESULT", "TIME", "EVIDENCE"]
    assert [line.split()[0] for line in lines[2:5]] == ["slaac", "restart_stable", "ra_flood"]
    assert lines[2].split(None, 3) == ["slaac", "PASS", "1.50s", "why slaac"]
    assert lines[-1] == "PASS: 3 pass, 0 fail, 0 n/a in 4.50s"
    assert text.endswith("\n")


def test_render_without_stimulus_node() -> None:
    card = Scorecard("lone", "r1")
    card.add(CheckResult("slaac", "c", Verdict.NA, "no router", 0.0))
    assert card.render().splitlines()[0] == "audit of r1 in lab lone"


def test_json_shape() -> None:
    card = _card(Verdict.PASS, Verdict.FAIL, Verdict.NA)
    data = json.loads(json.dumps(card.to_json(CHECK_NAMES)))
    assert data["lab"] == "farm" and data["node"] == "w1"
    assert data["from"] == "w2" and data["interface"] == "eth0"
    assert data["verdict"] == "FAIL"
    assert [c["check"] for c in data["checks"]] == ["slaac", "dhcpv6", "link_bounce"]
    assert [c["verdict"] for c in data["checks"]] == ["PASS", "FAIL", "N/A"]
    assert set(data["checks"][0]) == {"check", "criterion", "verdict", "evidence", "seconds"}
    assert data["seconds"] == 0.75


def test_outcome_constructors() -> None:
    assert Outcome.passed("x") == Outcome(Verdict.PASS, "x")
    assert Outcome.failed("x").verdict is Verdict.FAIL
    assert Outcome.na("x").verdict.value == "N/A"


# -- the checklist ---------------------------------------------------------------------


def test_checklist_names_and_order() -> None:
    assert CHECK_NAMES == [
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
    run_order = [c.name for c in sorted(CHECKS, key=lambda c: c.stage)]
    # Looking first; the restart, which rebuilds the node, last.
    assert run_order[-1] == "restart_stable"
    assert run_order.index("ra_flood") < run_order.index("link_bounce")
    assert run_order.index("default_route_ll") < run_order.index("ra_flood")


def test_select_checks() -> None:
    assert [c.name for c in select_checks(None)] == CHECK_NAMES
    assert [c.name for c in select_checks("ra_flood, slaac")] == ["slaac", "ra_flood"]
    with pytest.raises(InputError, match="unknown check bogus"):
        select_checks("slaac,bogus")
    with pytest.raises(InputError):
        select_checks(",")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (AuditOptions(ra_count=0), "--ra-count 0"),
        (AuditOptions(ra_count=5001), "--ra-count 5001"),
        (AuditOptions(scan_count=257), "--scan-count 257"),
        (AuditOptions(deadline=0), "--deadline 0"),
    ],
)
def test_bounds_of_the_stimuli(options: AuditOptions, message: str) -> None:
    with pytest.raises(InputError, match=message):
        options.check()
    AuditOptions().check()


# -- what the tools print --------------------------------------------------------------


def test_rdisc6_farm() -> None:
    (ra,) = parse_rdisc6(FARM_RDISC6)
    assert ra.source == ipaddress.IPv6Address("fe80::216:3eff:fe60:1ef2")
    assert not ra.managed and not ra.other
    assert ra.router_lifetime == 1800
    (p,) = ra.prefixes
    assert p.prefix == ipaddress.IPv6Network("2001:db8:ebbd:2084::/64")
    assert p.on_link and p.autonomous
    assert (p.valid, p.preferred) == (86400, 14400)
    assert ra.rdnss == [] and ra.dnssl == []


def test_rdisc6_palm_with_options_and_duplicates() -> None:
    adverts = parse_rdisc6(PALM_RDISC6)
    assert len(adverts) == 2
    (ra,) = unique_routers(adverts)
    assert ra.managed and ra.other
    assert [str(p.prefix) for p in ra.prefixes] == [
        "2001:db8:ebbd:2084::/64",
        "fd6a:c19d:b07:2084::/64",
    ]
    assert all(p.autonomous for p in ra.prefixes)
    assert [str(a) for a in ra.rdnss] == ["2001:db8:ebbd:2084::1", "fd6a:c19d:b07:2084::1"]
    assert ra.dnssl == ["palm.example"]


def test_rdisc6_without_answer() -> None:
    assert parse_rdisc6("Soliciting ff02::2 (ff02::2) on eth0...\nTimed out.\n") == []


def test_ndisc6_quiet_output() -> None:
    assert parse_ndisc6_mac("00:16:3E:77:2F:94\n") == "00:16:3e:77:2f:94"
    assert parse_ndisc6_mac("Timed out.\nNo response.\n") is None


def test_resolv_conf() -> None:
    text = (
        "# written by rdnssd\nsearch palm.example. other.example\n"
        "nameserver 2001:db8:ebbd:2084::1\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\n"
    )
    servers, search = parse_resolv_conf(text)
    assert [str(s) for s in servers] == ["2001:db8:ebbd:2084::1", "fe80::1"]
    assert search == ["palm.example", "other.example"]


def test_name_servers_of_a_resolv_conf() -> None:
    text = "nameserver 127.0.0.1\nnameserver ::1\nnameserver fe80::1%eth0 # lan\nnameserver x\n"
    assert [str(a) for a in name_servers(text)] == ["127.0.0.1", "::1", "fe80::1"]
    # None named: the C library asks the local machine (resolv.conf(5)).
    assert [str(a) for a in name_servers("search cascade.example\n")] == ["127.0.0.1"]
    assert name_servers("search cascade.example\n", default=False) == []


def test_forwarders_of_dnsmasq_server_values() -> None:
    values = ("2001:db8:ebb0::1", "192.0.2.53#5353", "/lab.example/2001:db8::53", "/local/")
    assert [str(a) for a in forwarders(values)] == [
        "2001:db8:ebb0::1",
        "192.0.2.53",
        "2001:db8::53",
    ]


def test_default_route_next_hops() -> None:
    routes = [
        {"dst": "default", "gateway": "fe80::1", "dev": "eth0", "protocol": "ra"},
        {
            "dst": "default",
            "protocol": "static",
            "nexthops": [
                {"gateway": "fe80::2", "dev": "eth0"},
                {"gateway": "2001:db8::1", "dev": "eth1"},
            ],
        },
        {"dst": "default", "type": "unreachable", "dev": "lo"},
    ]
    assert _next_hops(routes) == [
        ("fe80::1", "eth0", "ra"),
        ("fe80::2", "eth0", "static"),
        ("2001:db8::1", "eth1", "static"),
    ]


def test_ip_addr_json() -> None:
    data = [
        {
            "ifname": "eth0",
            "addr_info": [
                {},  # ip -j prints an empty object for what it filtered out
                {
                    "family": "inet6",
                    "local": "2001:db8:ebbd:2084::1f59",
                    "prefixlen": 128,
                    "scope": "global",
                    "dynamic": True,
                    "noprefixroute": True,
                },
                {
                    "family": "inet6",
                    "local": "fe80::216:3eff:fef4:25ed",
                    "prefixlen": 64,
                    "scope": "link",
                    "tentative": True,
                },
                {"family": "inet", "local": "198.51.100.203", "prefixlen": 24},
            ],
        }
    ]
    lease, ll = parse_ip_addr(data)
    assert str(lease) == "2001:db8:ebbd:2084::1f59/128"
    assert lease.usable and lease.flags == {"dynamic", "noprefixroute"}
    assert ll.scope == "link" and not ll.usable


def test_how_an_interface_id_was_formed() -> None:
    mac = "00:16:3e:53:3e:ad"

    def addr(text: str, length: int = 64, *flags: str) -> Address:
        return Address("eth0", ipaddress.IPv6Address(text), length, "global", frozenset(flags))

    assert _slaac_kind(addr("2001:db8::216:3eff:fe53:3ead", 64, "dynamic"), mac) == "EUI-64"
    assert _slaac_kind(addr("2001:db8::1234:5678:9abc:def0", 64, "stable-privacy"), mac) == (
        "stable"
    )
    assert _slaac_kind(addr("2001:db8::1234:5678:9abc:def0", 64, "temporary"), mac) is None
    assert _slaac_kind(addr("2001:db8::1", 64, "permanent"), mac) is None  # static
    assert _slaac_kind(addr("2001:db8::1f59", 128, "dynamic"), mac) is None  # a DHCPv6 lease


def test_ndisc_cache_stats_sum_table_fulls_over_cpus() -> None:
    text = (
        "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast "
        "rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n"
        "000001ce 0000bd5c 0000cd99 00000006 00001685 000008d1 00000000 00000064 00000350 "
        "00000000 00000034 00000000 00000002\n"
        "000001ce 0000b829 0000a7eb 00000003 00001919 00000c90 00000056 00000095 0000050f "
        "000000c7 00000036 00000000 00000001\n"
    )
    assert ndisc_stats(text) == {"entries": 462, "table_fulls": 3}


# -- the frames ------------------------------------------------------------------------

SRC_MAC, DST_MAC = "00:16:3e:77:2f:94", "00:16:3e:53:3e:ad"
SRC_LL = ipaddress.IPv6Address("fe80::216:3eff:fe77:2f94")
DST_LL = ipaddress.IPv6Address("fe80::216:3eff:fe53:3ead")


def test_checksum_matches_scapy() -> None:
    packet = IPv6(src=str(SRC_LL), dst=str(DST_LL)) / ICMPv6EchoRequest(id=7, seq=1, data=b"x")
    raw = bytes(packet)
    message = bytearray(raw[40:])
    expected = int.from_bytes(message[2:4], "big")
    message[2:4] = b"\0\0"
    assert frames.icmpv6_checksum(SRC_LL, DST_LL, bytes(message)) == expected
    assert in6_chksum(58, packet[IPv6], bytes(message)) == expected


def test_ra_flood_frames_are_valid_ras() -> None:
    rng = random.Random(6)
    lab = [ipaddress.IPv6Network("2001:db8:ebbd:2084::/64")]
    prefixes = frames.random_prefixes(50, lab, rng)
    assert len(set(prefixes)) == 50
    assert all(p.prefixlen == 64 and p.subnet_of(frames.DOCUMENTATION) for p in prefixes)
    assert not any(p.overlaps(lab[0]) for p in prefixes)
    built = frames.ra_flood_frames(
        src_mac=SRC_MAC,
        dst_mac=DST_MAC,
        src=SRC_LL,
        dst=DST_LL,
        prefixes=prefixes,
        router_lifetime=0,
        lifetime=600,
    )
    for raw, prefix in zip(built, prefixes, strict=True):
        p = Ether(raw)
        assert p[Ether].dst == DST_MAC and p[IPv6].hlim == 255
        assert p[IPv6].src == str(SRC_LL) and p[IPv6].dst == str(DST_LL)
        assert p[ICMPv6ND_RA].routerlifetime == 0
        info = p[ICMPv6NDOptPrefixInfo]
        assert ipaddress.IPv6Network(f"{info.prefix}/{info.prefixlen}") == prefix
        assert (info.A, info.L) == (1, 0)
        assert info.validlifetime == info.preferredlifetime == 600
        # scapy recomputes the checksum when told to forget ours: they must agree.
        ours = p[ICMPv6ND_RA].cksum
        del p[ICMPv6ND_RA].cksum
        assert Ether(bytes(p))[ICMPv6ND_RA].cksum == ours


def test_ns_goes_to_the_solicited_node_group() -> None:
    target = ipaddress.IPv6Address("2001:db8:ebbd:0:5066:64f6:547e:4872")
    p = Ether(frames.ns_frame(src_mac=SRC_MAC, src=SRC_LL, target=target))
    assert p[IPv6].dst == "ff02::1:ff7e:4872"
    assert p[Ether].dst == "33:33:ff:7e:48:72"
    assert p[ICMPv6ND_NS].tgt == str(target)
    assert p[ICMPv6NDOptSrcLLAddr].lladdr == SRC_MAC


def test_packet_too_big_quotes_at_most_what_fits_1280() -> None:
    quoted = bytes(IPv6(src=str(DST_LL), dst=str(SRC_LL)) / ICMPv6EchoRequest(data=b"a" * 1400))
    p = Ether(
        frames.packet_too_big_frame(
            src_mac=SRC_MAC, dst_mac=DST_MAC, src=SRC_LL, dst=DST_LL, mtu=1280, quoted=quoted
        )
    )
    assert p[ICMPv6PacketTooBig].mtu == 1280
    assert len(bytes(p[IPv6])) == 1280


def test_random_hosts_avoid_held_addresses() -> None:
    prefix = ipaddress.IPv6Network("2001:db8:ebbd:2084::/64")
    held = {ipaddress.IPv6Address("2001:db8:ebbd:2084::1")}
    hosts = frames.random_hosts(prefix, 256, held, random.Random(1))
    assert len(set(hosts)) == 256
    assert all(h in prefix and h not in held for h in hosts)


def test_in_prefixes() -> None:
    flood = {ipaddress.IPv6Network("2001:db8:1:2::/64")}
    assert in_prefixes(ipaddress.IPv6Address("2001:db8:1:2:216:3eff:fe00:1"), flood)
    assert not in_prefixes(ipaddress.IPv6Address("2001:db8:1:3::1"), flood)


# -- the verb --------------------------------------------------------------------------


def test_cli_prints_the_card_and_exits_1_on_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from palmnet.cli.app import build_app
    from palmnet.toolbox.audit import runner

    def fake(lab: str | None, node: str, **kwargs: object) -> Scorecard:
        assert (lab, node, kwargs["only"]) == ("farm", "w1", "default_route_ll")
        card = Scorecard("farm", node)
        card.add(
            CheckResult(
                "default_route_ll", "c", Verdict.FAIL, "next hop not link-local: 2001:db8::1", 0.1
            )
        )
        return card

    monkeypatch.setattr(runner, "run_audit", fake)
    app = build_app()
    args = ["audit", "--lab", "farm", "w1", "--only", "default_route_ll"]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["checks"][0]["verdict"] == "FAIL"
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "default_route_ll  FAIL" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--ra-count", "6000"],
        ["--scan-count", "0"],
        ["--only", "slaac,nope"],
    ],
)
def test_cli_bad_input_exits_2(args: list[str]) -> None:
    from palmnet.cli.app import build_app

    result = CliRunner().invoke(build_app(), ["audit", "w1", *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
