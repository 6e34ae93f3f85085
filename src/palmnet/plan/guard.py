"""Guards on a node's interfaces on an external network (issue 16).

A lab on someone's real LAN is a guest there: nothing in it may announce itself as
that LAN's router or DHCP server, nor speak a routing protocol to it. RA guard in
the spirit of RFC 6105 and a DHCP guard, done at the lab's own ports: one nftables
table per node, in the node's namespace, named with the lab (`palmnet_LAB_guard`)
and touched by nothing else (OpenWrt's fw4 flushes only `inet fw4`).

The hook is netdev `egress` on the interface (Linux 5.16): every frame the node
sends there passes it, also those of packet sockets that skip the IP stack (a DHCP
server's raw replies), and forwarded ones. Dropped when leaving through it:

- ICMPv6 router advertisements (134), unless the interface says `advertise: true`
  (then `plan` warns), and redirects (137): only the LAN's router may send them;
- DHCPv6 server and relay replies (UDP source port 547) and DHCPv4 server and relay
  replies (UDP source port 67);
- RIPng (UDP 521), RIPv2 (UDP 520), Babel (UDP 6696), OSPF (IP protocol 89,
  both families), BFD (UDP 3784, 3785, 4784).

- every VLAN-tagged frame: 802.1Q (0x8100), 802.1ad (0x88a8: QinQ's outer tag) and
  the pre-standard QinQ tags 0x9100 and 0x9200, whatever they carry. The rules
  above match on the frame's protocol, so an RA inside a tag slipped past them
  (scapy's `Ether()/Dot1Q(vlan=5)/IPv6()/ICMPv6ND_RA()` from a node reached the
  LAN). Rather than look inside one or two tags for each thing dropped, the guard
  drops the tag itself, because an external network promises a node an untagged
  port on the LAN, as LXD's `nictype: bridged` without `vlan:` does: palmnet has
  no VLANs, and a frame that picks its own VLAN on someone's LAN is one that
  lab could not send by plugging in there (a VLAN hop past what the LAN's switch
  gives that port). `ether type` sees the tag whether it is in the frame's bytes
  (a packet socket) or in its metadata (a VLAN device on the port: nft puts it
  back for the match). It comes first: a tagged frame counts there.

What passes: neighbour discovery (NS, NA, DAD), router solicitations (SLAAC), MLD,
DHCP client messages (to ports 547 and 67) and every other untagged packet. Each
rule counts what it drops (`nft list table netdev palmnet_LAB_guard` in the node).
"""

from __future__ import annotations

from palmnet.plan.model import InterfacePlan, NodePlan

TAGGED_RULE = ("tagged", "ether type { 8021q, 8021ad, 0x9100, 0x9200 }")
RULES_ALWAYS = (
    ("redirect", "icmpv6 type nd-redirect"),
    ("dhcpv6-server", "udp sport 547"),
    ("dhcpv4-server", "udp sport 67"),
    ("ripng", "udp dport 521"),
    ("rip", "udp dport 520"),
    ("babel", "udp dport 6696"),
    ("ospf6", "meta protocol ip6 meta l4proto 89"),
    ("ospf4", "meta protocol ip meta l4proto 89"),
    ("bfd", "udp dport { 3784, 3785, 4784 }"),
)
RA_RULE = ("ra", "icmpv6 type nd-router-advert")


def guard_table(lab: str) -> str:
    """The node's guard table name: the lab's, nft's identifier characters."""
    return f"palmnet_{lab.replace('-', '_')}_guard"


def guarded(node: NodePlan) -> tuple[InterfacePlan, ...]:
    """Every interface on an external network, a port of a bridge inside the node too
    (OpenWrt's LAN port: the bridge's frames leave through it)."""
    return tuple(i for i in node.interfaces if i.external is not None)


def guard_ruleset(lab: str, node: NodePlan) -> str | None:
    """The nft text of the node's guards (None: the node has no external interface).
    Loaded with `nft -f`: it replaces the table as one transaction."""
    ifaces = guarded(node)
    if not ifaces:
        return None
    table = guard_table(lab)
    out = [f"table netdev {table}", f"delete table netdev {table}", f"table netdev {table} {{"]
    for i in ifaces:
        out.append(f"\tchain {_chain(i.name)} {{")
        out.append(f'\t\ttype filter hook egress device "{i.name}" priority 0; policy accept;')
        lifted = () if i.advertise else (RA_RULE,)
        rules = (TAGGED_RULE, *lifted, *RULES_ALWAYS)
        for what, match in rules:
            out.append(f'\t\t{match} counter drop comment "{what}"')
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def _chain(ifname: str) -> str:
    """A chain name from an interface name (kernel names may hold '.' and '-')."""
    return "guard_" + "".join(c if c.isalnum() or c == "_" else "_" for c in ifname)
