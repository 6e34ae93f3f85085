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
from palmnet.topology.model import Node

WAN_DEVICE = "eth1"
# OpenWrt's stock LAN is 192.168.1.1/24; labs use documentation prefixes only.
LAB_LAN_IPV4 = "198.51.100.1"
UCI_FILES = ("network", "firewall", "dhcp")


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


def node_ula(lab: str, node: str) -> ipaddress.IPv6Network:
    """The router's ULA /48: stable for (lab, node), as OpenWrt keeps one per install."""
    return generate_ula(seed=f"palmnet/{lab}/{node}")


def uci_texts(lab: str, node: Node) -> dict[str, str]:
    """The node's /etc/config files: the `uci:` folder's, else the stock ones."""
    lan_ports = tuple(i for i in node.interfaces if i != WAN_DEVICE)
    stock = {
        "network": network_text(str(node_ula(lab, node.name)), lan_ports).replace(
            "'192.168.1.1'", f"'{LAB_LAN_IPV4}'"
        ),
        "firewall": FIREWALL,
        "dhcp": DHCP,
    }
    texts = {}
    for name in UCI_FILES:
        own = node.uci / name if node.uci is not None else None
        texts[name] = own.read_text() if own is not None and own.is_file() else stock[name]
    return texts


def _file(node: Node, name: str) -> str:
    if node.uci is not None and (node.uci / name).is_file():
        return str(node.uci / name)
    return f"/etc/config/{name} (stock)"


def _err(pkg: UciPackage, section: UciSection, message: str) -> InputError:
    return InputError(message, file=pkg.display_file(), line=section.line)


def _one(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _ipv4(pkg: UciPackage, s: UciSection) -> list[ipaddress.IPv4Interface]:
    out = []
    for raw in (s.get("ipaddr") or []) if isinstance(s.get("ipaddr"), list) else [s.get("ipaddr")]:
        if not raw:
            continue
        text = raw if "/" in raw else f"{raw}/{s.get('netmask') or '255.255.255.0'}"
        try:
            out.append(ipaddress.IPv4Interface(text))
        except ValueError:
            raise _err(pkg, s, f"interface {s.name}: bad ipaddr {raw!r}") from None
    return out


def _ipv6(pkg: UciPackage, s: UciSection) -> list[ipaddress.IPv6Interface]:
    raw = s.get("ip6addr")
    out = []
    for text in raw if isinstance(raw, list) else ([raw] if raw else []):
        try:
            out.append(ipaddress.IPv6Interface(text if "/" in text else f"{text}/64"))
        except ValueError:
            raise _err(pkg, s, f"interface {s.name}: bad ip6addr {text!r}") from None
    return out


def _ula_share(
    pkg: UciPackage, s: UciSection, ula: ipaddress.IPv6Network | None
) -> ipaddress.IPv6Interface | None:
    """The router's address in the first /64 of this interface's ULA share."""
    assign = _one(s.get("ip6assign"))
    if ula is None or not assign:
        return None
    try:
        length = int(assign)
        hint = int(_one(s.get("ip6hint")) or "0", 16)
    except ValueError:
        raise _err(pkg, s, f"interface {s.name}: bad ip6assign/ip6hint") from None
    if not ula.prefixlen <= length <= 64:
        raise _err(pkg, s, f"interface {s.name}: ip6assign {length} outside /{ula.prefixlen}..64")
    # netifd: the hint is a /64 subnet ID, masked to the share's alignment.
    index = (hint & ~((1 << (64 - length)) - 1)) >> (64 - length)
    if index >= 1 << (length - ula.prefixlen):
        raise _err(pkg, s, f"interface {s.name}: ip6hint {hint:x} outside the ULA prefix")
    share = ipaddress.IPv6Network((int(ula.network_address) | (index << (128 - length)), length))
    first = next(share.subnets(new_prefix=64))
    return ipaddress.IPv6Interface(f"{first.network_address + 1}/64")


def _seconds(text: str | None, default: int = 43200) -> int:
    if not text:
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        return default


def read_openwrt(lab: str, node: Node) -> OpenwrtNode:
    texts = uci_texts(lab, node)
    network = parse(texts["network"], "network", file=_file(node, "network"))
    dhcp = parse(texts["dhcp"], "dhcp", file=_file(node, "dhcp"))
    ifaces = {name: Iface(name, spec.network) for name, spec in node.interfaces.items()}

    for dev in network.of_type("device"):
        if _one(dev.get("type")) != "bridge":
            continue
        name = _one(dev.get("name"))
        ports_raw = dev.get("ports") or []
        ports = tuple(ports_raw if isinstance(ports_raw, list) else ports_raw.split())
        if not name:
            raise _err(network, dev, "bridge device without a name")
        missing = [p for p in ports if p not in ifaces]
        if missing or not ports:
            known = ", ".join(node.interfaces) or "none"
            raise _err(
                network,
                dev,
                f"bridge {name}: port {', '.join(missing) or '(none)'} is not an interface "
                f"of node {node.name} in the topology (interfaces: {known})",
            )
        for p in ports:
            ifaces[p].master = name
        ifaces[name] = Iface(name, ifaces[ports[0]].network, kind="bridge", ports=ports)

    ula_text = next((_one(g.get("ula_prefix")) for g in network.of_type("globals")), None)
    ula = None
    if ula_text and ula_text != "auto":
        try:
            ula = ipaddress.IPv6Network(ula_text)
        except ValueError:
            raise InputError(
                f"bad globals.ula_prefix {ula_text!r}", file=network.display_file()
            ) from None
    elif ula_text == "auto":
        ula = node_ula(lab, node.name)

    devices: dict[str, str] = {}  # UCI interface -> device
    assignments: list[tuple[str, int, int]] = []
    pd_request: tuple[str, int | None] | None = None
    gateways: list[tuple[str, ipaddress.IPv4Address]] = []
    dhcp_client: list[str] = []
    for s in network.of_type("interface"):
        device = _one(s.get("device")) or _one(s.get("ifname"))
        if device and device.startswith("@"):
            device = devices.get(device[1:])
        if s.name == "loopback" or device == "lo":
            continue
        if not device or device not in ifaces:
            raise _err(
                network,
                s,
                f"interface {s.name}: device {device!r} is not an interface of node "
                f"{node.name} (have: {', '.join(ifaces) or 'none'})",
            )
        devices[s.name or ""] = device
        target = ifaces[device]
        proto = _one(s.get("proto")) or "none"
        if proto == "static":
            target.ipv4 += _ipv4(network, s)
            target.ipv6 += _ipv6(network, s)
            share = _ula_share(network, s, ula)
            if share is not None:
                target.ipv6.append(share)
            assign = _one(s.get("ip6assign"))
            if assign and assign.isdigit():
                hint = int(_one(s.get("ip6hint")) or "0", 16)
                assignments.append((device, int(assign), hint))
            gw = _one(s.get("gateway"))
            if gw:
                gateways.append((device, ipaddress.IPv4Address(gw)))
        elif proto == "dhcp":
            dhcp_client.append(device)
        elif proto == "dhcpv6":
            target.accept_ra = True
            req = _one(s.get("reqprefix"))
            if req and req != "no":
                length = (
                    None
                    if req == "auto"
                    else int(req.lstrip("/"))
                    if req.lstrip("/").isdigit()
                    else -1
                )
                if length == -1:
                    raise _err(
                        network,
                        s,
                        f"interface {s.name}: bad reqprefix {req!r} (auto, no or a length)",
                    )
                pd_request = (device, length)
        elif proto != "none":
            raise _err(
                network,
                s,
                f"interface {s.name}: proto {proto!r} is not supported "
                "(static, dhcp, dhcpv6, none)",
            )

    lans = _lan_services(dhcp, devices, ifaces)
    upstream: list[str] = []
    for d in dhcp.of_type("dnsmasq"):
        servers = d.get("server") or []
        upstream += servers if isinstance(servers, list) else [servers]
    return OpenwrtNode(
        list(ifaces.values()),
        lans,
        texts,
        gateways,
        dhcp_client,
        upstream,
        pd_request,
        assignments,
    )


def _lan_services(
    dhcp: UciPackage, devices: dict[str, str], ifaces: dict[str, Iface]
) -> list[LanService]:
    lans = []
    for s in dhcp.of_type("dhcp"):
        uci_if = _one(s.get("interface")) or s.name or ""
        device = devices.get(uci_if)
        if device is None or _one(s.get("ignore")) == "1":
            continue
        iface = ifaces[device]
        ra = (_one(s.get("ra")) or "server") != "disabled"
        iface.ra = ra and bool(_routable64(iface))
        flags = s.get("ra_flags")
        flags = flags if isinstance(flags, list) else ([flags] if flags else [])
        dhcpv6 = (_one(s.get("dhcpv6")) or "disabled") == "server"
        managed = dhcpv6 and ("managed-config" in flags or not flags)
        other = dhcpv6 or "other-config" in flags
        dhcp4 = None
        router4 = None
        if (_one(s.get("dhcpv4")) or "server") == "server" and iface.ipv4:
            net = iface.ipv4[0].network
            start = int(_one(s.get("start")) or "100")
            limit = int(_one(s.get("limit")) or "150")
            first = net.network_address + start
            last = min(net.network_address + start + limit - 1, net.broadcast_address - 1)
            dhcp4 = (first, last)
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
                lease_time=_seconds(_one(s.get("leasetime"))),
            )
        )
    return lans


def _routable64(iface: Iface) -> list[ipaddress.IPv6Network]:
    return [
        a.network
        for a in (*iface.delegated, *iface.ipv6)
        if a.network.prefixlen == 64 and not a.is_link_local
    ]


def seed_files(texts: dict[str, str]) -> dict[Path, str]:
    """Paths below the node's /etc for its UCI files."""
    return {Path("config") / name: text for name, text in texts.items()}
