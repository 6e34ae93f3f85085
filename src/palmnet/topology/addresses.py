"""Strict address fields for the topology model.

YAML 1.1 loaders read `2001:10:20:30:40:50:1:2` as a base-60 integer, and
pydantic would then accept the integer as an address. Fields here accept only
strings, and interface addresses must carry their prefix length.

A static address is one a host may hold on a link: the kernel refuses
multicast, the unspecified address and ::1 on an interface, and takes
127.0.0.1/8 or 224.0.0.1/4 only to make a node that cannot talk. Link-local
statics are allowed where routers use them (a well-known `fe80::1/64` next
hop, beside the EUI-64 link-local the plan gives every interface), so only
inside fe80::/64 and as a /64: `fe80::1/10` would claim a /10 on the link.
A prefix's all-zero address is its subnet-router anycast address (RFC 4291
2.6.1) or, in IPv4, its network address; neither is an interface's.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field

from palmnet.topology.describe import describe, reason, shown


def _require_str(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected {what} as a string, got {describe(value)}")
    return value.strip()


def _other_family(text: str, family: int) -> bool:
    try:
        return ipaddress.ip_interface(text).version == family
    except ValueError:
        return False


def _ipv6_interface(value: Any) -> ipaddress.IPv6Interface:
    text = _require_str(value, "an IPv6 address with prefix length (2001:db8::1/64)")
    if _other_family(text, 4):
        raise ValueError(f"{shown(text)} is an IPv4 address: list it under ipv4")
    if "/" not in text:
        raise ValueError(f"{shown(text)} needs a prefix length, e.g. {text[:40]}/64")
    try:
        iface = ipaddress.IPv6Interface(text)
    except ValueError as exc:
        raise ValueError(
            f"{shown(text)} is not an IPv6 address with prefix length: {reason(exc)}"
        ) from None
    why = unicast6_problem(iface)
    if why:
        raise ValueError(f"{iface} is {why}, not an address for an interface")
    return iface


def unicast6_problem(iface: ipaddress.IPv6Interface) -> str | None:
    ip = iface.ip
    if iface.scope_id is not None:  # `ip` drops the zone: ask the interface
        return "written with a zone after '%' (the interface it is on is its zone)"
    if ip.is_multicast:
        return "a multicast address (ff00::/8)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "the loopback address (lo holds it)"
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped address (::ffff:0:0/96): write the IPv4 address under ipv4"
    if ip in _V4_COMPATIBLE:
        return "in ::/96, deprecated IPv4-compatible space (RFC 4291 2.5.5.1)"
    if ip.is_site_local:
        return "site-local (fec0::/10, deprecated by RFC 3879)"
    if ip.is_link_local and (ip not in _LINK_LOCAL_64 or iface.network.prefixlen != 64):
        return "link-local outside fe80::/64 (a static link-local is fe80::X/64)"
    if iface.network.prefixlen < 127 and ip == iface.network.network_address:
        return f"the subnet-router anycast address of {iface.network} (use a host address)"
    return None


def _ipv4_interface(value: Any) -> ipaddress.IPv4Interface:
    text = _require_str(value, "an IPv4 address with prefix length (192.0.2.1/24)")
    if _other_family(text, 6):
        raise ValueError(f"{shown(text)} is an IPv6 address: list it under ipv6")
    if "/" not in text:
        raise ValueError(f"{shown(text)} needs a prefix length, e.g. {text[:40]}/24")
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError as exc:
        raise ValueError(
            f"{shown(text)} is not an IPv4 address with prefix length: {reason(exc)}"
        ) from None
    why = unicast4_problem(iface)
    if why:
        raise ValueError(f"{iface} is {why}, not an address for an interface")
    return iface


def unicast4_problem(iface: ipaddress.IPv4Interface) -> str | None:
    ip, net = iface.ip, iface.network
    if ip.is_multicast:
        return "a multicast address (224.0.0.0/4)"
    if ip.is_loopback:
        return "a loopback address (127.0.0.0/8 belongs to lo)"
    if ip in _THIS_NETWORK:
        return "in 0.0.0.0/8 ('this network', never a source or destination)"
    if ip.is_reserved:
        return "reserved (240.0.0.0/4, with the broadcast address 255.255.255.255)"
    if net.prefixlen <= 30 and ip == net.network_address:
        return f"the network address of {net} (use a host address)"
    if net.prefixlen <= 30 and ip == net.broadcast_address:
        return f"the broadcast address of {net} (use a host address)"
    return None


def _ipv6_network(value: Any) -> ipaddress.IPv6Network:
    text = _require_str(value, "an IPv6 prefix (2001:db8::/48)")
    if "/" not in text:
        raise ValueError(f"{shown(text)} needs a prefix length, e.g. {text[:40]}/48")
    try:
        return ipaddress.IPv6Network(text)
    except ValueError as exc:
        raise ValueError(f"{shown(text)} is not an IPv6 prefix ({reason(exc)})") from None


def delegation_pool(value: Any) -> ipaddress.IPv6Network:
    """A pool kea can delegate from: global unicast or ULA, at most a /16.

    ::/0 (or any pool outside 2000::/3 and fc00::/7) would hand out multicast,
    link-local and the lab's own link prefixes; a pool shorter than /16 is no
    ISP's (the registries' own blocks are /12 to /23)."""
    pool = _ipv6_network(value)
    if not any(pool.subnet_of(space) for space in _DELEGABLE):
        raise ValueError(
            f"{pool} is not inside global unicast 2000::/3 or unique local fc00::/7: "
            "a delegation pool is a block of routable prefixes"
        )
    if pool.prefixlen < MIN_POOL_LEN:
        raise ValueError(f"{pool} is too large a pool (at most a /{MIN_POOL_LEN})")
    return pool


def external_prefix(value: Any) -> ipaddress.IPv6Network:
    """The /64 a real LAN's router advertises: SLAAC needs a /64 (RFC 4862 5.5.3d with
    Ethernet's 64-bit interface identifiers), from global unicast or ULA space."""
    prefix = _ipv6_network(value)
    if prefix.prefixlen != 64:
        raise ValueError(
            f"{prefix} is a /{prefix.prefixlen}: SLAAC forms addresses only from a /64, "
            "the prefix the LAN's router advertises (e.g. 2001:db8:ebbd:2080::/64)"
        )
    if not any(prefix.subnet_of(space) for space in _DELEGABLE):
        raise ValueError(f"{prefix} is not inside global unicast 2000::/3 or unique local fc00::/7")
    return prefix


def _lifetime(value: int) -> int:
    if value > MAX_LIFETIME:
        raise ValueError(
            f"{value} s is too long: DHCPv6 and router advertisements carry lifetimes in "
            f"32 bits and {MAX_LIFETIME + 1} means forever (at most {MAX_LIFETIME})"
        )
    return value


MIN_POOL_LEN = 16
MAX_LIFETIME = 0xFFFF_FFFE
_LINK_LOCAL_64 = ipaddress.IPv6Network("fe80::/64")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_DELEGABLE = (ipaddress.IPv6Network("2000::/3"), ipaddress.IPv6Network("fc00::/7"))


_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)


def _prefix(value: Any, kind: type[_Net], what: str, example: str) -> _Net:
    """A prefix written with its length, strict (no host bits), or ValueError saying so."""
    text = _require_str(value, f"{what} ({example})")
    if "/" not in text:
        raise ValueError(f"{shown(text)} needs a prefix length, e.g. {example}")
    try:
        return kind(text)
    except ValueError as exc:
        raise ValueError(f"{shown(text)} is not {what} ({reason(exc)})") from None


def nat64_prefix(value: Any) -> ipaddress.IPv6Network:
    """A NAT64 prefix: one of RFC 6052's lengths, u octet zero (addressing/nat64.py)."""
    from palmnet.addressing.nat64 import prefix_problem

    prefix = _prefix(value, ipaddress.IPv6Network, "an IPv6 prefix", "64:ff9b::/96")
    why = prefix_problem(prefix)
    if why:
        raise ValueError(why)
    return prefix


def nat64_pool4(value: Any) -> ipaddress.IPv4Network:
    """The IPv4 addresses a NAT64 gives its IPv6 clients: /8 to /30 (TAYGA keeps the
    pool's first address and its own; a /31 would leave no client a place)."""
    pool = _prefix(value, ipaddress.IPv4Network, "an IPv4 prefix", "203.0.113.128/26")
    if not 8 <= pool.prefixlen <= MAX_POOL4_LEN:
        raise ValueError(f"{pool}: pool4 is a /8 to /{MAX_POOL4_LEN}")
    if pool.is_multicast or pool.is_loopback or pool.is_reserved or pool.overlaps(_THIS_NETWORK):
        raise ValueError(f"{pool} is not unicast address space")
    return pool


MAX_POOL4_LEN = 30

IPv6Iface = Annotated[ipaddress.IPv6Interface, BeforeValidator(_ipv6_interface)]
IPv4Iface = Annotated[ipaddress.IPv4Interface, BeforeValidator(_ipv4_interface)]
IPv6Prefix = Annotated[ipaddress.IPv6Network, BeforeValidator(_ipv6_network)]
Nat64Prefix = Annotated[ipaddress.IPv6Network, BeforeValidator(nat64_prefix)]
Nat64Pool4 = Annotated[ipaddress.IPv4Network, BeforeValidator(nat64_pool4)]
DelegationPool = Annotated[ipaddress.IPv6Network, BeforeValidator(delegation_pool)]
ExternalPrefix = Annotated[ipaddress.IPv6Network, BeforeValidator(external_prefix)]
Lifetime = Annotated[int, Field(ge=1), AfterValidator(_lifetime)]
