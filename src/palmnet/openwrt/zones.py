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
"""

from __future__ import annotations

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


def zone_devices(network: UciPackage) -> dict[str, list[str]]:
    """UCI interface name -> its kernel devices (one, or none if it has none)."""
    interfaces: dict[str, UciSection] = {}
    for section in network.of_type("interface"):
        if section.name is not None and not _disabled(section):
            interfaces[section.name] = section

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
    return result
