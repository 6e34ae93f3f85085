"""An `openwrt` node's interfaces and LAN services, read from its UCI files.

The router's WAN and LAN come from /etc/config/network as on OpenWrt: a
`config device` of type bridge is a bridge inside the node (br-lan) with its
ports, a static interface holds `ipaddr`/`ip6addr` and a share of the ULA
/48 (`globals.ula_prefix`, `ip6assign`, `ip6hint`), `proto dhcpv6` takes its
address and default route from the upstream's RA (accept_ra 2, as odhcp6c
makes the kernel do), and /etc/config/dhcp says what is served on each LAN.
Files the topology's `uci:` folder lacks take OpenWrt's stock files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from palmnet.addressing.ula import generate_ula
from palmnet.errors import InputError
from palmnet.openwrt.defaults import DHCP, FIREWALL, network_text
from palmnet.openwrt.uci import UciPackage, UciSection, parse
from palmnet.plan.model import LanService
from palmnet.plan.uci_values import (
    boolean,
    fail,
    gateway,
    hint,
    integer,
    ipv4_interface,
    ipv6_interface,
    one,
    seconds,
    server,
)
from palmnet.topology.checks import IFNAME_RULE
from palmnet.topology.describe import shown
from palmnet.topology.loader import read_lab_file
from palmnet.topology.model import IFNAME, RESERVED_IFNAMES, UCI_FILES, Node

WAN_DEVICE = "eth1"
# OpenWrt's stock LAN is 192.168.1.1/24; labs use documentation prefixes only.
LAB_LAN_IPV4 = "198.51.100.1"
STOCK_LAN_IPV4 = "\toption ipaddr '192.168.1.1'\n\toption netmask '255.255.255.0'\n"
ULA_SPACE = ipaddress.IPv6Network("fc00::/7")


@dataclass
class Iface:
    """One interface of the node as the plan builds it (frozen later)."""

    name: str
    network: str
    kind: str = "veth"
    master: str | None = None
    ports: tuple[str, ...] = ()
    ipv6: list[ipaddress.IPv6Interface] = field(default_factory=list)
    ipv4: list[ipaddress.IPv4Interface] = field(default_factory=list)
    ra: bool = False
    ra_slaac: bool = True  # the RA's prefixes carry the A flag (odhcpd's `ra_slaac`)
    accept_ra: bool = False
    delegated: list[ipaddress.IPv6Interface] = field(default_factory=list)  # from PD


@dataclass
class OpenwrtNode:
    ifaces: list[Iface]
    lans: list[LanService]
    uci: dict[str, str]  # file name -> text, as the node's /etc/config holds it
    ipv4_gateways: list[tuple[str, ipaddress.IPv4Address]]  # (device, gateway)
    dhcp_client: list[str]  # devices with proto dhcp (DHCPv4 client)
    upstream_dns: list[str]
    pd_request: tuple[str, int | None] | None = None  # (wan device, reqprefix length)
    assignments: list[tuple[str, int, int]] = field(default_factory=list)  # (dev, len, hint)
    ula: ipaddress.IPv6Network | None = None  # globals.ula_prefix: netifd makes it unreachable


def node_ula(lab: str, node: str) -> ipaddress.IPv6Network:
    """The router's ULA /48: stable for (lab, node), as OpenWrt keeps one per install."""
    return generate_ula(seed=f"palmnet/{lab}/{node}")


def uci_texts(lab: str, node: Node, v6only: frozenset[str] = frozenset()) -> dict[str, str]:
    """The node's /etc/config files: the `uci:` folder's, else the stock ones (whose
    LAN has no IPv4 when its ports are all on IPv6-only networks)."""
    lan_ports = tuple(i for i in node.interfaces if i != WAN_DEVICE)
    network = network_text(str(node_ula(lab, node.name)), lan_ports)
    if lan_ports and all(node.interfaces[p].network in v6only for p in lan_ports):
        network = network.replace(STOCK_LAN_IPV4, "")
    stock = {
        "network": network.replace("'192.168.1.1'", f"'{LAB_LAN_IPV4}'"),
        "firewall": FIREWALL,
        "dhcp": DHCP,
    }
    texts = {}
    for name in UCI_FILES:
        own = node.uci / name if node.uci is not None else None
        texts[name] = read_lab_file(own) if own is not None and own.is_file() else stock[name]
    return texts


def stock_network_problem(node: Node) -> str | None:
    """What the node's `interfaces:` lack for OpenWrt's stock /etc/config/network (its
    WAN on eth1, its LAN bridge over every other interface), if the node uses it; the
    lab file is what to fix then, not a file the user never wrote."""
    if node.uci is not None and (node.uci / "network").is_file():
        return None
    lacks = []
    if WAN_DEVICE not in node.interfaces:
        lacks.append(f"{WAN_DEVICE} for the WAN (wan, wan6)")
    if not any(name != WAN_DEVICE for name in node.interfaces):
        lacks.append("a LAN port such as eth0 (br-lan bridges every interface but eth1)")
    if not lacks:
        return None
    source = "its uci: folder has no network file" if node.uci else "it has no uci: folder"
    have = ", ".join(node.interfaces) or "none"
    them = "them" if len(lacks) > 1 else "it"
    return (
        f"OpenWrt's stock /etc/config/network ({source}) needs {' and '.join(lacks)}: "
        f"add {them} to interfaces (interfaces: {have}), or write a network file"
    )


def uci_file(node: Node, name: str) -> str:
    """The file messages name: the `uci:` folder's, else OpenWrt's stock one."""
    if node.uci is not None and (node.uci / name).is_file():
        return str(node.uci / name)
    return f"/etc/config/{name} (stock)"


def _err(pkg: UciPackage, section: UciSection, message: str) -> InputError:
    return InputError(message, file=pkg.display_file(), line=section.line)


def _values(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        return value
    return [value] if value else []


def _ula_share(
    pkg: UciPackage, s: UciSection, ula: ipaddress.IPv6Network | None, length: int | None
) -> ipaddress.IPv6Interface | None:
    """The router's address in the first /64 of this interface's ULA share."""
    if ula is None or length is None:
        return None
    if not ula.prefixlen <= length <= 64:
        raise fail(pkg, s, "ip6assign", f"ip6assign {length} outside /{ula.prefixlen}..64")
    # netifd: the hint is a /64 subnet ID, masked to the share's alignment.
    index = (hint(pkg, s) & ~((1 << (64 - length)) - 1)) >> (64 - length)
    if index >= 1 << (length - ula.prefixlen):
        raise fail(pkg, s, "ip6hint", f"ip6hint {hint(pkg, s):x} outside the ULA prefix")
    share = ipaddress.IPv6Network((int(ula.network_address) | (index << (128 - length)), length))
    first = next(share.subnets(new_prefix=64))
    return ipaddress.IPv6Interface(f"{first.network_address + 1}/64")


def _bridges(network: UciPackage, node: Node, ifaces: dict[str, Iface]) -> None:
    """`config device` of type bridge: a bridge inside the node over its ports."""
    for dev in network.of_type("device"):
        if one(dev.get("type")) != "bridge":
            continue
        name = one(dev.get("name"))
        ports = tuple(p for value in _values(dev.get("ports")) for p in value.split())
        if not name:
            raise _err(network, dev, "bridge device without a name")
        if not IFNAME.fullmatch(name) or name in RESERVED_IFNAMES:
            raise fail(network, dev, "name", f"bridge name {shown(name)}: {IFNAME_RULE}")
        if name in ifaces:
            raise fail(network, dev, "name", f"{name} is already an interface of node {node.name}")
        missing = [p for p in ports if p not in ifaces or ifaces[p].kind != "veth"]
        taken = [p for p in ports if p in ifaces and ifaces[p].master is not None]
        known = ", ".join(node.interfaces) or "none"
        if not ports:
            raise fail(
                network,
                dev,
                "ports",
                f"bridge {name} has no ports: add `list ports 'IF'` naming an interface of "
                f"node {node.name} in the topology (interfaces: {known})",
            )
        if missing:
            raise fail(
                network,
                dev,
                "ports",
                f"bridge {name}: port {shown(', '.join(missing))} is "
                f"not an interface of node {node.name} in the topology (interfaces: {known})",
            )
        if taken or len(set(ports)) != len(ports):
            raise fail(network, dev, "ports", f"bridge {name}: a port is in a bridge already")
        for p in ports:
            ifaces[p].master = name
        ifaces[name] = Iface(name, ifaces[ports[0]].network, kind="bridge", ports=ports)


def _ula(lab: str, node: Node, network: UciPackage) -> ipaddress.IPv6Network | None:
    """`globals.ula_prefix`: the router's ULA /48 (or what the file says), `auto`, none."""
    for g in network.of_type("globals"):
        text = one(g.get("ula_prefix"))
        if not text:
            continue
        if text == "auto":
            return node_ula(lab, node.name)
        try:
            ula = ipaddress.IPv6Network(text)
        except ValueError:
            raise fail(network, g, "ula_prefix", f"bad ula_prefix {shown(text)}") from None
        if not ula.subnet_of(ULA_SPACE) or ula.prefixlen > 64:
            raise fail(
                network,
                g,
                "ula_prefix",
                f"{ula} is not a unique local prefix (fc00::/7) of /64 or shorter",
            )
        return ula
    return None


def read_openwrt(lab: str, node: Node, v6only: frozenset[str] = frozenset()) -> OpenwrtNode:
    """The node's interfaces and LAN services from its UCI files; `v6only` are the
    lab's IPv6-only networks (`ipv4: false`), where no interface holds IPv4."""
    texts = uci_texts(lab, node, v6only)
    network = parse(texts["network"], "network", file=uci_file(node, "network"))
    dhcp = parse(texts["dhcp"], "dhcp", file=uci_file(node, "dhcp"))
    ifaces = {name: Iface(name, spec.network) for name, spec in node.interfaces.items()}
    _bridges(network, node, ifaces)
    ula = _ula(lab, node, network)

    devices: dict[str, str] = {}  # UCI interface -> device
    assignments: list[tuple[str, int, int]] = []
    pd_request: tuple[str, int | None] | None = None
    gateways: list[tuple[str, ipaddress.IPv4Address]] = []
    dhcp_client: list[str] = []
    for s in network.of_type("interface"):
        written = one(s.get("device")) or one(s.get("ifname"))
        device = devices.get(written[1:]) if written and written.startswith("@") else written
        if s.name == "loopback" or device == "lo":
            continue
        if not device or device not in ifaces:
            what = f"device {shown(written)}" if written else "no device"
            if written and written.startswith("@"):
                what += " (an alias of an interface defined above, with a device)"
            raise fail(
                network,
                s,
                "device",
                f"interface {s.name}: {what} is not an interface of node "
                f"{node.name} (have: {', '.join(ifaces) or 'none'})",
            )
        if ifaces[device].master is not None:
            raise fail(
                network,
                s,
                "device",
                f"{device} is a port of {ifaces[device].master}: give the interface the bridge",
            )
        devices[s.name or ""] = device
        target = ifaces[device]
        proto = one(s.get("proto")) or "none"
        if proto == "static":
            v4 = [ipv4_interface(network, s, raw) for raw in _values(s.get("ipaddr"))]
            if v4 and target.network in v6only:
                raise fail(
                    network,
                    s,
                    "ipaddr",
                    f"interface {s.name}: {device} is on {target.network}, an IPv6-only "
                    "network (ipv4: false): no IPv4 address there",
                )
            target.ipv4 += v4
            target.ipv6 += [ipv6_interface(network, s, raw) for raw in _values(s.get("ip6addr"))]
            assign = integer(network, s, "ip6assign", 1, 64)
            share = _ula_share(network, s, ula, assign)
            if share is not None:
                target.ipv6.append(share)
            if assign is not None:
                assignments.append((device, assign, hint(network, s)))
            gw = gateway(network, s, target.ipv4)
            if gw is not None:
                gateways.append((device, gw))
        elif proto == "dhcp":
            dhcp_client.append(device)
        elif proto == "dhcpv6":
            target.accept_ra = True
            req = one(s.get("reqprefix"))
            if req and req != "no":
                length = None if req == "auto" else integer(network, s, "reqprefix", 1, 64)
                pd_request = (device, length)
        elif proto != "none":
            raise fail(
                network,
                s,
                "proto",
                f"interface {s.name}: proto {shown(proto)} is not supported "
                "(static, dhcp, dhcpv6, none)",
            )

    lans = _lan_services(dhcp, devices, ifaces)
    upstream = [
        server(dhcp, d, text) for d in dhcp.of_type("dnsmasq") for text in _values(d.get("server"))
    ]
    return OpenwrtNode(
        list(ifaces.values()),
        lans,
        texts,
        gateways,
        dhcp_client,
        upstream,
        pd_request,
        assignments,
        ula,
    )


def _lan_services(
    dhcp: UciPackage, devices: dict[str, str], ifaces: dict[str, Iface]
) -> list[LanService]:
    lans = []
    served: dict[str, UciSection] = {}
    for s in dhcp.of_type("dhcp"):
        uci_if = one(s.get("interface")) or s.name or ""
        device = devices.get(uci_if)
        if device is None or one(s.get("ignore")) == "1":
            continue
        if device in served:
            first = dhcp.section_id(served[device])
            raise fail(dhcp, s, "interface", f"{device} is served by {first} already")
        served[device] = s
        iface = ifaces[device]
        ra = (one(s.get("ra")) or "server") != "disabled"
        iface.ra = ra and bool(_routable64(iface))
        iface.ra_slaac = boolean(dhcp, s, "ra_slaac", True)
        flags = _values(s.get("ra_flags"))
        dhcpv6 = (one(s.get("dhcpv6")) or "disabled") == "server"
        managed = dhcpv6 and ("managed-config" in flags or not flags)
        other = dhcpv6 or "other-config" in flags
        dhcp4 = None
        router4 = None
        if (one(s.get("dhcpv4")) or "server") == "server" and iface.ipv4:
            dhcp4 = _dhcp4_range(dhcp, s, iface.ipv4[0])
            router4 = iface.ipv4[0].ip
        dhcp6 = None
        prefixes = _routable64(iface)
        if managed and prefixes:
            p = prefixes[0].network_address
            dhcp6 = (p + 0x1000, p + 0x1FFF)
        lans.append(
            LanService(
                interface=device,
                ra=ra,
                managed=managed,
                other=other,
                dhcp4_range=dhcp4,
                dhcp4_router=router4,
                dhcp6_range=dhcp6,
                slaac=iface.ra_slaac,
                lease_time=seconds(dhcp, s, "leasetime", 43200),
            )
        )
    return lans


def _dhcp4_range(
    dhcp: UciPackage, s: UciSection, own: ipaddress.IPv4Interface
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """`start` and `limit` (offsets into the subnet, as OpenWrt's) as the first and
    last address of the pool, inside the subnet and without its broadcast address."""
    net = own.network
    start = integer(dhcp, s, "start", 1, net.num_addresses - 2, 100)
    limit = integer(dhcp, s, "limit", 1, net.num_addresses - 2, 150)
    if start is None or limit is None or net.num_addresses < 4:
        raise fail(dhcp, s, "start", f"{net} has no room for a DHCP pool")
    first = net.network_address + start
    last = min(net.network_address + start + limit - 1, net.broadcast_address - 1)
    return first, last


def _routable64(iface: Iface) -> list[ipaddress.IPv6Network]:
    return [
        a.network
        for a in (*iface.delegated, *iface.ipv6)
        if a.network.prefixlen == 64 and not a.is_link_local
    ]


def seed_files(texts: dict[str, str]) -> dict[Path, str]:
    """Paths below the node's /etc for its UCI files."""
    return {Path("config") / name: text for name, text in texts.items()}
