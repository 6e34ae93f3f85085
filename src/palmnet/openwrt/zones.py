"""Which kernel devices each UCI interface stands for, as netifd tells fw4.

fw4 learns a zone's devices by asking netifd (ubus `network.interface dump`)
for the L3 device of every interface the zone lists under `network`. An
`openwrt` node has no netifd, so this module reads /etc/config/network the
way netifd would and gives `compile_firewall` the same map:

- `option device 'eth1'` (or the pre-21.02 `option ifname`): that device.
  A bridge, old style (`option type 'bridge'` in the interface, with its
  ports in `ifname`) or new (`config device` of type bridge, named in
  `device`), is itself the device (br-lan), never its ports: the firewall
  sees routed traffic on the bridge.
- `option device '@wan'`: an alias rides on the other interface's device
  (wan6 -> @wan -> eth1), possibly through several aliases. An alias of an
  unknown interface, or a loop of aliases, has no device (netifd never brings
  it up).
- Protocols that make their own L3 device give that one, as netifd reports
  it once they are up: `pppoe-wan` for a PPPoE wan, `6in4-henet` for a
  tunnel, the interface's own name for WireGuard.
- The loopback interface (device `lo`) and disabled interfaces are left
  out, as are interfaces with no device at all (a `proto none` placeholder).

A device value holding several words (an old `ifname 'eth0 eth1'` without
`type bridge`) names its first word: netifd would use one device there.

netifd also tells fw4 each interface's addresses, and fw4 uses them for a
zone's `_subnets` define, for NAT reflection and to find the zone of a
redirect that names no `dest`. `network_addresses` reads those a `proto
static` interface has from its file, as netifd would report them once it is
up: `ipaddr` (with `netmask`, else /32), `ip6addr` (else /128), and the
router's address in its share of an explicit `globals.ula_prefix` (`ip6assign`,
`ip6hint`). Addresses learnt at run time (DHCP, DHCPv6, PPPoE, a delegated
prefix, `ula_prefix auto`) are not in any file, so they are missing, as in
fw4 on a router whose interface is not up yet.
"""

from __future__ import annotations

import ipaddress

from palmnet.openwrt.uci import UciPackage, UciSection

# proto -> prefix of the L3 device netifd creates for it ("PREFIX-IFACE").
_OWN_DEVICE_PREFIX = {
    "pppoe": "pppoe",
    "pppoa": "pppoa",
    "pptp": "pptp",
    "l2tp": "l2tp",
    "3g": "3g",
    "ppp": "ppp",
    "6in4": "6in4",
    "6to4": "6to4",
    "6rd": "6rd",
    "dslite": "ds",
    "gre": "gre4",
    "gretap": "gre4t",
    "grev6": "gre6",
    "grev6tap": "gre6t",
}
# protos whose device is named after the interface itself
_IFACE_NAMED = frozenset({"wireguard"})
_TRUE = frozenset({"1", "yes", "on", "true", "enabled"})


def _first(value: str | list[str] | None) -> str | None:
    """The first word of an option's value (or of a list's first item)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    words = value.split()
    return words[0] if words else None


def _own_device(name: str, section: UciSection) -> str | None:
    """The device an interface's own definition gives it, aliases not followed."""
    proto = section.get("proto")
    if isinstance(proto, str):
        if proto in _OWN_DEVICE_PREFIX:
            return f"{_OWN_DEVICE_PREFIX[proto]}-{name}"
        if proto in _IFACE_NAMED:
            return name
    if section.get("type") == "bridge":  # the pre-21.02 bridge-in-interface syntax
        return f"br-{name}"
    device = _first(section.get("device"))
    return device if device is not None else _first(section.get("ifname"))


def _disabled(section: UciSection) -> bool:
    value = section.get("disabled")
    return isinstance(value, str) and value.lower() in _TRUE


class NetworkDevices(dict[str, list[str]]):
    """UCI interface name -> its kernel devices, carrying the interfaces' addresses.

    To every reader it is the plain device map; `addresses` (interface ->
    ["addr/len", ...], see network_addresses) rides along so that callers
    that hand `zone_devices(network)` to compile_firewall give fw4 the
    addresses too, without a second argument.
    """

    def __init__(self, devices: dict[str, list[str]], addresses: dict[str, list[str]]) -> None:
        super().__init__(devices)
        self.addresses = addresses


def _interfaces(network: UciPackage) -> dict[str, UciSection]:
    """The enabled, named interface sections by name."""
    interfaces: dict[str, UciSection] = {}
    for section in network.of_type("interface"):
        if section.name is not None and not _disabled(section):
            interfaces[section.name] = section
    return interfaces


def zone_devices(network: UciPackage) -> NetworkDevices:
    """UCI interface name -> its kernel devices (one, or none if it has none)."""
    interfaces = _interfaces(network)

    def resolve(name: str, seen: tuple[str, ...]) -> str | None:
        section = interfaces.get(name)
        if section is None or name in seen:
            return None
        device = _own_device(name, section)
        if device is not None and device.startswith("@"):
            return resolve(device[1:], (*seen, name))
        return device

    result: dict[str, list[str]] = {}
    for name in interfaces:
        device = resolve(name, ())
        if device is None or device == "lo":
            continue
        result[name] = [device]
    addresses = network_addresses(network)
    return NetworkDevices(result, {k: v for k, v in addresses.items() if k in result})


def _words(value: str | list[str] | None) -> list[str]:
    """An option's values: a list's items, or an option's blank-separated words."""
    if value is None:
        return []
    return [w for item in (value if isinstance(value, list) else [value]) for w in item.split()]


def _prefix_length(netmask: str | list[str] | None) -> int | None:
    """`netmask` as a prefix length (dotted or a number), 32 without one.

    None for a netmask netifd refuses (it then sets no IPv4 address at all).
    """
    if netmask is None:
        return 32
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    except (ValueError, TypeError):
        return None


def _static(words: list[str], version: int, default: int | None) -> list[str]:
    """Addresses as netifd takes them: `addr/len`, or `addr` with the default length."""
    if default is None:
        return []
    out = []
    for word in words:
        text = word if "/" in word else f"{word}/{default}"
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            continue  # netifd refuses it: the interface gets no such address
        if iface.version == version:
            out.append(str(iface))
    return out


def _ula_address(section: UciSection, ula: ipaddress.IPv6Network | None) -> list[str]:
    """The router's address in the interface's share of the ULA prefix.

    netifd assigns an `ip6assign` long share (the `ip6hint` picks which) and
    takes its ::1; it reports it with the share's length.
    """
    assign, hint = _first(section.get("ip6assign")), _first(section.get("ip6hint")) or "0"
    if ula is None or assign is None:
        return []
    try:
        length, index = int(assign), int(hint, 16)
    except ValueError:
        return []
    if not ula.prefixlen <= length <= 64:
        return []
    index = (index >> (64 - length)) % (1 << (length - ula.prefixlen))
    share = int(ula.network_address) | (index << (128 - length))
    return [f"{ipaddress.IPv6Address(share + 1)}/{length}"]


def _ula_prefix(network: UciPackage) -> ipaddress.IPv6Network | None:
    for section in network.of_type("globals"):
        try:
            return ipaddress.IPv6Network(_first(section.get("ula_prefix")) or "")
        except ValueError:
            return None  # `auto` or nothing: no prefix a file says
    return None


def network_addresses(network: UciPackage) -> dict[str, list[str]]:
    """UCI interface name -> the addresses netifd reports for it ("addr/len").

    IPv4 first, then IPv6, then the ULA share, the order of netifd's dump.
    """
    ula = _ula_prefix(network)
    result: dict[str, list[str]] = {}
    for name, section in _interfaces(network).items():
        if section.get("proto") != "static":
            continue
        length = _prefix_length(section.get("netmask"))
        found = _static(_words(section.get("ipaddr")), 4, length)
        found += _static(_words(section.get("ip6addr")), 6, 128)
        found += _ula_address(section, ula)
        if found:
            result[name] = found
    return result
