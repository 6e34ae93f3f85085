"""Strict address fields for the topology model.

YAML 1.1 loaders read `2001:10:20:30:40:50:1:2` as a base-60 integer, and
pydantic would then accept the integer as an address. Fields here accept only
strings, and interface addresses must carry their prefix length.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator

from palmnet.topology.describe import describe


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
        raise ValueError(f"'{text}' is an IPv4 address: list it under ipv4")
    if "/" not in text:
        raise ValueError(f"'{text}' needs a prefix length, e.g. {text}/64")
    try:
        return ipaddress.IPv6Interface(text)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not an IPv6 address with prefix length: {exc}") from None


def _ipv4_interface(value: Any) -> ipaddress.IPv4Interface:
    text = _require_str(value, "an IPv4 address with prefix length (192.0.2.1/24)")
    if _other_family(text, 6):
        raise ValueError(f"'{text}' is an IPv6 address: list it under ipv6")
    if "/" not in text:
        raise ValueError(f"'{text}' needs a prefix length, e.g. {text}/24")
    try:
        return ipaddress.IPv4Interface(text)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not an IPv4 address with prefix length: {exc}") from None


def _ipv6_network(value: Any) -> ipaddress.IPv6Network:
    text = _require_str(value, "an IPv6 prefix (2001:db8::/48)")
    if "/" not in text:
        raise ValueError(f"'{text}' needs a prefix length, e.g. {text}/48")
    try:
        return ipaddress.IPv6Network(text)
    except ValueError as exc:
        raise ValueError(f"'{text}' is not an IPv6 prefix ({exc})") from None


IPv6Iface = Annotated[ipaddress.IPv6Interface, BeforeValidator(_ipv6_interface)]
IPv4Iface = Annotated[ipaddress.IPv4Interface, BeforeValidator(_ipv4_interface)]
IPv6Prefix = Annotated[ipaddress.IPv6Network, BeforeValidator(_ipv6_network)]
