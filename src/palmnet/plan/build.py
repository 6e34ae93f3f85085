"""Build the plan from a resolved topology: pure, no root, no I/O but UCI files.

Every address the kernel will hold is decided here: the link-local and SLAAC
addresses follow from the stable MAC (EUI-64, `addr_gen_mode` 0) and the /64s
that routers advertise on the node's network, so `palmnet plan` can print
them before anything exists. Two passes: first each node's interfaces and
what it advertises (openwrt nodes read their UCI files), then what every
node learns from the others (SLAAC, default routers, DHCP reservations,
static routes' next hops, the DNS records).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

from palmnet.addressing.eui64 import eui64_address, link_local
from palmnet.addressing.mac import assign_macs, mac_key, stable_mac
from palmnet.plan.model import (
    DnsServerPlan,
    InterfacePlan,
    LanService,
    NetworkPlan,
    NodePlan,
    Plan,
    RoutePlan,
)
from palmnet.plan.names import node_netns, outer_ifname, switch_netns
from palmnet.plan.openwrt import Iface, read_openwrt
from palmnet.plan.pd import PdDraft, allocate
from palmnet.plan.routes import resolve_routes
from palmnet.plan.routing import plan_routing
from palmnet.topology.model import Lab, Node

IPv6If = ipaddress.IPv6Interface


@dataclass
class _Draft:
    """A node between the two passes."""

    node: Node
    ifaces: list[Iface]
    lans: list[LanService] = field(default_factory=list)
    uci: dict[str, str] = field(default_factory=dict)
    gateways: list[tuple[str, ipaddress.IPv4Address]] = field(default_factory=list)
    dhcp_client: list[str] = field(default_factory=list)
    upstream_dns: list[str] = field(default_factory=list)
    serves_dns: bool = False
    pd_request: tuple[str, int | None] | None = None
    assignments: list[tuple[str, int, int]] = field(default_factory=list)


def _draft(lab: Lab, node: Node) -> _Draft:
    if node.kind == "openwrt":
        ow = read_openwrt(lab.name, node)
        if node.routing is not None:
            ow.uci["firewall"] += _routing_rules(lab.name, node, ow)
        return _Draft(
            node,
            ow.ifaces,
            ow.lans,
            ow.uci,
            ow.ipv4_gateways,
            ow.dhcp_client,
            ow.upstream_dns,
            serves_dns=True,
            pd_request=ow.pd_request,
            assignments=ow.assignments,
        )
    ifaces = [
        Iface(
            name,
            spec.network,
            ipv6=list(spec.ipv6),
            ipv4=list(spec.ipv4),
            ra=spec.ra,
            accept_ra=node.kind == "host",
        )
        for name, spec in node.interfaces.items()
    ]
    if node.kind == "isp":
        # The upstream resolves every name of the lab for its side, and says so in its RAs.
        lans = [LanService(interface=i.name) for i in ifaces if i.ra]
        return _Draft(node, ifaces, lans, serves_dns=True)
    return _Draft(node, ifaces)


def _routing_rules(lab: str, node: Node, ow: object) -> str:
    """Rules that open the routing protocol on the interfaces running it, appended to
    /etc/config/firewall as OpenWrt packages add theirs on install."""
    from palmnet.openwrt.uci import parse
    from palmnet.openwrt.zones import zone_devices
    from palmnet.plan.routing_firewall import firewall_rules, zones_of_devices

    assert node.routing is not None
    uci = ow.uci  # type: ignore[attr-defined]
    routing = plan_routing(lab, node.name, node.routing, tuple(ow.ifaces))  # type: ignore[attr-defined,arg-type]
    devices = zone_devices(parse(uci["network"], "network"))
    zones = zones_of_devices(parse(uci["firewall"], "firewall"), devices)
    return "\n# added by palmnet: the routing protocol on its interfaces\n" + firewall_rules(
        routing, zones
    )


def _outer_names(drafts: list[_Draft]) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for d in sorted(drafts, key=lambda d: d.node.name):
        for iface in sorted(d.ifaces, key=lambda i: i.name):
            if iface.kind != "veth":
                continue
            attempt = 0
            name = outer_ifname(d.node.name, iface.name)
            while name in used:
                attempt += 1
                name = outer_ifname(d.node.name, iface.name, attempt)
            used.add(name)
            names[(d.node.name, iface.name)] = name
    return names


def _ra_prefixes(iface: Iface) -> tuple[ipaddress.IPv6Network, ...]:
    if not iface.ra:
        return ()
    return tuple(
        dict.fromkeys(
            a.network
            for a in (*iface.delegated, *iface.ipv6)
            if a.network.prefixlen == 64 and not a.is_link_local
        )
    )


def _reserve(
    hosts: list[tuple[str, str]], first: ipaddress.IPv4Address, last: ipaddress.IPv4Address
) -> dict[str, ipaddress.IPv4Address]:
    """DHCPv4 reservations: by a hash of the MAC into the range, sorted keys probing
    forward, so a host keeps its lease when others are added."""
    size = int(last) - int(first) + 1
    taken: set[int] = set()
    out: dict[str, ipaddress.IPv4Address] = {}
    for key, mac in sorted(hosts):
        if len(taken) >= size:
            break
        slot = int.from_bytes(hashlib.sha256(mac.encode()).digest()[:4], "big") % size
        while slot in taken:
            slot = (slot + 1) % size
        taken.add(slot)
        out[key] = first + slot
    return out


def plan_lab(lab: Lab) -> Plan:
    drafts = [_draft(lab, node) for node in lab.nodes.values()]
    keys = [mac_key(lab.name, d.node.name, i.name) for d in drafts for i in d.ifaces]
    macs = assign_macs(keys)
    notes = [
        f"MAC clash resolved: {key.split('/', 1)[1]} moved to {mac}"
        for key, mac in macs.items()
        if mac != stable_mac(*key.split("/"))
    ]
    outer = _outer_names(drafts)

    def mac_of(node: str, iface: str) -> str:
        return macs[mac_key(lab.name, node, iface)]

    pd = allocate(
        [
            PdDraft(
                d.node.name, d.node.kind, d.ifaces, d.node.delegate, d.pd_request, d.assignments
            )
            for d in drafts
        ],
        mac_of,
    )

    # Pass 2: what each node learns from the others on its networks.
    advertised: dict[str, list[tuple[str, ipaddress.IPv6Network]]] = defaultdict(list)
    senders: dict[str, list[ipaddress.IPv6Address]] = defaultdict(list)
    lan_of: dict[str, list[tuple[str, LanService]]] = defaultdict(list)
    for d in drafts:
        for iface in d.ifaces:
            if iface.master is not None:
                continue
            prefixes = _ra_prefixes(iface)
            if prefixes:
                advertised[iface.network] += [(d.node.name, p) for p in prefixes]
                senders[iface.network].append(link_local(mac_of(d.node.name, iface.name)))
        for lan in d.lans:
            net = next(i.network for i in d.ifaces if i.name == lan.interface)
            lan_of[net].append((d.node.name, lan))

    reservations: dict[tuple[str, str], ipaddress.IPv4Interface] = {}
    lans_done: dict[tuple[str, str], LanService] = {}
    for net, lans in lan_of.items():
        for router, lan in lans:
            hosts = [
                (f"{d.node.name}/{i.name}", mac_of(d.node.name, i.name))
                for d in drafts
                if d.node.kind == "host"
                for i in d.ifaces
                if i.network == net and i.kind == "veth" and i.master is None
            ]
            chosen: dict[str, ipaddress.IPv4Address] = {}
            if lan.dhcp4_range is not None:
                chosen = _reserve(hosts, *lan.dhcp4_range)
            router_if = next(
                i
                for d in drafts
                if d.node.name == router
                for i in d.ifaces
                if i.name == lan.interface
            )
            plen = router_if.ipv4[0].network.prefixlen if router_if.ipv4 else 24
            for key, addr in chosen.items():
                node, iface = key.split("/")
                reservations[(node, iface)] = ipaddress.IPv4Interface(f"{addr}/{plen}")
            rdnss = tuple(
                a.ip
                for a in (*router_if.delegated, *router_if.ipv6)
                if not a.is_link_local and a.network.prefixlen == 64
            )
            lans_done[(router, lan.interface)] = dataclasses.replace(
                lan,
                rdnss=rdnss if lan.ra else (),
                dnssl=(lab.domain,) if lan.ra else (),
                hosts=tuple((mac_of(*k.split("/")), a, k.split("/")[0]) for k, a in chosen.items()),
            )

    nodes: list[NodePlan] = []
    ports: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for d in drafts:
        node = d.node
        ifaces: list[InterfacePlan] = []
        dhcp_client = list(d.dhcp_client)
        resolver = False
        for iface in d.ifaces:
            mac = mac_of(node.name, iface.name)
            ll = link_local(mac)
            slaac: list[IPv6If] = []
            routers: list[ipaddress.IPv6Address] = []
            if iface.accept_ra and iface.master is None:
                static = {a.ip for a in iface.ipv6}
                for sender, prefix in advertised.get(iface.network, []):
                    if sender == node.name:
                        continue
                    addr = eui64_address(mac, prefix)
                    if addr not in static:
                        slaac.append(IPv6If(f"{addr}/64"))
                routers = [r for r in senders.get(iface.network, []) if r != ll]
                if node.kind == "host":
                    offered = [lan for _, lan in lan_of.get(iface.network, [])]
                    if (node.name, iface.name) in reservations or any(
                        lan.managed for lan in offered
                    ):
                        dhcp_client.append(iface.name)
                    if any(lan.ra for lan in offered):
                        resolver = True
            dhcp4 = reservations.get((node.name, iface.name))
            ifaces.append(
                InterfacePlan(
                    name=iface.name,
                    network=iface.network,
                    mac=mac,
                    outer=outer.get((node.name, iface.name), ""),
                    link_local=IPv6If(f"{ll}/64"),
                    ipv6_static=() if iface.master else tuple(iface.ipv6),
                    ipv4_static=() if iface.master else tuple(iface.ipv4),
                    ipv6_slaac=tuple(dict.fromkeys(slaac)),
                    ra_prefixes=_ra_prefixes(iface) if iface.master is None else (),
                    routers=tuple(routers),
                    kind=iface.kind,
                    master=iface.master,
                    ports=iface.ports,
                    accept_ra=iface.accept_ra and node.kind != "host",
                    ipv4_dhcp=(dhcp4,) if dhcp4 is not None else (),
                    ipv6_delegated=() if iface.master else tuple(iface.delegated),
                )
            )
            if iface.kind == "veth":
                ports[iface.network].append((node.name, iface.name))
        nodes.append(
            NodePlan(
                name=node.name,
                kind=node.kind,
                netns=node_netns(lab.name, node.name),
                interfaces=tuple(ifaces),
                dad=node.dad,
                service=node.service,
                template=node.template,
                lans=tuple(lans_done[(node.name, lan.interface)] for lan in d.lans),
                uci=tuple(d.uci.items()),
                dhcp_client=tuple(dict.fromkeys(dhcp_client)),
                resolver_from_ra=resolver,
                routes=tuple(
                    RoutePlan(ipaddress.IPv4Network("0.0.0.0/0"), gw, dev) for dev, gw in d.gateways
                ),
                routing=(
                    plan_routing(lab.name, node.name, node.routing, tuple(ifaces))
                    if node.routing is not None
                    else None
                ),
                pd_servers=tuple(pd.servers.get(node.name, ())),
                pd_client=pd.clients.get(node.name),
                image=node.image,
                security_nesting=node.security_nesting,
                security_privileged=node.security_privileged,
            )
        )
    nodes = resolve_routes(lab, nodes)
    plan = Plan(
        lab=lab.name,
        domain=lab.domain,
        source=str(lab.source),
        switch_netns=switch_netns(lab.name),
        networks=tuple(
            NetworkPlan(name=name, bridge=name, ports=tuple(ports.get(name, ())))
            for name in lab.networks
        ),
        nodes=tuple(nodes),
        dad=lab.dad,
        notes=tuple(notes),
        backend=lab.backend,
    )
    return _with_dns(plan, {d.node.name: d for d in drafts})


def _with_dns(plan: Plan, drafts: dict[str, _Draft]) -> Plan:
    """Give every DNS-serving router the lab's records (after all addresses are known)."""
    if not any(d.serves_dns for d in drafts.values()):
        return plan
    from palmnet.plan.dns import lab_records

    records = lab_records(plan)
    nodes = []
    for n in plan.nodes:
        d = drafts[n.name]
        if d.serves_dns:
            lan_ifs = tuple(lan.interface for lan in n.lans) or tuple(
                i.name for i in n.interfaces if i.master is None
            )
            n = dataclasses.replace(
                n,
                dns=DnsServerPlan(
                    domain=plan.domain,
                    interfaces=lan_ifs,
                    records=records,
                    upstream=tuple(d.upstream_dns),
                ),
            )
        nodes.append(n)
    return dataclasses.replace(plan, nodes=tuple(nodes))
