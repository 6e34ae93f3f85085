"""What rdisc6 (ndisc6 package) prints, read back into records.

The audit asks the link what it offers the way a network engineer does:
`rdisc6 IFACE` inside the node sends a Router Solicitation and prints every
Router Advertisement that answers it. The node's own kernel takes those RAs
too, so the RS is also the stimulus that SLAAC, RDNSS and DHCPv6 react to.

Pure: text in, records out (tests/unit/test_audit_model.py has real output).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PrefixInfo:
    prefix: ipaddress.IPv6Network
    on_link: bool
    autonomous: bool
    valid: int
    preferred: int


@dataclass
class RouterAdvert:
    """One RA as rdisc6 printed it; `source` is the router's link-local address."""

    source: ipaddress.IPv6Address | None = None
    managed: bool = False  # M flag: stateful DHCPv6 addresses
    other: bool = False  # O flag
    router_lifetime: int = 0
    prefixes: list[PrefixInfo] = field(default_factory=list)
    rdnss: list[ipaddress.IPv6Address] = field(default_factory=list)
    dnssl: list[str] = field(default_factory=list)
    mtu: int | None = None


_FIELD = re.compile(r"^\s*(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")
_NUMBER = re.compile(r"^(\d+)")
_FROM = re.compile(r"^\s*from\s+(\S+)")


def _yes(value: str) -> bool:
    return value.split()[0].lower() == "yes" if value else False


def _number(value: str) -> int:
    """Seconds as rdisc6 prints them: '1800 (0x00000708) seconds' or 'infinite (...)'."""
    m = _NUMBER.match(value)
    if m:
        return int(m.group(1))
    return 0xFFFFFFFF if value.startswith("infinite") else 0


def parse_rdisc6(text: str) -> list[RouterAdvert]:
    """Every RA in rdisc6's output, in order (`-n` keeps addresses numeric)."""
    out: list[RouterAdvert] = []
    ra: RouterAdvert | None = None
    prefix: dict[str, object] | None = None

    def close_prefix() -> None:
        nonlocal prefix
        if ra is not None and prefix is not None and "prefix" in prefix:
            ra.prefixes.append(
                PrefixInfo(
                    prefix=prefix["prefix"],  # type: ignore[arg-type]
                    on_link=bool(prefix.get("on_link")),
                    autonomous=bool(prefix.get("autonomous")),
                    valid=int(prefix.get("valid", 0)),  # type: ignore[call-overload]
                    preferred=int(prefix.get("preferred", 0)),  # type: ignore[call-overload]
                )
            )
        prefix = None

    for line in text.splitlines():
        m = _FROM.match(line)
        if m:
            close_prefix()
            if ra is not None:
                ra.source = ipaddress.IPv6Address(m.group(1).split("%")[0])
                out.append(ra)
            ra = None
            continue
        m = _FIELD.match(line)
        if not m:
            continue
        key, value = m.group("key").lower(), m.group("value")
        if key == "hop limit":  # first line of every RA
            close_prefix()
            ra = RouterAdvert()
            continue
        if ra is None:
            continue
        if key == "stateful address conf.":
            ra.managed = _yes(value)
        elif key == "stateful other conf.":
            ra.other = _yes(value)
        elif key == "router lifetime":
            ra.router_lifetime = _number(value)
        elif key == "prefix":
            close_prefix()
            prefix = {"prefix": ipaddress.IPv6Network(value.split()[0], strict=False)}
        elif key == "on-link" and prefix is not None:
            prefix["on_link"] = _yes(value)
        elif key == "autonomous address conf." and prefix is not None:
            prefix["autonomous"] = _yes(value)
        elif key == "valid time" and prefix is not None:
            prefix["valid"] = _number(value)
        elif key == "pref. time" and prefix is not None:
            prefix["preferred"] = _number(value)
        elif key == "recursive dns server":
            close_prefix()
            ra.rdnss.append(ipaddress.IPv6Address(value.split()[0].split("%")[0]))
        elif key == "dns search list":
            close_prefix()
            ra.dnssl += [d.rstrip(".") for d in value.split()]
        elif key == "mtu":
            close_prefix()
            ra.mtu = _number(value)
        else:
            # Any other option ends a prefix block (its fields are indented
            # under it; the option lines that follow are not).
            if not line.startswith("  ") and prefix is not None:
                close_prefix()
    return out


def unique_routers(adverts: list[RouterAdvert]) -> list[RouterAdvert]:
    """One RA per router (rdisc6 -m may print a router's answer and its periodic RA)."""
    seen: dict[ipaddress.IPv6Address | None, RouterAdvert] = {}
    for ra in adverts:
        seen.setdefault(ra.source, ra)
    return list(seen.values())


def parse_ndisc6_mac(text: str) -> str | None:
    """The target link-layer address `ndisc6 -q` printed, lower case, or None."""
    for line in text.splitlines():
        word = line.strip().lower()
        if re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", word):
            return word
    return None
