"""Option values as fw4 reads them: each parser returns a value or None.

None means "invalid value", which makes the caller warn and skip the
section, exactly where fw4's parse_* functions return null; VALID says
what each parser would take. The accepted
spellings are fw4's: enums match by case-insensitive prefix (`ACCEPT`,
`acc`), a leading `!` negates, ports are `N`, `N-M` or `N:M`, addresses are
hosts, prefixes, `addr/mask` (also non-contiguous masks) or `a-b` ranges.

Where fw4 would pass a value through to nft unchecked and nft would then
refuse the whole table (an unknown protocol name, an empty enum), palmnet
refuses the value instead, so one bad section cannot take the firewall down.
A network name in src_ip/dest_ip (fw4 looks its addresses up over ubus) is
refused too: palmnet compiles without knowing interface addresses.
"""

from __future__ import annotations

import ipaddress
import re

from palmnet.openwrt.fw4_icmp import ICMPV4_TYPES, ICMPV6_TYPES
from palmnet.openwrt.fw4_model import (
    Addr,
    AddrGroup,
    Device,
    IcmpType,
    Limit,
    Mac,
    Network,
    Port,
    Proto,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PORT = re.compile(r"([0-9]{1,5})(?:[-:]([0-9]{1,5}))?")
# Numbers are bounded in digits before int() reads them: a 5,000-digit value is
# invalid (the section is skipped, as fw4 does), never a ValueError from Python.
_LIMIT = re.compile(r"([0-9]{1,10})(?:/([a-z]+))?")
_ICMP_NUMBER = re.compile(r"([0-9]{1,3})(?:/([0-9]{1,3}))?")
_MAC = re.compile(r"([0-9a-f]{1,2})(?:[:-]([0-9a-f]{1,2})){5}", re.IGNORECASE)
_INT = re.compile(r"[+-]?[0-9]{1,10}")
_PROTO_NUMBER = re.compile(r"[0-9]{1,3}")
U32 = 0xFFFF_FFFF
# a kernel interface name (IFNAMSIZ 16), optionally ending in fw4's `+` wildcard
_IFNAME = re.compile(r"[^\s/:'\"\\]{1,15}")

# Protocol names nft resolves (the common /etc/protocols entries); numbers 0-255 also pass.
_PROTOCOL_NAMES = """
    ip icmp igmp ggp ipencap st tcp egp igp pup udp hmp xns-idp rdp iso-tp4 dccp xtp ddp idpr-cmtp
    ipv6 ipv6-route ipv6-frag idrp rsvp gre esp ah skip ipv6-icmp ipv6-nonxt ipv6-opts rspf vmtp
    eigrp ospf ipip etherip encap pim ipcomp vrrp l2tp isis sctp fc mobility-header udplite
    mpls-in-ip manet hip shim6 wesp rohc ethernet comp
"""
KNOWN_PROTOCOLS = frozenset(_PROTOCOL_NAMES.split())


def parse_invert(value: str) -> tuple[bool, str] | None:
    """Split a leading `!` off; None if nothing is left."""
    text = value.lstrip(" \t")
    invert = text.startswith("!")
    text = (text[1:] if invert else text).strip()
    return (invert, text) if text else None


def parse_enum(value: str, choices: tuple[str, ...]) -> str | None:
    text = value.lower()
    if not text:
        return None
    return next((c for c in choices if c.lower()[: len(text)] == text), None)


def parse_policy(value: str) -> str | None:
    return parse_enum(value, ("accept", "reject", "drop"))


def parse_target(value: str) -> str | None:
    choices = ("accept", "reject", "drop", "notrack", "helper", "mark", "dscp")
    return parse_enum(value, (*choices, "dnat", "snat", "masquerade"))


def parse_reject_code(value: str) -> str | None:
    choices = ("tcp-reset", "port-unreachable", "admin-prohibited", "host-unreachable")
    return parse_enum(value, (*choices, "no-route"))


def parse_bool(value: str) -> bool | None:
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    return None


def parse_int(value: str) -> int | None:
    text = value.strip()
    number = int(text) if _INT.fullmatch(text) else None
    return number if number is not None and abs(number) <= U32 else None  # nft's 32 bits


def parse_string(value: str) -> str:
    return value


def parse_family(value: str) -> int | None:
    if value in ("any", "all", "*"):
        return 0
    if value == "inet" or "4" in value:
        return 4
    if "6" in value:
        return 6
    return None


def parse_direction(value: str) -> bool | None:
    """True for egress (`out`), False for ingress (`in`)."""
    if value in ("in", "ingress"):
        return False
    if value in ("out", "egress"):
        return True
    return None


def parse_protocol(value: str) -> list[Proto] | None:
    parsed = parse_invert(value)
    if parsed is None:
        return None
    invert, name = parsed[0], parsed[1].lower()
    if name in ("all", "any", "*"):
        return [Proto(any=True, invert=invert)]
    if name == "tcpudp":
        return [Proto("tcp", invert=invert), Proto("udp", invert=invert)]
    aliases = {"1": "icmp", "58": "ipv6-icmp", "icmpv6": "ipv6-icmp", "6": "tcp", "17": "udp"}
    name = aliases.get(name, name)
    if _PROTO_NUMBER.fullmatch(name) and int(name) <= 255:  # ASCII digits ('²' is a digit)
        return [Proto(str(int(name)), invert=invert)]
    return [Proto(name, invert=invert)] if name in KNOWN_PROTOCOLS else None


def parse_port(value: str) -> Port | None:
    parsed = parse_invert(value)
    match = _PORT.fullmatch(parsed[1]) if parsed else None
    if parsed is None or match is None:
        return None
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if low > high or high > 65535:
        return None
    return Port(low, high, parsed[0])


def parse_limit(value: str) -> Limit | None:
    parsed = parse_invert(value)
    match = _LIMIT.fullmatch(parsed[1]) if parsed else None
    if match is None:
        return None
    units = ("second", "minute", "hour", "day")
    unit = parse_enum(match.group(2), units) if match.group(2) else "second"
    return Limit(int(match.group(1)), unit) if unit else None


def parse_mac(value: str) -> Mac | None:
    parsed = parse_invert(value)
    if parsed is None or not _MAC.fullmatch(parsed[1]):
        return None
    octets = re.split(r"[:-]", parsed[1])
    return Mac(":".join(f"{int(o, 16):02x}" for o in octets), parsed[0])


def parse_device(value: str) -> Device | None:
    parsed = parse_invert(value)
    if parsed is None:
        return None
    if parsed[1] == "*":
        return Device(None, any=True, invert=parsed[0])
    return Device(parsed[1], invert=parsed[0]) if _IFNAME.fullmatch(parsed[1]) else None


def parse_netname(value: str) -> Device | None:
    """A `network` entry of a zone: a logical network name, maybe negated."""
    parsed = parse_invert(value)
    return Device(parsed[1], invert=parsed[0]) if parsed else None


def parse_icmptype(value: str) -> IcmpType | None:
    v4, v6 = ICMPV4_TYPES.get(value), ICMPV6_TYPES.get(value)
    if v4 or v6:
        return IcmpType(0 if v4 and v6 else 4 if v4 else 6, v4, v6)
    match = _ICMP_NUMBER.fullmatch(value)
    if match is None:
        return None
    number = int(match.group(1))
    codes = (int(match.group(2)),) * 2 if match.group(2) is not None else (0, 0xFF)
    if number > 0xFF or codes[0] > 0xFF:
        return None
    return IcmpType(0, (number, *codes), (number, *codes))


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _prefix_bits(mask: IPAddress) -> int | None:
    """The prefix length of a contiguous mask, None if it has holes."""
    bits, width = int(mask), mask.max_prefixlen
    ones = width - (bits ^ ((1 << width) - 1)).bit_length()
    return ones if bits == ((1 << ones) - 1) << (width - ones) else None


def _mask(bits: int, width: int) -> int:
    return ((1 << bits) - 1) << (width - bits)


def parse_subnet(text: str) -> list[Addr] | None:
    """Host, prefix, addr/mask or a-b range; None for anything else."""
    parts = text.split("/")
    if len(parts) == 2:
        addr = _ip(parts[0])
        if addr is None:
            return None
        family, width = addr.version, addr.max_prefixlen
        mask = _ip(parts[1])
        if mask is not None:
            if mask.version != family:
                return None
            bits = _prefix_bits(mask)
            if bits is None:  # non-contiguous: match with `& mask == addr`
                masked = type(addr)(int(addr) & int(mask))
                return [Addr(family, str(masked), str(mask), -1)]
            return [Addr(family, str(addr), str(mask), bits)]
        if not _INT.fullmatch(parts[1]) or abs(int(parts[1])) > width:
            return None
        bits = int(parts[1])
        if bits < 0:  # fw4: a negative length is the inverted mask
            inverted = type(addr)(_mask(-bits, width) ^ ((1 << width) - 1))
            return [Addr(family, str(addr), str(inverted), -1)]
        return [Addr(family, str(addr), str(type(addr)(_mask(bits, width))), bits)]
    if len(parts) != 1:
        return None
    ends = text.split("-")
    if len(ends) == 2:
        low, high = _ip(ends[0]), _ip(ends[1])
        if low is None or high is None or low.version != high.version:
            return None
        return [Addr(low.version, str(low), addr2=str(high))]
    addr = _ip(text)
    if addr is None:
        return None
    width = addr.max_prefixlen
    return [Addr(addr.version, str(addr), str(type(addr)(_mask(width, width))), width)]


def parse_network(value: str) -> Network | None:
    parsed = parse_invert(value)
    if parsed is None:
        return None
    addrs = parse_subnet(parsed[1])
    return None if addrs is None else Network(tuple(addrs), parsed[0])


def cidr(a: Addr) -> str:
    """An address as fw4 prints it in a set: host, masked prefix, addr/mask or range."""
    if a.addr2 is not None:
        return f"{a.addr}-{a.addr2}"
    width = 32 if a.family == 4 else 128
    if a.bits == width:
        return a.addr
    if a.bits >= 0:
        return str(ipaddress.ip_network(f"{a.addr}/{a.bits}", strict=False))
    return f"{a.addr}/{a.mask}"


def host(a: Addr, brackets: bool) -> str:
    """A rewrite address of dnat/snat; IPv6 in brackets when a port follows."""
    if a.addr2 is not None:
        return f"{a.addr}-{a.addr2}"
    text = a.addr if a.bits < 0 else str(ipaddress.ip_network(f"{a.addr}/{a.bits}", False)[0])
    return f"[{text}]" if a.family == 6 and brackets else text


def split_af(networks: list[Network] | None) -> tuple[list[Addr], list[Addr], int | None]:
    """IPv4 and IPv6 addresses apart, each carrying its value's `!`; and their family."""
    v4: list[Addr] = []
    v6: list[Addr] = []
    for network in networks or []:
        for a in network.addrs:
            item = Addr(a.family, a.addr, a.mask, a.bits, network.invert, a.addr2)
            (v4 if a.family == 4 else v6).append(item)
    family = None
    if v4 or v6:
        family = 0 if v4 and v6 else 4 if v4 else 6
    return v4, v6, family


def group_by_masking(addrs: list[Addr]) -> list[AddrGroup]:
    """fw4's grouping: each non-contiguous mask needs a rule of its own."""
    plain = [a for a in addrs if not a.invert and not _masked(a)]
    masked = [a for a in addrs if not a.invert and _masked(a)]
    invert_plain = [a for a in addrs if a.invert and not _masked(a)] or None
    invert_masked = [a for a in addrs if a.invert and _masked(a)]
    groups: list[AddrGroup] = [(None, invert_plain, [a, *invert_masked]) for a in masked]
    if plain:
        groups.append((plain, invert_plain, invert_masked or None))
    elif not groups:
        groups.append((None, invert_plain, invert_masked or None))
    return groups


def _masked(a: Addr) -> bool:
    return a.bits == -1 and a.addr2 is None


def infer_family(family: int | None, refs: list[tuple[int | None, str]]) -> int | str | None:
    """fw4's infer_family: the one family all references allow, or why none fits.

    `refs` pairs the family of each thing a section refers to (a zone, an
    address list) with how to name it in the message.
    """
    result = family
    for ref_family, desc in refs:
        if not ref_family or ref_family == result:
            continue
        if not result:
            result = ref_family
            continue
        return f"is restricted to IPv{result} but referenced {desc} is IPv{ref_family} only"
    return result


# What each parser takes, for the message that refuses a value (fw4 itself says
# only "specifies invalid value"). Zone references say theirs where they are made.
VALID: dict[object, str] = {
    parse_policy: "ACCEPT, REJECT or DROP",
    parse_target: "ACCEPT, REJECT or DROP",
    parse_reject_code: (
        "tcp-reset, port-unreachable, admin-prohibited, host-unreachable or no-route"
    ),
    parse_bool: "1, 0, on, off, true, false, yes or no",
    parse_int: "a whole number",
    parse_family: "ipv4, ipv6 or any",
    parse_direction: "in or out",
    parse_protocol: (
        "tcp, udp, tcpudp, icmp, all, another protocol name of /etc/protocols "
        "(esp, gre...) or a number 0-255"
    ),
    parse_port: "a port 0-65535 or a range LOW-HIGH",
    parse_limit: "a rate N or N/second, N/minute, N/hour, N/day",
    parse_mac: "a MAC address such as 00:16:3e:12:34:56",
    parse_device: "an interface name of at most 15 characters ('+' at its end: any suffix)",
    parse_netname: "a network of /etc/config/network",
    parse_icmptype: (
        "an ICMP type name (echo-request, destination-unreachable, router-advertisement, "
        "neighbour-solicitation...) or a number TYPE or TYPE/CODE up to 255"
    ),
    parse_network: (
        "an address, ADDRESS/LENGTH, ADDRESS/MASK or a range FIRST-LAST, '!' before it to negate"
    ),
}
