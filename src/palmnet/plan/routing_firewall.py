"""Firewall rules an `openwrt` node needs for its routing protocol, in UCI.

On OpenWrt a routing package opens its own port when installed, as extra
`config rule` sections in /etc/config/firewall. These are the rules for the
protocol a node runs, one per interface that runs it and nothing for the
others (the stock wan zone rejects input, so without them a router would
never hear its neighbours there):

    ripng   UDP 521                          (RFC 2080)
    babel   UDP 6696                         (RFC 8966)
    ospf3   IP protocol 89, no ports         (RFC 5340)
    BFD     UDP 3784, single-hop control     (RFC 5881), with `bfd:` on ripng/ospf3

Each rule is an input rule of the interface's zone (`src`), narrowed to the
device (`option device`, which fw4 turns into `iifname`) and to IPv6 from
link-local sources: all four protocols speak from link-local addresses to
their directly connected neighbours. BFD's echo (3785) and multi-hop (4784)
ports stay closed: BIRD sends neither for single-hop sessions. A device in
no zone gets `src '*'`: fw4 puts such a rule in the generic input chain,
which every packet to the router passes before the zone chains.

OSPF is written as protocol number 89: fw4 passes a name through to nft,
which must then know it from /etc/protocols; the number needs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from palmnet.openwrt.uci import UciPackage, quote
from palmnet.plan.model import RoutingPlan

LINK_LOCAL = "fe80::/10"

# protocol -> (rule name part, proto, destination port or None)
PROTOCOL_RULES: dict[str, tuple[str, str, str | None]] = {
    "ripng": ("RIPng", "udp", "521"),
    "babel": ("Babel", "udp", "6696"),
    "ospf3": ("OSPFv3", "89", None),
}
BFD_RULE = ("BFD", "udp", "3784")


def _rule(name: str, zone: str, device: str, proto: str, port: str | None) -> str:
    lines = [
        "config rule",
        f"\toption name {quote(f'Allow-{name}-{device}')}",
        f"\toption src {quote(zone)}",
        f"\toption device {quote(device)}",
        f"\toption proto {quote(proto)}",
        f"\toption src_ip {quote(LINK_LOCAL)}",
    ]
    if port is not None:
        lines.append(f"\toption dest_port {quote(port)}")
    lines += ["\toption family 'ipv6'", "\toption target 'ACCEPT'"]
    return "\n".join(lines) + "\n"


def firewall_rules(routing: RoutingPlan, zone_of_device: Mapping[str, str]) -> str:
    """UCI `config rule` sections to append to /etc/config/firewall.

    `zone_of_device` maps a kernel device (eth1, br-lan) to the firewall zone
    it is in; see `zones_of_devices`.
    """
    name, proto, port = PROTOCOL_RULES[routing.protocol]
    kinds = [(name, proto, port)]
    if routing.bfd_interval is not None and routing.protocol != "babel":
        kinds.append(BFD_RULE)
    blocks = [f"# {name} with BIRD: its packets, only on the interfaces that run it"]
    for iface in routing.interfaces:
        zone = zone_of_device.get(iface.name, "*")
        blocks += [_rule(n, zone, iface.name, p, dport) for n, p, dport in kinds]
    return "\n" + "\n".join(blocks)


def zones_of_devices(
    firewall: UciPackage, network_devices: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """Kernel device -> firewall zone, from the zones' `network` and `device` lists.

    `network_devices` is what `palmnet.openwrt.zones.zone_devices` reads from
    /etc/config/network. The first zone that names a device wins, as the
    first matching zone jump does in fw4's input chain.
    """
    out: dict[str, str] = {}
    for section in firewall.of_type("zone"):
        zone = section.get("name")
        if not isinstance(zone, str):
            continue
        networks = section.get("network") or []
        devices = section.get("device") or []
        if isinstance(networks, str):
            networks = networks.split()
        if isinstance(devices, str):
            devices = devices.split()
        for network in networks:
            for device in network_devices.get(network, ()):
                out.setdefault(device, zone)
        for device in devices:
            out.setdefault(device, zone)
    return out
