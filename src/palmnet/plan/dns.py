"""The lab's DNS names: one record list, and BIND zone files rendered from it.

`lab_records` is the single source of a lab's names: the lab's DNS server
serves it (dnsmasq `host-record` lines from `DnsServerPlan.records`) and
`palmnet dns zone` renders it, so what `dig` answers and what the zone file
says cannot drift apart. Everything here is pure and computed offline.

Choices (DESIGN.md §5 leaves them to us):
- A node's name is `NODE.DOMAIN`, with every address it can be reached at
  beyond its link: IPv6 GUA and ULA (static and SLAAC) and IPv4 (static and
  reserved DHCPv4 leases). Link-local addresses are never in DNS (they need a
  zone index to be used), nor are bridge ports (they carry no addresses).
- Reverse zones are one ip6.arpa zone per /64 and one in-addr.arpa zone per /24.
  A /64 is the unit SLAAC and RAs work in (every lab LAN is one) and always a
  nibble boundary; the smallest nibble prefix covering all of a lab's
  prefixes is often useless (a GUA /64 and a ULA /64 share only ::/0).
  /24 is the classic octet boundary; smaller IPv4 subnets share their /24's
  zone rather than needing RFC 2317 delegation names.
- The NS (and SOA MNAME) is the first router that serves the lab's DNS and has
  an address in the zone, so its own AAAA/A records are the glue. With none,
  it is `localhost.`, as BIND's own db.empty does: an NS name inside the zone
  without an address is an error for named-checkzone, and inventing `ns`
  addresses would make the zone say what the live DNS does not.
- The serial is derived from the zone's content, so rendering the same lab
  twice gives the same file; pass `serial` where a secondary needs it to grow.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.zone
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA

from palmnet.errors import InputError
from palmnet.plan.model import DnsRecord, InterfacePlan, IPAddr, NodePlan, Plan
from palmnet.topology.describe import reason, shown

TTL = 300  # records: short enough that a changed lab is seen soon
REFRESH = 3600
RETRY = 600
EXPIRE = 1_209_600  # two weeks (RFC 1912)
NEGATIVE_TTL = 60  # SOA MINIMUM: a node added to the lab resolves within a minute
NO_NAME_SERVER = dns.name.from_text("localhost.")
MAX_SERIAL = 2**32 - 1

_IN = dns.rdataclass.IN
_V6_REVERSE_LABELS = 16  # nibbles of the interface identifier: a /64 zone
_V4_REVERSE_LABELS = 1  # the last octet: a /24 zone


def rdtype(address: IPAddr) -> str:
    """AAAA or A: the record type that holds `address`."""
    return "AAAA" if address.version == 6 else "A"


def in_dns(address: IPAddr) -> bool:
    """Whether an address belongs in DNS: usable beyond its link, by anyone told it.

    Excludes by kind rather than including only `is_global`: documentation
    (2001:db8::/32, 192.0.2.0/24), ULA and RFC 1918 addresses are what labs use.
    """
    if address.is_link_local or address.is_loopback or address.is_multicast:
        return False
    if address.is_unspecified:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return not address.is_site_local and address.ipv4_mapped is None
    return True


def _domain(plan: Plan) -> str:
    return plan.domain.rstrip(".").lower()


def _interface_addresses(iface: InterfacePlan) -> list[IPAddr]:
    """Addresses of one interface, IPv6 first, each family in numeric order."""
    found: list[IPAddr] = [a.ip for a in iface.ipv6[1:]]
    found += [a.ip for a in (*iface.ipv4_static, *iface.ipv4_dhcp)]
    return sorted(set(found), key=lambda a: (a.version == 4, int(a)))


def node_records(node: NodePlan, domain: str) -> tuple[DnsRecord, ...]:
    """One node's records; an address on two of its interfaces is named once."""
    name = f"{node.name}.{domain}"
    seen: set[IPAddr] = set()
    out: list[DnsRecord] = []
    for iface in node.interfaces:
        if iface.master is not None:
            continue
        for address in _interface_addresses(iface):
            if in_dns(address) and address not in seen:
                seen.add(address)
                out.append(DnsRecord(name, address))
    return tuple(out)


def lab_records(plan: Plan) -> tuple[DnsRecord, ...]:
    """Every node's name and addresses: plan node order, then interface order,
    then IPv6 before IPv4, each in numeric order."""
    domain = _domain(plan)
    return tuple(r for node in plan.nodes for r in node_records(node, domain))


def records_by_name(records: Iterable[DnsRecord]) -> dict[str, tuple[IPAddr, ...]]:
    """Name -> its addresses, in record order: one dnsmasq `host-record` per name."""
    out: dict[str, list[IPAddr]] = {}
    for record in records:
        out.setdefault(record.name, []).append(record.address)
    return {name: tuple(addresses) for name, addresses in out.items()}


def _name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise InputError(f"{shown(text)} is not a usable DNS name: {reason(exc)}") from None


def name_server(plan: Plan, records: Iterable[DnsRecord]) -> dns.name.Name:
    """The zones' NS: the first router serving DNS that has an address, else localhost."""
    named = {r.name for r in records}
    domain = _domain(plan)
    for node in plan.nodes:
        fqdn = f"{node.name}.{domain}"
        if node.dns is not None and node.forwarding and fqdn in named:
            return _name(fqdn)
    return NO_NAME_SERVER


def reverse_zone(address: IPAddr) -> dns.name.Name:
    """The reverse zone holding `address`'s PTR: its /64's ip6.arpa or /24's in-addr.arpa."""
    labels = _V6_REVERSE_LABELS if address.version == 6 else _V4_REVERSE_LABELS
    return dns.name.Name(dns.reversename.from_address(str(address)).labels[labels:])


def _stable_serial(text: str) -> int:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") % MAX_SERIAL + 1  # 1 .. 2**32-1, never 0


class _Zone:
    """One zone's records in the order they are added; SOA and NS come first."""

    def __init__(self, origin: dns.name.Name) -> None:
        self.origin = origin
        self.entries: list[tuple[dns.name.Name, dns.rdata.Rdata]] = []

    def add(self, name: dns.name.Name, rdata: dns.rdata.Rdata) -> None:
        self.entries.append((name, rdata))

    def render(self, ns: dns.name.Name, hostmaster: dns.name.Name, serial: int | None) -> str:
        if serial is None:
            serial = _stable_serial(self._text(ns, hostmaster, 0))
        return self._text(ns, hostmaster, serial)

    def _text(self, ns: dns.name.Name, hostmaster: dns.name.Name, serial: int) -> str:
        # dnspython writes the lines (relative names, escaping) in insertion order
        # (sorted=False), so the file reads in plan order and not DNSSEC order (w1, w10, w2).
        zone = dns.zone.Zone(self.origin)
        soa = SOA(
            _IN, dns.rdatatype.SOA, ns, hostmaster, serial, REFRESH, RETRY, EXPIRE, NEGATIVE_TTL
        )
        entries = [(self.origin, soa), (self.origin, NS(_IN, dns.rdatatype.NS, ns))]
        for name, rdata in [*entries, *self.entries]:
            zone.find_rdataset(name, rdata.rdtype, create=True).add(rdata, TTL)
        zone.check_origin()
        text = zone.to_text(sorted=False, relativize=True, want_origin=True)
        first, rest = text.split("\n", 1)
        return f"{first}\n$TTL {TTL}\n{rest}"


def render_zones(plan: Plan, serial: int | None = None) -> dict[str, str]:
    """BIND zone files of the lab: {zone name: text}, the forward zone first, then
    the ip6.arpa zones and the in-addr.arpa zones, each in address order."""
    if serial is not None and not 0 <= serial <= MAX_SERIAL:
        raise InputError(f"serial {serial} is not a 32-bit unsigned number")
    records = lab_records(plan)
    origin = _name(_domain(plan))
    ns = name_server(plan, records)
    hostmaster = dns.name.Name(("hostmaster", *origin.labels))

    forward = _Zone(origin)
    reverse: dict[dns.name.Name, _Zone] = {}
    for record in records:
        owner = _name(record.name)
        forward.add(owner, dns.rdata.from_text(_IN, rdtype(record.address), str(record.address)))
    for record in sorted(records, key=lambda r: (r.address.version == 4, int(r.address), r.name)):
        zone_name = reverse_zone(record.address)
        zone = reverse.setdefault(zone_name, _Zone(zone_name))
        ptr_owner = dns.reversename.from_address(str(record.address))
        zone.add(ptr_owner, PTR(_IN, dns.rdatatype.PTR, _name(record.name)))

    # Records went in by address, so the reverse zones are already in prefix order.
    zones = {origin: forward, **reverse}
    return {
        name.to_text(omit_final_dot=True): zone.render(ns, hostmaster, serial)
        for name, zone in zones.items()
    }


Learnt = dict[tuple[str, str], tuple[str, ...]]  # (node, interface) -> the kernel's addresses


def external_records(plan: Plan, learnt: Learnt | None = None) -> list[tuple[str, IPAddr]]:
    """(name relative to the user's own zone, address) of every node interface on an
    external network: the field notes' zone chunk for the real LAN's DNS server.

    Where the file gives the LAN's `prefix:`, from the plan; where the prefix is
    learnt at up, from `learnt` (a running lab's addresses): the global ones that
    carry the interface's planned identifier, the SLAAC addresses of its stable MAC.
    """
    out: list[tuple[str, IPAddr]] = []
    for node in plan.nodes:
        for iface in node.interfaces:
            if iface.external is None or iface.master is not None:
                continue
            ext = plan.network(iface.network).external
            found: list[IPAddr] = [a.ip for a in (*iface.ipv6_static, *iface.ipv6_slaac)]
            if ext is not None and ext.prefix is None:
                iid = int(iface.link_local.ip) & (2**64 - 1)
                live = (learnt or {}).get((node.name, iface.name), ())
                found += [
                    a.ip
                    for a in map(ipaddress.IPv6Interface, (x for x in live if ":" in x))
                    if int(a.ip) & (2**64 - 1) == iid and in_dns(a.ip)
                ]
            for address in sorted(set(found), key=int):
                if in_dns(address):
                    out.append((node.name, address))
    return out


def render_chunk(records: Iterable[tuple[str, IPAddr]]) -> str:
    """Zone file lines, as the field notes paste them into their own zone."""
    rows = list(records)
    width = max((len(name) for name, _ in rows), default=0) + 2
    return "".join(f"{name:<{width}}IN  {rdtype(a):<8}{a}\n" for name, a in rows)
