"""What a lab will be, derived from the topology before anything is created.

The plan is plain data: backends read it, nothing in it knows a backend (each
backend derives its own names for namespaces, bridges and ports).
Addresses are `ipaddress` objects; `to_json` gives the contract shape of
DESIGN.md §3.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from palmnet.addressing.portmap import PortMap
from palmnet.errors import UnknownNode

IPv6If = ipaddress.IPv6Interface
IPv4If = ipaddress.IPv4Interface


IPAddr = ipaddress.IPv6Address | ipaddress.IPv4Address
IPNet = ipaddress.IPv6Network | ipaddress.IPv4Network


@dataclass(frozen=True)
class InterfacePlan:
    name: str  # as the user wrote it, seen inside the node
    network: str  # the lab network it is on (for a bridge inside a node: its ports')
    mac: str
    link_local: IPv6If
    ipv6_static: tuple[IPv6If, ...] = ()  # configured by palmnet
    ipv4_static: tuple[IPv4If, ...] = ()
    ipv6_slaac: tuple[IPv6If, ...] = ()  # formed by the kernel from RAs
    ra_prefixes: tuple[ipaddress.IPv6Network, ...] = ()  # /64s this interface advertises
    routers: tuple[ipaddress.IPv6Address, ...] = ()  # link-locals of RA senders on the link
    kind: str = "veth"  # veth: a port on a lab network; bridge: a bridge inside the node
    master: str | None = None  # the node's bridge this veth is a port of (no addresses then)
    ports: tuple[str, ...] = ()  # for a bridge: its ports
    accept_ra: bool = False  # a forwarding node taking SLAAC + default route here (accept_ra 2)
    ipv4_dhcp: tuple[IPv4If, ...] = ()  # leases the lab's DHCPv4 server reserves for this MAC
    ipv6_delegated: tuple[IPv6If, ...] = ()  # put there by the PD client (a LAN's ::1/64)
    ipv6_dhcp: tuple[IPv6If, ...] = ()  # stateful DHCPv6 leases the LAN reserves (a /128)
    # On an external network (issue 16): "bridge" or "macvlan", how the backend joins
    # it to the machine's LAN; the guard keeps the lab's RAs, DHCP server replies and
    # routing protocols off that LAN unless `advertise` lifts the RA guard.
    external: str | None = None
    advertise: bool = False

    @property
    def ipv6(self) -> tuple[IPv6If, ...]:
        """Every IPv6 address the kernel will hold, link-local first."""
        return (
            self.link_local,
            *self.ipv6_delegated,
            *self.ipv6_static,
            *self.ipv6_slaac,
            *self.ipv6_dhcp,
        )

    def sourced(self) -> tuple[tuple[str, tuple[IPv6If | IPv4If, ...]], ...]:
        """Every planned address by who puts it there: link-local, delegated (the PD
        client), static, slaac, dhcpv6 or dhcpv4."""
        return (
            ("link-local", (self.link_local,)),
            ("delegated", self.ipv6_delegated),
            ("static", (*self.ipv6_static, *self.ipv4_static)),
            ("slaac", self.ipv6_slaac),
            ("dhcpv6", self.ipv6_dhcp),
            ("dhcpv4", self.ipv4_dhcp),
        )

    def source_of(self, address: IPv6If | IPv4If) -> str | None:
        """Who puts a planned address there (`sourced`); None if the plan lacks it."""
        for source, planned in self.sourced():
            if address in planned:
                return source
        return None

    @property
    def sends_ra(self) -> bool:
        return bool(self.ra_prefixes)

    @property
    def ipv4(self) -> tuple[IPv4If, ...]:
        return (*self.ipv4_static, *self.ipv4_dhcp)


@dataclass(frozen=True)
class RoutePlan:
    """A static route, its next hop resolved by the plan (a link-local for IPv6), or
    an unreachable one (`kind`, no next hop): what OpenWrt's netifd installs for a
    prefix the router holds as a whole, so a packet to an unused part of it is
    refused there instead of following the default route back out."""

    to: IPNet
    via: IPAddr | None
    dev: str
    kind: str = "unicast"  # unicast | unreachable


@dataclass(frozen=True)
class DnsRecord:
    name: str  # fully qualified, no trailing dot
    address: IPAddr


@dataclass(frozen=True)
class LanService:
    """What a router serves on one LAN interface (OpenWrt's `dhcp` section of it)."""

    interface: str  # e.g. br-lan
    ra: bool = True
    rdnss: tuple[ipaddress.IPv6Address, ...] = ()
    dnssl: tuple[str, ...] = ()
    managed: bool = False  # stateful DHCPv6 offered: RA M flag
    slaac: bool = True  # the RA's prefixes say "autonomous": hosts form SLAAC addresses
    other: bool = False  # RA O flag
    dhcp4_range: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None = None
    dhcp4_router: ipaddress.IPv4Address | None = None
    dhcp6_range: tuple[ipaddress.IPv6Address, ipaddress.IPv6Address] | None = None
    lease_time: int = 43200  # seconds
    hosts: tuple[tuple[str, ipaddress.IPv4Address, str], ...] = ()  # (mac, ipv4, name)
    hosts6: tuple[tuple[str, ipaddress.IPv6Address, str], ...] = ()  # (duid, ipv6, name)


@dataclass(frozen=True)
class DnsServerPlan:
    """The lab's DNS on a router: every node's name, the rest forwarded."""

    domain: str
    interfaces: tuple[str, ...]
    records: tuple[DnsRecord, ...] = ()
    upstream: tuple[str, ...] = ()  # OpenWrt `list server`
    port: int = 53  # 5353 behind a DNS64 (unbound takes 53 and asks dnsmasq here)


@dataclass(frozen=True)
class RoutingInterface:
    """One interface running the routing protocol, with its options (seconds)."""

    name: str
    type: str | None = None  # babel: wired | wireless
    hello: float | None = None
    update: float | None = None
    rxcost: int | None = None
    timeout: float | None = None
    garbage: float | None = None
    dead: float | None = None
    cost: int | None = None


@dataclass(frozen=True)
class RoutingPlan:
    """BIRD 2 on a router: protocol, stable router id, interfaces, optional BFD."""

    protocol: str  # ripng | babel | ospf3
    router_id: ipaddress.IPv4Address
    interfaces: tuple[RoutingInterface, ...]
    bfd_interval: float | None = None  # seconds; None: no BFD
    bfd_multiplier: int = 3


@dataclass(frozen=True)
class Delegation:
    """A prefix reserved for a requesting router's DUID (None: the pool is exhausted)."""

    client: str
    duid: str  # hex, DUID-LL of the client's WAN MAC: stable for (lab, node)
    prefix: ipaddress.IPv6Network | None


@dataclass(frozen=True)
class PdServerPlan:
    """kea-dhcp6 delegating prefixes on one interface (an ISP's LAN, a router's LAN)."""

    interface: str
    subnet: ipaddress.IPv6Network  # the link's /64: kea matches directly attached clients
    pools: tuple[ipaddress.IPv6Network, ...]
    delegated_len: int
    reservations: tuple[Delegation, ...]
    t1: int = 30
    t2: int = 48
    preferred: int = 60
    valid: int = 90


@dataclass(frozen=True)
class LanAssignment:
    """OpenWrt's ip6assign: a LAN's share of the delegation and the /64 it announces."""

    interface: str
    length: int  # ip6assign
    share: ipaddress.IPv6Network | None
    lan: ipaddress.IPv6Network | None  # the /64 announced by RA (first /64 of the share)


@dataclass(frozen=True)
class PdClientPlan:
    """dhcpcd requesting a prefix on an openwrt router's WAN (UCI wan6 reqprefix)."""

    wan: str
    duid: str
    request_len: int | None
    delegated: ipaddress.IPv6Network | None  # what the plan expects the server to give
    assignments: tuple[LanAssignment, ...] = ()
    iaid: int = 1


@dataclass(frozen=True)
class DockerVolume:
    """A folder of the lab file's, read-only: on the host, then in the container."""

    source: str  # absolute path on the host
    target: str  # absolute path in the container


@dataclass(frozen=True)
class DockerRun:
    """One container of a node's `docker:` list, as the node's dockerd will run it."""

    name: str
    image: str
    ports: tuple[PortMap, ...] = ()
    volumes: tuple[DockerVolume, ...] = ()
    command: tuple[str, ...] = ()  # empty: the image's own CMD


@dataclass(frozen=True)
class DockerPlan:
    """What a node's dockerd runs, and how it publishes ports (`real_source`: no
    userland proxy, ip6tables on, an IPv6 bridge network, so containers see their
    clients' addresses)."""

    containers: tuple[DockerRun, ...]
    real_source: bool = False


@dataclass(frozen=True)
class Nat64Plan:
    """A stateful PLAT in a router (TAYGA on a tun device) and, where the router
    serves DNS, the DNS64 in front of it (unbound on port 53, dnsmasq behind it).

    TAYGA gives each IPv6 client an address of `pool4` (a dynamic mapping kept
    two hours after its last packet), so what the IPv4 side sees is a pool4
    address; `address4` is TAYGA's own (its ICMPv4 errors, echo), the first of
    the pool, which TAYGA then leaves out of the dynamic mappings."""

    prefix: ipaddress.IPv6Network
    pool4: ipaddress.IPv4Network
    address4: ipaddress.IPv4Address
    device: str = "nat64"
    dns64: bool = False  # unbound answers DNS here, with synthesis from `prefix`
    unmasqueraded: bool = False  # openwrt: pool4 leaves as it is, before fw4's masquerade


CLAT_IPV4 = IPv4If("192.0.0.1/29")  # RFC 7335: the host's IPv4 behind its CLAT
CLAT_TRANSLATOR4 = ipaddress.IPv4Address("192.0.0.2")  # the CLAT's own (its ICMP errors)


@dataclass(frozen=True)
class ClatPlan:
    """A CLAT (RFC 6877) in a host: a stateless TAYGA that maps the host's IPv4
    address (192.0.0.1, RFC 7335) to a dedicated IPv6 address of the host's /64
    and the rest of IPv4 into the PLAT's prefix, found at start (RFC 7050)."""

    uplink: str  # the interface whose /64 holds `ipv6` (proxy ND answers for it)
    ipv6: ipaddress.IPv6Address
    ipv4: IPv4If = CLAT_IPV4
    translator4: ipaddress.IPv4Address = CLAT_TRANSLATOR4
    expected_prefix: ipaddress.IPv6Network | None = None  # what the plan knows upstream
    device: str = "clat"


@dataclass(frozen=True)
class NodePlan:
    name: str
    kind: str
    interfaces: tuple[InterfacePlan, ...]
    dad: bool = True
    service: str | None = None
    template: str = ""
    routes: tuple[RoutePlan, ...] = ()
    lans: tuple[LanService, ...] = ()  # routers: RA options, DHCP per LAN
    dns: DnsServerPlan | None = None
    uci: tuple[tuple[str, str], ...] = ()  # openwrt: (file name, text) of /etc/config
    dhcp_client: tuple[str, ...] = ()  # interfaces where a DHCP client runs
    dhcp_duid: str = ""  # its DHCPv6 client DUID (hex), reserved for by the LANs' servers
    resolver_from_ra: bool = False  # rdnssd writes resolv.conf from RDNSS/DNSSL
    routing: RoutingPlan | None = None
    pd_servers: tuple[PdServerPlan, ...] = ()
    pd_client: PdClientPlan | None = None
    nat64: Nat64Plan | None = None
    clat: ClatPlan | None = None
    # What the user asked of the backend for this node, in the backend's own words
    # (LXD: `image`, `security.nesting`, `security.privileged`), read by that backend
    # only; the plan never interprets them.
    backend_options: tuple[tuple[str, str], ...] = ()
    docker: DockerPlan | None = None  # backend lxd: the node's Docker containers

    @property
    def forwarding(self) -> bool:
        return self.kind != "host"

    @property
    def sends_ra(self) -> bool:
        return any(i.sends_ra for i in self.interfaces)

    def interface(self, name: str) -> InterfacePlan:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise KeyError(name)

    def option(self, key: str) -> str | None:
        """A backend option the user set (`backend_options`), None if unset."""
        return dict(self.backend_options).get(key)

    @property
    def veths(self) -> tuple[InterfacePlan, ...]:
        """Interfaces that are ports of a lab network (a bridge inside the node is not)."""
        return tuple(i for i in self.interfaces if i.kind == "veth")


@dataclass(frozen=True)
class ExternalPlan:
    """How a lab network joins the machine's own LAN: a host bridge (`bridge`) or a
    host interface to hang macvlans on (`macvlan`), and the /64 the LAN's router
    advertises there if the file says it (None: learnt at up)."""

    kind: str  # bridge | macvlan
    parent: str  # the host interface, as the file names it
    prefix: ipaddress.IPv6Network | None = None


@dataclass(frozen=True)
class NetworkPlan:
    """A lab network (one layer-2 segment); each backend names its bridge itself.
    An external one has no bridge of the lab's: its ports join the host's LAN."""

    name: str
    ports: tuple[tuple[str, str], ...] = ()  # (node, interface) attached to it
    external: ExternalPlan | None = None


@dataclass(frozen=True)
class Plan:
    lab: str
    domain: str
    source: str
    networks: tuple[NetworkPlan, ...]
    nodes: tuple[NodePlan, ...]
    dad: bool = True
    notes: tuple[str, ...] = field(default=())
    backend: str = "netns"  # which backend realizes it (topology `backend:`)
    placement: str = "spread"  # on an LXD cluster: spread | pack (topology `placement:`)
    link_mtu: int | None = None  # the MTU of every lab link; None: 1500 (plan/spanning.py)

    def node(self, name: str) -> NodePlan:
        """The node named `name`; UnknownNode (bad input, exit 2) names the lab's nodes."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise UnknownNode(name, self.lab, [n.name for n in self.nodes])

    def network(self, name: str) -> NetworkPlan:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def external(self) -> tuple[NetworkPlan, ...]:
        """The networks joined to the machine's own LAN."""
        return tuple(n for n in self.networks if n.external is not None)

    @property
    def bridged(self) -> tuple[NetworkPlan, ...]:
        """The networks that are the lab's own bridges."""
        return tuple(n for n in self.networks if n.external is None)

    def has_node(self, name: str) -> bool:
        return any(n.name == name for n in self.nodes)

    def to_json(self, state: str = "PLANNED") -> list[dict[str, Any]]:
        return [node_json(n, state) for n in self.nodes]


def docker_json(docker: DockerPlan) -> list[dict[str, Any]]:
    """A node's containers as `plan` and `ls` show them (`ls` adds their state)."""
    return [
        {
            "name": c.name,
            "image": c.image,
            "ports": [p.docker_arg() for p in c.ports],
            "volumes": [f"{v.source}:{v.target}:ro" for v in c.volumes],
            "command": list(c.command),
        }
        for c in docker.containers
    ]


def node_json(node: NodePlan, state: str) -> dict[str, Any]:
    out = _node_json(node, state)
    if node.docker is not None:  # only docker nodes: the contract's shape stays for others
        out["docker"] = docker_json(node.docker)
    return out


def _node_json(node: NodePlan, state: str) -> dict[str, Any]:
    return {
        "name": node.name,
        "kind": node.kind,
        "state": state,
        "interfaces": [_interface_json(i) for i in node.interfaces],
    }


def _interface_json(i: InterfacePlan) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": i.name,
        "network": i.network,
        "mac": i.mac,
        "ipv4": [str(a) for a in i.ipv4],
        "ipv6": [str(a) for a in i.ipv6],
    }
    if i.external is not None:
        # The part of its LAN address the lab decides: the LAN's router gives the prefix.
        out["external"] = i.external
        out["interface_id"] = str(ipaddress.IPv6Address(int(i.link_local.ip) & (2**64 - 1)))
        out["advertise"] = i.advertise
    return out
