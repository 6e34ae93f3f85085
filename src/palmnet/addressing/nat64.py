"""IPv4-embedded IPv6 addresses (RFC 6052) and NAT64 prefix discovery (RFC 7050).

A NAT64 prefix is /32, /40, /48, /56, /64 or /96 (RFC 6052 2.2). The 32 bits of
the IPv4 address follow the prefix, skipping bits 64..71 (the "u" octet, which
must be zero), so a /40 puts 24 bits before the u octet and 8 after it. A
prefix whose own bits reach into the u octet (a /96 with a non-zero byte 8)
breaks that rule and is refused.

RFC 7050: a host finds the prefix by asking for the AAAA records of
`ipv4only.arpa`, whose A records are the well-known 192.0.0.170 and
192.0.0.171; the DNS64 synthesises them with its prefix, and the host finds
where a well-known address sits in the answer.
"""

from __future__ import annotations

import ipaddress

PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)
WELL_KNOWN_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
EXAMPLE_PREFIX = ipaddress.IPv6Network("2001:db8:64:ff9b::/96")  # network-specific
IPV4ONLY_NAME = "ipv4only.arpa"
IPV4ONLY_ADDRESSES = (ipaddress.IPv4Address("192.0.0.170"), ipaddress.IPv4Address("192.0.0.171"))
_U_OCTET = 8  # byte index of bits 64..71


def prefix_problem(prefix: ipaddress.IPv6Network) -> str | None:
    """Why `prefix` cannot be a NAT64 prefix (None: it can)."""
    if prefix.prefixlen not in PREFIX_LENGTHS:
        valid = ", ".join(f"/{n}" for n in PREFIX_LENGTHS)
        return f"a NAT64 prefix is {valid} (RFC 6052 2.2), not /{prefix.prefixlen}"
    if prefix.network_address.packed[0] == 0 and prefix != WELL_KNOWN_PREFIX:
        return (
            f"{prefix} is in ::/8, which TAYGA 0.9.2 refuses as reserved (the local-use "
            f"64:ff9b:1::/48 of RFC 8215 included): use {WELL_KNOWN_PREFIX} or a "
            f"network-specific prefix such as {EXAMPLE_PREFIX}"
        )
    if prefix.is_multicast or prefix.is_link_local or prefix.is_site_local:
        kind = (
            "multicast"
            if prefix.is_multicast
            else "link-local"
            if prefix.is_link_local
            else "site-local"
        )
        return (
            f"{prefix} is {kind}, which TAYGA refuses as reserved (a NAT64 prefix is "
            f"routed unicast space): use a network-specific prefix such as {EXAMPLE_PREFIX}"
        )
    if prefix.network_address.packed[_U_OCTET] != 0:
        return (
            f"bits 64..71 of {prefix} are not zero: RFC 6052 2.2 reserves them "
            "(the u octet) in every IPv4-embedded address"
        )
    return None


def well_known_problem(prefix: ipaddress.IPv6Network, ipv4: ipaddress.IPv4Network) -> str | None:
    """RFC 6052 3.1: the well-known prefix never carries non-global IPv4 (private,
    shared, documentation space), and TAYGA refuses to translate such addresses
    with it (any /96 in 64:ff9b::/32: it compares the first 32 bits)."""
    if prefix.prefixlen != 96 or not prefix.subnet_of(ipaddress.IPv6Network("64:ff9b::/32")):
        return None
    if ipv4.is_global:
        return None
    return (
        f"{prefix} (the well-known prefix) may not carry non-global IPv4 such as "
        f"{ipv4} (RFC 6052 3.1; TAYGA refuses to translate it): use a "
        f"network-specific prefix such as {EXAMPLE_PREFIX}"
    )


def _positions(length: int) -> list[int]:
    """Byte indexes of the IPv6 address that hold the 4 IPv4 bytes, in order."""
    start = length // 8
    return [i for i in range(start, 16) if i != _U_OCTET][:4]


def embed(prefix: ipaddress.IPv6Network, ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """The IPv4-embedded address of `ipv4` under `prefix` (suffix bits zero)."""
    raw = bytearray(prefix.network_address.packed)
    for index, byte in zip(_positions(prefix.prefixlen), ipv4.packed, strict=True):
        raw[index] = byte
    return ipaddress.IPv6Address(bytes(raw))


def extract(prefix: ipaddress.IPv6Network, ipv6: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    """The IPv4 address embedded in `ipv6` under a prefix of `prefix`'s length."""
    raw = ipv6.packed
    return ipaddress.IPv4Address(bytes(raw[i] for i in _positions(prefix.prefixlen)))


def discover_prefix(answers: list[ipaddress.IPv6Address]) -> ipaddress.IPv6Network | None:
    """The NAT64 prefix from the AAAA answers of ipv4only.arpa (RFC 7050 3): the
    length at which an answer is exactly a well-known address embedded (u octet
    and suffix zero)."""
    for address in answers:
        for length in PREFIX_LENGTHS:
            prefix = ipaddress.IPv6Network((address, length), strict=False)
            ipv4 = extract(prefix, address)
            if ipv4 in IPV4ONLY_ADDRESSES and embed(prefix, ipv4) == address:
                return prefix
    return None
