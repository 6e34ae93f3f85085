"""Decode Neighbour Discovery messages (RFC 4861) into plain records.

Decoding is pure: a scapy packet goes in, an `NdpMessage` comes out, so the
whole decoder is tested with crafted packets and no root. Capture lives in
`ndp_capture`; printing lives in the CLI.

The record says what a network engineer asks first when watching a link:
which message (133 RS .. 137 Redirect), who sent it to whom, with the
well-known groups named (all-nodes, all-routers, solicited-node) and DAD
probes marked (an NS from `::`), the target, and every option decoded with
its lifetimes. JSON keeps lifetimes as numbers (0xffffffff is infinity, as on
the wire); the table renders them for people.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from scapy.layers.inet6 import (
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
    IPv6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from palmnet.addressing.multicast import SOLICITED_NODE_PREFIX

INFINITY = 0xFFFFFFFF
NONCE_OPTION = 14

MESSAGE_NAMES = {133: "RS", 134: "RA", 135: "NS", 136: "NA", 137: "Redirect"}
_MESSAGE_CLASSES = (ICMPv6ND_RS, ICMPv6ND_RA, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6ND_Redirect)

# RFC 4191 default router / route preference, as the 2-bit field encodes it.
PREFERENCES = {0: "medium", 1: "high", 2: "reserved", 3: "low"}

ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_ROUTERS = ipaddress.IPv6Address("ff02::2")


@dataclass(frozen=True)
class NdpMessage:
    """One decoded ND message, ready for a table row or a JSON line."""

    type: int
    name: str
    source: str
    source_kind: str
    destination: str
    destination_kind: str
    hop_limit: int
    dad: bool = False
    target: str | None = None
    redirect_destination: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    options: list[dict[str, Any]] = field(default_factory=list)
    source_mac: str | None = None
    destination_mac: str | None = None
    interface: str | None = None
    direction: str | None = None
    time: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A dict for `json.dumps`: every field, in declaration order."""
        return asdict(self)


def address_kind(address: ipaddress.IPv6Address | str) -> str:
    """Name the role of an address the way ND traces are read."""
    addr = ipaddress.IPv6Address(address)
    if addr.is_unspecified:
        return "unspecified"
    if addr == ALL_NODES:
        return "all-nodes"
    if addr == ALL_ROUTERS:
        return "all-routers"
    if addr in SOLICITED_NODE_PREFIX:
        return "solicited-node"
    if addr.is_multicast:
        return "multicast"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr in ipaddress.IPv6Network("fc00::/7"):
        return "unique-local"
    return "global"


def is_ndp(packet: Packet) -> bool:
    """True if the packet carries one of the five ND messages."""
    return any(packet.haslayer(cls) for cls in _MESSAGE_CLASSES)


def decode(
    packet: Packet,
    *,
    interface: str | None = None,
    direction: str | None = None,
) -> NdpMessage | None:
    """Decode an ND message from an Ethernet or IPv6 packet; None if it is not one."""
    ip = packet.getlayer(IPv6)
    if ip is None:
        return None
    for cls in _MESSAGE_CLASSES:
        icmp = ip.getlayer(cls)
        if icmp is not None:
            break
    else:
        return None
    kind = int(icmp.type)
    ether = packet.getlayer(Ether)
    source = str(ipaddress.IPv6Address(ip.src))
    destination = str(ipaddress.IPv6Address(ip.dst))
    target = None
    redirect_destination = None
    flags: dict[str, Any] = {}
    if isinstance(icmp, ICMPv6ND_RA):
        flags = {
            "cur_hop_limit": int(icmp.chlim),
            "managed": bool(icmp.M),
            "other": bool(icmp.O),
            "home_agent": bool(icmp.H),
            "preference": PREFERENCES[int(icmp.prf)],
            "proxy": bool(icmp.P),
            "router_lifetime": int(icmp.routerlifetime),
            "reachable_time": int(icmp.reachabletime),
            "retrans_timer": int(icmp.retranstimer),
        }
    elif isinstance(icmp, ICMPv6ND_NA):
        target = str(ipaddress.IPv6Address(icmp.tgt))
        flags = {"router": bool(icmp.R), "solicited": bool(icmp.S), "override": bool(icmp.O)}
    elif isinstance(icmp, ICMPv6ND_NS):
        target = str(ipaddress.IPv6Address(icmp.tgt))
    elif isinstance(icmp, ICMPv6ND_Redirect):
        target = str(ipaddress.IPv6Address(icmp.tgt))
        redirect_destination = str(ipaddress.IPv6Address(icmp.dst))
    return NdpMessage(
        type=kind,
        name=MESSAGE_NAMES[kind],
        source=source,
        source_kind=address_kind(source),
        destination=destination,
        destination_kind=address_kind(destination),
        hop_limit=int(ip.hlim),
        dad=kind == 135 and ipaddress.IPv6Address(source).is_unspecified,
        target=target,
        redirect_destination=redirect_destination,
        flags=flags,
        options=decode_options(icmp.payload),
        source_mac=str(ether.src) if ether is not None else None,
        destination_mac=str(ether.dst) if ether is not None else None,
        interface=interface,
        direction=direction,
        time=float(packet.time) if getattr(packet, "time", None) else None,
    )


def decode_options(payload: Packet) -> list[dict[str, Any]]:
    """Walk the option chain scapy built after the ND header."""
    options = []
    layer = payload
    while layer is not None and layer.name not in ("NoPayload", "Raw", "Padding"):
        option = _decode_option(layer)
        if option is None:
            break
        options.append(option)
        layer = layer.payload
    if layer is not None and layer.name == "Raw" and bytes(layer):
        options.append({"option": None, "type": "undecoded", "bytes": len(bytes(layer))})
    return options


def _decode_option(opt: Packet) -> dict[str, Any] | None:
    code = getattr(opt, "type", None)
    if code is None:
        return None
    base: dict[str, Any] = {"option": int(code)}
    # DstLLAddr subclasses SrcLLAddr in scapy: test it first.
    if isinstance(opt, ICMPv6NDOptDstLLAddr):
        return {**base, "type": "target-lladdr", "lladdr": str(opt.lladdr)}
    if isinstance(opt, ICMPv6NDOptSrcLLAddr):
        return {**base, "type": "source-lladdr", "lladdr": str(opt.lladdr)}
    if isinstance(opt, ICMPv6NDOptPrefixInfo):
        return {
            **base,
            "type": "prefix-info",
            "prefix": f"{ipaddress.IPv6Address(opt.prefix)}/{int(opt.prefixlen)}",
            "on_link": bool(opt.L),
            "autonomous": bool(opt.A),
            "router_address": bool(opt.R),
            "valid_lifetime": int(opt.validlifetime),
            "preferred_lifetime": int(opt.preferredlifetime),
        }
    if isinstance(opt, ICMPv6NDOptMTU):
        return {**base, "type": "mtu", "mtu": int(opt.mtu)}
    if isinstance(opt, ICMPv6NDOptRDNSS):
        return {
            **base,
            "type": "rdnss",
            "servers": [str(ipaddress.IPv6Address(a)) for a in opt.dns],
            "lifetime": int(opt.lifetime),
        }
    if isinstance(opt, ICMPv6NDOptDNSSL):
        return {
            **base,
            "type": "dnssl",
            "domains": [_domain(d) for d in opt.searchlist],
            "lifetime": int(opt.lifetime),
        }
    if isinstance(opt, ICMPv6NDOptRouteInfo):
        prefix = ipaddress.IPv6Address(opt.prefix or "::")
        return {
            **base,
            "type": "route-info",
            "prefix": f"{prefix}/{int(opt.plen or 0)}",
            "preference": PREFERENCES[int(opt.prf)],
            "lifetime": int(opt.rtlifetime),
        }
    if isinstance(opt, ICMPv6NDOptRedirectedHdr):
        return {**base, "type": "redirected-header", **_redirected(opt)}
    if int(code) == NONCE_OPTION:
        # RFC 3971 nonce: Linux adds one to DAD probes (enhanced DAD, RFC 7527)
        # to tell its own looped-back probe from a real duplicate.
        return {**base, "type": "nonce", "nonce": bytes(getattr(opt, "data", b"")).hex()}
    length = getattr(opt, "len", None)
    return {**base, "type": "unknown", "length": 8 * int(length) if length else None}


def _domain(name: bytes | str) -> str:
    text = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    return text.rstrip(".")


def _redirected(opt: ICMPv6NDOptRedirectedHdr) -> dict[str, Any]:
    """The start of the packet that triggered the Redirect: who sent what to whom."""
    inner = opt.pkt
    if not isinstance(inner, Packet) or not isinstance(inner, IPv6):
        return {"bytes": len(bytes(inner)) if inner else 0}
    return {
        "source": str(ipaddress.IPv6Address(inner.src)),
        "destination": str(ipaddress.IPv6Address(inner.dst)),
        "next_header": int(inner.nh),
        "bytes": len(bytes(inner)),
    }


def lifetime_text(seconds: int) -> str:
    """Lifetimes for people: 0xffffffff means infinity on the wire."""
    return "infinite" if seconds == INFINITY else f"{seconds}s"


def summary(message: NdpMessage) -> str:
    """The DETAILS column: target, flags and options on one line."""
    parts: list[str] = []
    if message.dad:
        parts.append("DAD")
    if message.target is not None:
        parts.append(f"target {message.target}")
    if message.redirect_destination is not None:
        parts.append(f"destination {message.redirect_destination}")
    flags = message.flags
    if message.name == "RA":
        letters = "".join(k for k in ("M", "O") if flags[{"M": "managed", "O": "other"}[k]])
        parts.append(
            f"lifetime {flags['router_lifetime']}s pref {flags['preference']}"
            + (f" flags {letters}" if letters else "")
            + (f" hoplimit {flags['cur_hop_limit']}" if flags["cur_hop_limit"] else "")
        )
    elif message.name == "NA":
        letters = "".join(
            letter
            for letter, key in (("R", "router"), ("S", "solicited"), ("O", "override"))
            if flags[key]
        )
        parts.append(f"flags {letters or '-'}")
    if message.hop_limit != 255:
        parts.append(f"HOP LIMIT {message.hop_limit} (not 255: receivers drop it)")
    parts.extend(_option_text(opt) for opt in message.options)
    return "; ".join(parts)


def _option_text(opt: dict[str, Any]) -> str:
    kind = opt["type"]
    if kind == "source-lladdr":
        return f"sll {opt['lladdr']}"
    if kind == "target-lladdr":
        return f"tll {opt['lladdr']}"
    if kind == "prefix-info":
        letters = ("L" if opt["on_link"] else "") + ("A" if opt["autonomous"] else "")
        return (
            f"prefix {opt['prefix']} {letters or '-'} "
            f"valid {lifetime_text(opt['valid_lifetime'])} "
            f"preferred {lifetime_text(opt['preferred_lifetime'])}"
        )
    if kind == "mtu":
        return f"mtu {opt['mtu']}"
    if kind == "rdnss":
        return f"rdnss {','.join(opt['servers'])} ({lifetime_text(opt['lifetime'])})"
    if kind == "dnssl":
        return f"dnssl {','.join(opt['domains'])} ({lifetime_text(opt['lifetime'])})"
    if kind == "route-info":
        return f"route {opt['prefix']} pref {opt['preference']} ({lifetime_text(opt['lifetime'])})"
    if kind == "nonce":
        return f"nonce {opt['nonce']}"
    if kind == "redirected-header":
        if "source" in opt:
            return f"redirected {opt['source']} -> {opt['destination']} ({opt['bytes']} bytes)"
        return f"redirected ({opt['bytes']} bytes)"
    return f"option {opt['option']} ({kind})"
