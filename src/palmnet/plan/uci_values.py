"""Typed values of an openwrt node's UCI files, each refused at its file and line.

The plan reads numbers, addresses and names out of /etc/config/network and
dhcp; a value that would make `up` fail (a gateway off link, a DHCP range
outside its subnet, a lease time dnsmasq cannot read, a name with a newline
that would end up in a daemon's config) is an `InputError` naming the file,
the line and `SECTION.OPTION`, as the topology's errors name their key path.
"""

from __future__ import annotations

import ipaddress
import re

from palmnet.errors import InputError
from palmnet.openwrt.uci import UciPackage, UciSection
from palmnet.topology.addresses import MAX_LIFETIME, unicast4_problem, unicast6_problem
from palmnet.topology.describe import shown

_DIGITS = re.compile(r"[0-9]{1,10}")
_HEX = re.compile(r"(0x)?[0-9a-fA-F]{1,16}")
_SECONDS = re.compile(r"([0-9]{1,10})([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# dnsmasq's server=[/DOMAIN/...]ADDRESS[#PORT]: domains, then an address, or only domains
_SERVER = re.compile(
    r"(?P<domains>(/[A-Za-z0-9.*-]*)+/)?(?P<addr>[0-9A-Fa-f.:]*)(#(?P<port>[0-9]{1,5}))?"
)
MIN_LEASE = 120  # dnsmasq raises anything shorter to two minutes


def fail(pkg: UciPackage, section: UciSection, key: str | None, message: str) -> InputError:
    """An error at the option's line (the section's if it has no such option)."""
    option = section.options.get(key) if key else None
    line = option.line if option is not None and option.line else section.line
    where = pkg.section_id(section) + (f".{key}" if key else "")
    return InputError(message, file=pkg.display_file(), line=line, key=where)


def one(value: str | list[str] | None) -> str | None:
    """A single value: an option's, or a list's first item."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def integer(
    pkg: UciPackage, s: UciSection, key: str, low: int, high: int, default: int | None = None
) -> int | None:
    """A decimal option in [low, high]; `default` if absent."""
    text = one(s.get(key))
    if not text:
        return default
    if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
        raise fail(pkg, s, key, f"{shown(text)} is not a number from {low} to {high}")
    return int(text)


_TRUE = frozenset({"1", "yes", "on", "true", "enabled"})
_FALSE = frozenset({"0", "no", "off", "false", "disabled"})


def boolean(pkg: UciPackage, s: UciSection, key: str, default: bool) -> bool:
    """A UCI boolean (1/0, yes/no, on/off, true/false, enabled/disabled)."""
    text = one(s.get(key))
    if not text:
        return default
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise fail(pkg, s, key, f"{shown(text)} is not a boolean (1 or 0, yes or no, on or off)")


def hint(pkg: UciPackage, s: UciSection) -> int:
    """`ip6hint`: a subnet ID in hex (netifd), 0 if absent."""
    text = one(s.get("ip6hint"))
    if not text:
        return 0
    if not _HEX.fullmatch(text):
        raise fail(pkg, s, "ip6hint", f"{shown(text)} is not a hexadecimal subnet ID")
    return int(text, 16)


def seconds(pkg: UciPackage, s: UciSection, key: str, default: int) -> int:
    """A time as OpenWrt writes it (`12h`, `90m`, `3600`)."""
    text = one(s.get(key))
    if not text:
        return default
    match = _SECONDS.fullmatch(text)
    value = int(match.group(1)) * _UNITS[match.group(2)] if match else -1
    if not MIN_LEASE <= value <= MAX_LIFETIME:
        raise fail(
            pkg,
            s,
            key,
            f"{shown(text)} is not a lease time from 2m to {MAX_LIFETIME}s "
            "(a number with s, m, h, d or w; palmnet's leases end, so no 'infinite')",
        )
    return value


def ipv4_interface(pkg: UciPackage, s: UciSection, raw: str) -> ipaddress.IPv4Interface:
    """`ipaddr` (with `netmask`, or in CIDR form) as an interface's address."""
    mask = one(s.get("netmask")) or "255.255.255.0"
    text = raw if "/" in raw else f"{raw}/{mask}"
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise fail(pkg, s, "ipaddr", f"bad ipaddr {shown(raw)} (netmask {shown(mask)})") from None
    why = unicast4_problem(iface)
    if why:
        raise fail(pkg, s, "ipaddr", f"{iface} is {why}, not an address for an interface")
    return iface


def ipv6_interface(pkg: UciPackage, s: UciSection, raw: str) -> ipaddress.IPv6Interface:
    """`ip6addr` (a /64 unless it says otherwise)."""
    try:
        iface = ipaddress.IPv6Interface(raw if "/" in raw else f"{raw}/64")
    except ValueError:
        raise fail(pkg, s, "ip6addr", f"bad ip6addr {shown(raw)}") from None
    why = unicast6_problem(iface)
    if why:
        raise fail(pkg, s, "ip6addr", f"{iface} is {why}, not an address for an interface")
    return iface


def gateway(
    pkg: UciPackage, s: UciSection, on_link: list[ipaddress.IPv4Interface]
) -> ipaddress.IPv4Address | None:
    """`gateway`: an IPv4 address in one of the interface's own subnets."""
    text = one(s.get("gateway"))
    if not text:
        return None
    try:
        gw = ipaddress.IPv4Address(text)
    except ValueError:
        raise fail(pkg, s, "gateway", f"bad gateway {shown(text)} (an IPv4 address)") from None
    if any(gw == a.ip for a in on_link):
        raise fail(pkg, s, "gateway", f"{gw} is this interface's own address")
    if not any(gw in a.network for a in on_link):
        subnets = ", ".join(str(a.network) for a in on_link) or "none"
        raise fail(pkg, s, "gateway", f"{gw} is not on link (this interface's subnets: {subnets})")
    return gw


def server(pkg: UciPackage, s: UciSection, text: str) -> str:
    """A dnsmasq `server` value, checked so that it is one line of dnsmasq's config."""
    match = _SERVER.fullmatch(text)
    ok = match is not None and bool(match.group("domains") or match.group("addr"))
    if ok and match is not None and match.group("addr"):
        try:
            ipaddress.ip_address(match.group("addr"))
        except ValueError:
            ok = False
    if ok and match is not None and match.group("port"):
        ok = 1 <= int(match.group("port")) <= 65535
    if not ok:
        raise fail(pkg, s, "server", f"{shown(text)} is not ADDRESS[#PORT] or /DOMAIN/[ADDRESS]")
    return text
