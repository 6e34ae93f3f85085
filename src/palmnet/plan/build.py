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
import shlex
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from palmnet.addressing.eui64 import eui64_address, link_local
from palmnet.addressing.mac import assign_macs, mac_key, stable_mac
from palmnet.addressing.portmap import parse_port
from palmnet.errors import InputError
from palmnet.plan import spanning
from palmnet.plan.address_clashes import check_addresses
from palmnet.plan.external import (
    external_notes,
    external_plan,
    external_prefixes,
    guarded_here,
    is_external,
    with_external,
)
from palmnet.plan.model import (
    DnsServerPlan,
    DockerPlan,
    DockerRun,
    DockerVolume,
    InterfacePlan,
    LanService,
    NetworkPlan,
    NodePlan,
    Plan,
    RoutePlan,
)
from palmnet.plan.openwrt import WAN_DEVICE, Iface, read_openwrt, stock_network_problem
from palmnet.plan.pd import PdDraft, allocate, duid_ll
from palmnet.plan.routes import resolve_routes
from palmnet.plan.routing import plan_routing
from palmnet.plan.xlat import plan_xlat, xlat_notes
from palmnet.topology.docker import parse_volume
from palmnet.topology.model import Lab, Node
from palmnet.topology.problems import ProblemsInFiles

IPv6If = ipaddress.IPv6Interface
DNS64_BACKEND_PORT = 5353  # dnsmasq's DNS behind a DNS64 (unbound answers on 53)


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
    unreachable: list[ipaddress.IPv6Network] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings about its UCI files


def _drafts(lab: Lab) -> list[_Draft]:
    """Every node's draft; the UCI problems of all openwrt nodes are raised together,
    so one `plan` names them all (each node's firewall lists all of its own)."""
    drafts, errors = [], []
    for node in lab.nodes.values():
        try:
            drafts.append(_draft(lab, node))
        except InputError as exc:
            if node.kind != "openwrt":
                raise
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ProblemsInFiles(errors)
    return drafts


def _draft(lab: Lab, node: Node) -> _Draft:
    if node.kind == "openwrt":
        from palmnet.plan.uci_firewall import check_firewall

        v6only = frozenset(name for name, net in lab.networks.items() if not net.ipv4)
        lacks = stock_network_problem(node)
        if lacks is not None:
            line, key = lab.where(node, "interfaces")
            raise InputError(lacks, file=str(lab.source), line=line, key=key)
        ow = read_openwrt(lab.name, node, v6only)
        own_lines = len(ow.uci["firewall"].splitlines())
        if node.routing is not None:
            ow.uci["firewall"] += _routing_rules(lab.name, node, ow)
        if node.nat64 is not None:
            ow.uci["firewall"] += _nat64_zone(ow)
        # What fw4 would skip fails `plan` here, not the lab after `up` (uci_firewall).
        notes = check_firewall(node, ow.uci, own_lines)
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
            unreachable=[ow.ula] if ow.ula is not None else [],
            notes=notes,
        )
    ifaces = [
        Iface(
            name,
            spec.network,
            ipv6=list(spec.ipv6),
            ipv4=list(spec.ipv4),
            ra=spec.ra,
            # On the machine's LAN every node takes its address (and a forwarding
            # node its default route) from the LAN's router, unless it advertises.
            accept_ra=node.kind == "host" or (is_external(lab, spec.network) and not spec.ra),
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


def _nat64_zone(ow: object) -> str:
    """The translator's tun device as a firewall zone of its own, appended to
    /etc/config/firewall as OpenWrt's tayga package has users do."""
    from palmnet.openwrt.uci import parse
    from palmnet.openwrt.zones import zone_devices
    from palmnet.plan.routing_firewall import zones_of_devices
    from palmnet.plan.xlat_firewall import nat64_zone

    uci = ow.uci  # type: ignore[attr-defined]
    devices = zone_devices(parse(uci["network"], "network"))
    zones = zones_of_devices(parse(uci["firewall"], "firewall"), devices)
    wan = zones.get(WAN_DEVICE)
    lans = [zone for dev, zone in zones.items() if dev != WAN_DEVICE and zone != wan]
    return nat64_zone(list(dict.fromkeys(lans)), wan)


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


Addr = TypeVar("Addr", ipaddress.IPv4Address, ipaddress.IPv6Address)


Held = dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address]
"""The leases a running lab's hosts hold, by client id (MAC for v4, DUID for v6)."""


def held_leases(plan: Plan) -> Held:
    """What the hosts of a running lab were given: a re-plan (launch, an edited file)
    keeps them, so no host's reservation moves under the lease it holds."""
    held: Held = {}
    for node in plan.nodes:
        for lan in node.lans:
            held.update({mac: addr for mac, addr, _ in lan.hosts})
            held.update({duid: addr for duid, addr, _ in lan.hosts6})
    return held


def keeps_leases(plan: Plan, held: Held) -> bool:
    """Whether every host of `plan` that holds a lease keeps it there: a plan made
    without the held leases is then the same as one made with them."""
    given = held_leases(plan)
    return all(given.get(cid, addr) == addr for cid, addr in held.items())


def _reserve(
    hosts: list[tuple[str, str]], first: Addr, last: Addr, held: Held | None = None
) -> dict[str, Addr]:
    """DHCP reservations (v4 by MAC, v6 by DUID): by a hash of the client's id into
    the range, sorted keys probing forward. A hash alone does not keep a host's lease
    when others are added (a new name that sorts first takes a colliding slot), so
    the addresses of a running lab (`held`) are placed first, where they are."""
    size = int(last) - int(first) + 1
    taken: set[int] = set()
    out: dict[str, Addr] = {}
    held = held or {}
    for key, cid in sorted(hosts):
        had = held.get(cid)
        if had is not None and type(had) is type(first) and first <= had <= last:
            slot = int(had) - int(first)
            if slot not in taken:
                taken.add(slot)
                out[key] = had  # type: ignore[assignment]
    for key, cid in sorted(hosts):
        if key in out:
            continue
        if len(taken) >= size:
            break
        slot = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:4], "big") % size
        while slot in taken:
            slot = (slot + 1) % size
        taken.add(slot)
        out[key] = first + slot
    return dict(sorted(out.items()))


def plan_lab(lab: Lab, held: Held | None = None) -> Plan:
    """The plan of a lab, in named passes: each node's interfaces (UCI read for
    openwrt nodes), MACs, delegations, what each link offers, each LAN's services
    and DHCP reservations, then each node's plan, its routes and the DNS records.
    `held`: the leases of the running lab this plan replaces (`held_leases`)."""
    drafts = _drafts(lab)
    macs, notes = _macs(lab, drafts)

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
        lambda node, iface: guarded_here(lab, lab.nodes[node], iface),
    )
    links = _links(drafts, mac_of, lambda d, i: guarded_here(lab, d.node, i))
    for name, ext in external_prefixes(lab).items():  # the real LAN's router, by the file
        links.advertised[name].append(("", ext))
    reservations, lans = _lan_services(lab, drafts, links, mac_of, held)
    nodes = [
        with_external(lab, _node_plan(lab, d, links, reservations, lans, pd, mac_of))
        for d in drafts
    ]
    check_addresses(lab, nodes)
    planned = plan_xlat(lab, resolve_routes(lab, nodes))
    plan = Plan(
        lab=lab.name,
        domain=lab.domain,
        source=str(lab.source),
        networks=_networks(lab, nodes),
        nodes=tuple(planned),
        dad=lab.dad,
        notes=(
            *(n for d in drafts for n in d.notes),
            *notes,
            *external_notes(lab, nodes),
            *xlat_notes(planned),
            *spanning.notes(lab),
        ),
        backend=lab.backend or "netns",
        placement=lab.placement or "spread",
        link_mtu=spanning.link_mtu(lab),
    )
    return _with_dns(plan, {d.node.name: d for d in drafts})


MacOf = Callable[[str, str], str]


def _macs(lab: Lab, drafts: list[_Draft]) -> tuple[dict[str, str], list[str]]:
    """Every interface's stable MAC, clashes resolved (and noted)."""
    keys = [mac_key(lab.name, d.node.name, i.name) for d in drafts for i in d.ifaces]
    macs = assign_macs(keys)
    notes = [
        f"MAC clash resolved: {key.split('/', 1)[1]} moved to {mac}"
        for key, mac in macs.items()
        if mac != stable_mac(*key.split("/"))
    ]
    return macs, notes


@dataclass
class _Links:
    """What each lab network offers: prefixes advertised (by whom), RA senders'
    link-locals, and the LAN services of the routers on it."""

    advertised: dict[str, list[tuple[str, ipaddress.IPv6Network]]]
    senders: dict[str, list[ipaddress.IPv6Address]]
    lan_of: dict[str, list[tuple[str, LanService]]]
    guarded: set[tuple[str, str]] = field(default_factory=set)  # (router, LAN) kept in

    def offered(self, network: str) -> list[LanService]:
        """The LAN services other nodes on `network` get (a guarded one's stay in)."""
        return [
            lan
            for router, lan in self.lan_of.get(network, [])
            if (router, lan.interface) not in self.guarded
        ]


def _links(drafts: list[_Draft], mac_of: MacOf, guarded: Callable[[_Draft, Iface], bool]) -> _Links:
    """What each network offers; on an external network, a guarded interface offers
    nothing (its RAs and DHCP replies are dropped on the way out)."""
    links = _Links(defaultdict(list), defaultdict(list), defaultdict(list))
    for d in drafts:
        for iface in d.ifaces:
            if iface.master is not None or guarded(d, iface):
                continue
            prefixes = _ra_prefixes(iface)
            if prefixes and iface.ra_slaac:  # without the A flag: no SLAAC from them
                links.advertised[iface.network] += [(d.node.name, p) for p in prefixes]
            if prefixes:
                links.senders[iface.network].append(link_local(mac_of(d.node.name, iface.name)))
        for lan in d.lans:
            served = next(i for i in d.ifaces if i.name == lan.interface)
            links.lan_of[served.network].append((d.node.name, lan))
            if guarded(d, served):
                links.guarded.add((d.node.name, lan.interface))
    return links


@dataclass
class Reservations:
    """The DHCP leases the LANs' servers reserve, by (node, interface)."""

    v4: dict[tuple[str, str], ipaddress.IPv4Interface] = field(default_factory=dict)
    v6: dict[tuple[str, str], ipaddress.IPv6Interface] = field(default_factory=dict)
    duids: dict[str, str] = field(default_factory=dict)  # host -> its DHCPv6 DUID


def _dhcp_duids(drafts: list[_Draft], links: _Links, mac_of: MacOf) -> dict[str, str]:
    """Each host's DHCPv6 client DUID: DUID-LL of the MAC of the first interface its
    DHCP client runs on (the rule services/dhcpcd.py follows), so a reservation by
    DUID is known before the lab starts."""
    out = {}
    for d in drafts:
        if d.node.kind != "host":
            continue
        for iface in d.ifaces:
            offered = links.offered(iface.network)
            if (
                iface.accept_ra
                and iface.master is None
                and offered
                and any(lan.dhcp4_range is not None or lan.managed for lan in offered)
            ):
                out[d.node.name] = duid_ll(mac_of(d.node.name, iface.name))
                break
    return out


def _lan_services(
    lab: Lab, drafts: list[_Draft], links: _Links, mac_of: MacOf, held: Held | None
) -> tuple[Reservations, dict[tuple[str, str], LanService]]:
    """Each router LAN's RA options and DHCP reservations for the hosts on it."""
    reservations = Reservations(duids=_dhcp_duids(drafts, links, mac_of))
    done: dict[tuple[str, str], LanService] = {}
    for net, lans in links.lan_of.items():
        for router, lan in lans:
            hosts = [
                (f"{d.node.name}/{i.name}", mac_of(d.node.name, i.name))
                for d in drafts
                if d.node.kind == "host" and (router, lan.interface) not in links.guarded
                for i in d.ifaces
                if i.network == net and i.kind == "veth" and i.master is None
            ]
            chosen: dict[str, ipaddress.IPv4Address] = {}
            if lan.dhcp4_range is not None:
                chosen = _reserve(hosts, *lan.dhcp4_range, held)
            router_if = next(
                i for d in drafts if d.node.name == router for i in d.ifaces
                if i.name == lan.interface
            )  # fmt: skip
            plen = router_if.ipv4[0].network.prefixlen if router_if.ipv4 else 24
            for key, addr in chosen.items():
                node, iface = key.split("/")
                reservations.v4[(node, iface)] = ipaddress.IPv4Interface(f"{addr}/{plen}")
            chosen6: dict[str, ipaddress.IPv6Address] = {}
            if lan.dhcp6_range is not None:
                by_duid = [
                    (k, reservations.duids[k.split("/")[0]])
                    for k, _ in hosts
                    if k.split("/")[0] in reservations.duids
                ]
                chosen6 = _reserve(by_duid, *lan.dhcp6_range, held)
            for key, addr6 in chosen6.items():
                node, iface = key.split("/")
                reservations.v6[(node, iface)] = ipaddress.IPv6Interface(f"{addr6}/128")
            rdnss = tuple(
                a.ip
                for a in (*router_if.delegated, *router_if.ipv6)
                if not a.is_link_local and a.network.prefixlen == 64
            )
            done[(router, lan.interface)] = dataclasses.replace(
                lan,
                rdnss=rdnss if lan.ra else (),
                dnssl=(lab.domain,) if lan.ra else (),
                hosts=tuple((mac_of(*k.split("/")), a, k.split("/")[0]) for k, a in chosen.items()),
                hosts6=tuple(
                    (reservations.duids[k.split("/")[0]], a, k.split("/")[0])
                    for k, a in chosen6.items()
                ),
            )
    return reservations, done


def _learned(
    d: _Draft, iface: Iface, mac: str, links: _Links
) -> tuple[list[IPv6If], list[ipaddress.IPv6Address]]:
    """The SLAAC addresses an interface forms from the other nodes' RAs, and the
    link-locals of those routers."""
    if not iface.accept_ra or iface.master is not None:
        return [], []
    ll = link_local(mac)
    static = {a.ip for a in iface.ipv6}
    slaac = []
    for sender, prefix in links.advertised.get(iface.network, []):
        if sender == d.node.name:
            continue
        addr = eui64_address(mac, prefix)
        if addr not in static:
            slaac.append(IPv6If(f"{addr}/64"))
    routers = [r for r in links.senders.get(iface.network, []) if r != ll]
    return slaac, routers


def _interface_plan(
    d: _Draft, iface: Iface, links: _Links, reservations: Reservations, mac_of: MacOf
) -> InterfacePlan:
    mac = mac_of(d.node.name, iface.name)
    slaac, routers = _learned(d, iface, mac, links)
    dhcp4 = reservations.v4.get((d.node.name, iface.name))
    dhcp6 = reservations.v6.get((d.node.name, iface.name))
    port = iface.master is not None
    return InterfacePlan(
        name=iface.name,
        network=iface.network,
        mac=mac,
        link_local=IPv6If(f"{link_local(mac)}/64"),
        ipv6_static=() if port else tuple(iface.ipv6),
        ipv4_static=() if port else tuple(iface.ipv4),
        ipv6_slaac=tuple(dict.fromkeys(slaac)),
        ra_prefixes=() if port else _ra_prefixes(iface),
        routers=tuple(routers),
        kind=iface.kind,
        master=iface.master,
        ports=iface.ports,
        accept_ra=iface.accept_ra and d.node.kind != "host",
        ipv4_dhcp=(dhcp4,) if dhcp4 is not None else (),
        ipv6_delegated=() if port else tuple(iface.delegated),
        ipv6_dhcp=(dhcp6,) if dhcp6 is not None else (),
    )


def _host_clients(
    lab: Lab, d: _Draft, links: _Links, reservations: Reservations
) -> tuple[list[str], bool]:
    """Where a host runs a DHCP client, and whether its resolver comes from RAs.
    On an external network a host asks the real LAN's DHCPv4 server, as the field
    notes' containers on br0 do (the plan cannot know that lease: up waits not)."""
    clients = list(d.dhcp_client)
    resolver = False
    if d.node.kind != "host":
        return clients, resolver
    for iface in d.ifaces:
        if not iface.accept_ra or iface.master is not None:
            continue
        if is_external(lab, iface.network):
            if lab.networks[iface.network].ipv4:  # `ipv4: false`: no DHCPv4 asked there
                clients.append(iface.name)
            continue
        offered = links.offered(iface.network)
        if (d.node.name, iface.name) in reservations.v4 or any(lan.managed for lan in offered):
            clients.append(iface.name)
        if any(lan.ra for lan in offered):
            resolver = True
    return clients, resolver


def _backend_options(node: Node) -> tuple[tuple[str, str], ...]:
    options = []
    if node.image:
        options.append(("image", node.image))
    if node.member:
        options.append(("member", node.member))
    if node.security_nesting:
        options.append(("security.nesting", "true"))
    if node.security_privileged:
        options.append(("security.privileged", "true"))
    return tuple(options)


def _node_plan(
    lab: Lab,
    d: _Draft,
    links: _Links,
    reservations: Reservations,
    lans: dict[tuple[str, str], LanService],
    pd: Any,
    mac_of: MacOf,
) -> NodePlan:
    node = d.node
    ifaces = tuple(_interface_plan(d, i, links, reservations, mac_of) for i in d.ifaces)
    clients, resolver = _host_clients(lab, d, links, reservations)
    return NodePlan(
        name=node.name,
        kind=node.kind,
        interfaces=ifaces,
        dad=node.dad,
        service=node.service,
        template=node.template,
        lans=tuple(lans[(node.name, lan.interface)] for lan in d.lans),
        uci=tuple(d.uci.items()),
        dhcp_client=tuple(dict.fromkeys(clients)),
        dhcp_duid=reservations.duids.get(node.name, ""),
        resolver_from_ra=resolver,
        routes=(
            *(RoutePlan(ipaddress.IPv4Network("0.0.0.0/0"), gw, dev) for dev, gw in d.gateways),
            *(RoutePlan(p, None, "lo", "unreachable") for p in d.unreachable),
        ),
        routing=(
            plan_routing(lab.name, node.name, node.routing, ifaces)
            if node.routing is not None
            else None
        ),
        pd_servers=tuple(pd.servers.get(node.name, ())),
        pd_client=pd.clients.get(node.name),
        backend_options=_backend_options(node),
        docker=_docker(node),
    )


def _docker(node: Node) -> DockerPlan | None:
    """The node's containers with their ports parsed and volume folders resolved (the
    loader checked both)."""
    if not node.docker:
        return None
    runs = []
    for spec in node.docker:
        volumes = []
        for text in spec.volumes:
            folder, target = parse_volume(text)
            volumes.append(DockerVolume(str(node.docker_volumes[folder]), target))
        command = spec.command
        runs.append(
            DockerRun(
                name=spec.name,
                image=spec.image,
                ports=tuple(parse_port(p) for p in spec.ports),
                volumes=tuple(volumes),
                command=tuple(shlex.split(command) if isinstance(command, str) else command or ()),
            )
        )
    return DockerPlan(containers=tuple(runs), real_source=node.docker_real_source)


def _networks(lab: Lab, nodes: list[NodePlan]) -> tuple[NetworkPlan, ...]:
    ports: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for n in nodes:
        for i in n.veths:
            ports[i.network].append((n.name, i.name))
    return tuple(
        NetworkPlan(name=name, ports=tuple(ports.get(name, ())), external=external_plan(lab, name))
        for name in lab.networks
    )


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
                    port=DNS64_BACKEND_PORT if n.nat64 is not None and n.nat64.dns64 else 53,
                ),
            )
        nodes.append(n)
    return dataclasses.replace(plan, nodes=tuple(nodes))
