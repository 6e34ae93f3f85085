"""The ND decoder on crafted packets: every message type and option we name.

Packets go through bytes and back (`Ether(bytes(p))`), so the decoder sees
what a capture socket would hand it, not scapy's build-time objects.
"""

from __future__ import annotations

import json

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDNSSL,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptRedirectedHdr,
    ICMPv6NDOptRouteInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptUnknown,
    IPv6,
)
from scapy.layers.l2 import Ether

from palmnet.toolbox.ndp import (
    INFINITY,
    address_kind,
    decode,
    is_ndp,
    summary,
)

ROUTER_MAC = "00:16:3e:00:00:01"
HOST_MAC = "00:16:3e:12:34:56"
ROUTER_LL = "fe80::216:3eff:fe00:1"
HOST_LL = "fe80::216:3eff:fe12:3456"
SOLICITED = "ff02::1:ff12:3456"  # its solicited-node group: the low 24 bits


def wire(packet):
    """What a capture returns: the packet rebuilt from its bytes."""
    return Ether(bytes(packet))


def test_address_kinds():
    assert address_kind("::") == "unspecified"
    assert address_kind("ff02::1") == "all-nodes"
    assert address_kind("ff02::2") == "all-routers"
    assert address_kind("ff02::1:ff12:3456") == "solicited-node"
    assert address_kind("ff02::16") == "multicast"
    assert address_kind(HOST_LL) == "link-local"
    assert address_kind("fd00::1") == "unique-local"
    assert address_kind("2001:db8::1") == "global"


def test_ra_with_every_option_we_name():
    packet = wire(
        Ether(src=ROUTER_MAC, dst="33:33:00:00:00:01")
        / IPv6(src=ROUTER_LL, dst="ff02::1")
        / ICMPv6ND_RA(chlim=64, M=0, O=1, prf=0, routerlifetime=1800, reachabletime=0)
        / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC)
        / ICMPv6NDOptMTU(mtu=1480)
        / ICMPv6NDOptPrefixInfo(
            prefix="2001:db8:ebbd:2084::",
            prefixlen=64,
            L=1,
            A=1,
            validlifetime=86400,
            preferredlifetime=14400,
        )
        / ICMPv6NDOptPrefixInfo(prefix="2001:db8:1::", prefixlen=64, L=1, A=0)
        / ICMPv6NDOptRDNSS(dns=["2001:db8::53", "2001:db8::54"], lifetime=600)
        / ICMPv6NDOptDNSSL(searchlist=["palm.example", "lab.example"], lifetime=1200)
        / ICMPv6NDOptRouteInfo(prefix="2001:db8:5::", plen=48, prf=3, rtlifetime=300)
    )
    assert is_ndp(packet)
    msg = decode(packet, interface="eth0", direction="in")
    assert msg is not None
    assert (msg.type, msg.name) == (134, "RA")
    assert (msg.source, msg.source_kind) == (ROUTER_LL, "link-local")
    assert (msg.destination, msg.destination_kind) == ("ff02::1", "all-nodes")
    assert msg.source_mac == ROUTER_MAC
    assert msg.destination_mac == "33:33:00:00:00:01"
    assert msg.hop_limit == 255
    assert msg.flags == {
        "cur_hop_limit": 64,
        "managed": False,
        "other": True,
        "home_agent": False,
        "preference": "medium",
        "proxy": False,
        "router_lifetime": 1800,
        "reachable_time": 0,
        "retrans_timer": 0,
    }
    assert msg.options == [
        {"option": 1, "type": "source-lladdr", "lladdr": ROUTER_MAC},
        {"option": 5, "type": "mtu", "mtu": 1480},
        {
            "option": 3,
            "type": "prefix-info",
            "prefix": "2001:db8:ebbd:2084::/64",
            "on_link": True,
            "autonomous": True,
            "router_address": False,
            "valid_lifetime": 86400,
            "preferred_lifetime": 14400,
        },
        {
            "option": 3,
            "type": "prefix-info",
            "prefix": "2001:db8:1::/64",
            "on_link": True,
            "autonomous": False,
            "router_address": False,
            "valid_lifetime": INFINITY,
            "preferred_lifetime": INFINITY,
        },
        {
            "option": 25,
            "type": "rdnss",
            "servers": ["2001:db8::53", "2001:db8::54"],
            "lifetime": 600,
        },
        {
            "option": 31,
            "type": "dnssl",
            "domains": ["palm.example", "lab.example"],
            "lifetime": 1200,
        },
        {
            "option": 24,
            "type": "route-info",
            "prefix": "2001:db8:5::/48",
            "preference": "low",
            "lifetime": 300,
        },
    ]
    text = summary(msg)
    assert "prefix 2001:db8:ebbd:2084::/64 LA valid 86400s preferred 14400s" in text
    assert "prefix 2001:db8:1::/64 L valid infinite preferred infinite" in text
    assert "rdnss 2001:db8::53,2001:db8::54 (600s)" in text
    assert "dnssl palm.example,lab.example (1200s)" in text
    assert "route 2001:db8:5::/48 pref low (300s)" in text
    assert "mtu 1480" in text
    assert "flags O" in text
    # The JSON line is plain JSON (no scapy objects leak out).
    assert json.loads(json.dumps(msg.to_json()))["options"][2]["valid_lifetime"] == 86400


def test_ns_dad_probe_from_unspecified_to_solicited_node_group():
    group = SOLICITED
    packet = wire(
        Ether(src=HOST_MAC, dst="33:33:ff:12:34:56")
        / IPv6(src="::", dst=group)
        / ICMPv6ND_NS(tgt=HOST_LL)
    )
    msg = decode(packet, interface="eth0", direction="out")
    assert msg is not None
    assert (msg.type, msg.name) == (135, "NS")
    assert msg.dad is True
    assert (msg.source, msg.source_kind) == ("::", "unspecified")
    assert (msg.destination, msg.destination_kind) == ("ff02::1:ff12:3456", "solicited-node")
    assert msg.target == HOST_LL
    assert msg.options == []  # RFC 4862 5.4.2: no SLLA option from ::
    assert msg.direction == "out"
    assert summary(msg).startswith(f"DAD; target {HOST_LL}")


def test_enhanced_dad_nonce_option():
    packet = wire(
        Ether(src=HOST_MAC)
        / IPv6(src="::", dst=SOLICITED)
        / ICMPv6ND_NS(tgt=HOST_LL)
        / ICMPv6NDOptUnknown(type=14, data=bytes.fromhex("0102030405a6"))
    )
    msg = decode(packet)
    assert msg is not None
    assert msg.options == [{"option": 14, "type": "nonce", "nonce": "0102030405a6"}]
    assert summary(msg).endswith("nonce 0102030405a6")


def test_ns_address_resolution_is_not_dad():
    packet = wire(
        Ether(src=ROUTER_MAC)
        / IPv6(src=ROUTER_LL, dst=SOLICITED)
        / ICMPv6ND_NS(tgt=HOST_LL)
        / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC)
    )
    msg = decode(packet)
    assert msg is not None
    assert msg.dad is False
    assert msg.options == [{"option": 1, "type": "source-lladdr", "lladdr": ROUTER_MAC}]


def test_na_flags_and_target_lladdr():
    packet = wire(
        Ether(src=HOST_MAC, dst=ROUTER_MAC)
        / IPv6(src=HOST_LL, dst=ROUTER_LL)
        / ICMPv6ND_NA(R=0, S=1, O=1, tgt=HOST_LL)
        / ICMPv6NDOptDstLLAddr(lladdr=HOST_MAC)
    )
    msg = decode(packet)
    assert msg is not None
    assert (msg.type, msg.name) == (136, "NA")
    assert msg.flags == {"router": False, "solicited": True, "override": True}
    assert msg.target == HOST_LL
    assert msg.options == [{"option": 2, "type": "target-lladdr", "lladdr": HOST_MAC}]
    assert "flags SO" in summary(msg)
    assert "tll 00:16:3e:12:34:56" in summary(msg)


def test_rs_to_all_routers():
    packet = wire(
        Ether(src=HOST_MAC, dst="33:33:00:00:00:02")
        / IPv6(src=HOST_LL, dst="ff02::2")
        / ICMPv6ND_RS()
        / ICMPv6NDOptSrcLLAddr(lladdr=HOST_MAC)
    )
    msg = decode(packet)
    assert msg is not None
    assert (msg.type, msg.name, msg.destination_kind) == (133, "RS", "all-routers")
    assert msg.target is None


def test_redirect_with_target_destination_and_redirected_header():
    original = IPv6(src="2001:db8:1::10", dst="2001:db8:9::1") / ICMPv6EchoRequest(data=b"x" * 16)
    packet = wire(
        Ether(src=ROUTER_MAC, dst=HOST_MAC)
        / IPv6(src=ROUTER_LL, dst=HOST_LL)
        / ICMPv6ND_Redirect(tgt="fe80::216:3eff:fe00:2", dst="2001:db8:9::1")
        / ICMPv6NDOptDstLLAddr(lladdr="00:16:3e:00:00:02")
        / ICMPv6NDOptRedirectedHdr(pkt=original)
    )
    msg = decode(packet)
    assert msg is not None
    assert (msg.type, msg.name) == (137, "Redirect")
    assert msg.target == "fe80::216:3eff:fe00:2"
    assert msg.redirect_destination == "2001:db8:9::1"
    assert msg.options[0] == {"option": 2, "type": "target-lladdr", "lladdr": "00:16:3e:00:00:02"}
    redirected = msg.options[1]
    assert redirected["type"] == "redirected-header"
    assert (redirected["source"], redirected["destination"]) == ("2001:db8:1::10", "2001:db8:9::1")
    assert redirected["next_header"] == 58
    text = summary(msg)
    assert "target fe80::216:3eff:fe00:2; destination 2001:db8:9::1" in text
    assert "redirected 2001:db8:1::10 -> 2001:db8:9::1" in text


def test_unknown_option_is_kept_not_dropped():
    packet = wire(
        Ether()
        / IPv6(src=ROUTER_LL, dst="ff02::1")
        / ICMPv6ND_RA()
        / ICMPv6NDOptUnknown(type=253, data=b"\x00" * 6)
    )
    msg = decode(packet)
    assert msg is not None
    assert msg.options == [{"option": 253, "type": "unknown", "length": 8}]


def test_wrong_hop_limit_is_flagged():
    packet = wire(Ether() / IPv6(src=ROUTER_LL, dst="ff02::1", hlim=64) / ICMPv6ND_RA())
    msg = decode(packet)
    assert msg is not None
    assert msg.hop_limit == 64
    assert "HOP LIMIT 64" in summary(msg)


def test_non_nd_packets_decode_to_none():
    echo = wire(Ether() / IPv6(src=HOST_LL, dst="ff02::1") / ICMPv6EchoRequest())
    assert not is_ndp(echo)
    assert decode(echo) is None
    assert decode(wire(Ether() / IP() / TCP())) is None


def test_ipv6_without_ethernet_decodes_without_macs():
    msg = decode(IPv6(bytes(IPv6(src=HOST_LL, dst="ff02::2") / ICMPv6ND_RS())))
    assert msg is not None
    assert msg.name == "RS"
    assert msg.source_mac is None
