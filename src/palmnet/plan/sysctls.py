"""The kernel settings every node gets (DESIGN.md §2), decided once for all backends.

Keys are paths under /proc/sys (`net/ipv6/conf/all/accept_dad`). The netns
backend writes them from inside each node's namespace before its interfaces
exist; the LXD backend turns them into `linux.sysctl.*` keys, which LXC writes
before the container's init runs. Either way a node gets the same values.

The DAD profile ("fastdad" in reference/node-notes.md): router solicitations
without delay, retried after 1 s, then 2 s, then every 4 s (RFC 7559 backoff: a
router too busy to answer a 5,000-host lab at once was sent 76,504 RSs for
5,000 hosts with a retry every second, most of them dropped unread), and a
neighbour retransmit time of 100 ms per interface, so DAD takes 100 ms instead
of 1 s and still detects a duplicate. With `dad: false` in the topology, DAD is
off (accept_dad=0).

Bridging: a node's bridges (OpenWrt's br-lan) switch frames as a switch does.
On a machine where br_netfilter is loaded (Docker hosts) every new namespace
starts with net.bridge.bridge-nf-call-{iptables,ip6tables,arptables} = 1, and
the frames a router bridges then pass its IP firewall hooks, which OpenWrt
never does: a reflected (hairpin) connection was bridged right after its DNAT
and never met its SNAT. Every node with a bridge turns them off (the keys are
skipped where br_netfilter is not loaded).

MLD: nodes speak MLDv1 (`all.force_mld_version=1`): a lab bridge snoops MLD,
and a v1 report goes to the multicast routers only, where an MLDv2 report
(sent to ff02::16) is flooded to every port (O(ports) packets per host on a
big LAN).
"""

from __future__ import annotations

from palmnet.plan.model import InterfacePlan, NodePlan

DAD_RETRANS_MS = 100
MLD_VERSION = 1
MAX_ADDRESSES = 16
RS_MAX_INTERVAL = 4  # seconds between router solicitations at most


def conf_values(*, forwarding: bool, dad: bool) -> dict[str, int]:
    """net.ipv6.conf.SCOPE.* of a node (the same for all, default and each NIC)."""
    return {
        "forwarding": 1 if forwarding else 0,
        "accept_ra": 0 if forwarding else 1,
        "autoconf": 0 if forwarding else 1,
        "addr_gen_mode": 0,
        "use_tempaddr": 0,
        "max_addresses": MAX_ADDRESSES,
        "accept_dad": 1 if dad else 0,
        "dad_transmits": 1,
        "router_solicitation_delay": 0,
        "router_solicitation_interval": 1,
        "router_solicitation_max_interval": RS_MAX_INTERVAL,
        "router_solicitations": -1,
        "accept_redirects": 0 if forwarding else 1,
    }


# Keys the kernel reads only per interface (from the copy each interface takes of
# `default` when it is made): their `all` copy changes nothing. Not writing it
# matters at scale: the first write of a /proc/sys file in a new namespace takes
# about 50 us, and these were 3 of a host's 11.
PER_INTERFACE_ONLY = frozenset(
    (
        "router_solicitation_delay",
        "router_solicitation_interval",
        "router_solicitation_max_interval",
    )
)


def node_sysctls(node: NodePlan) -> dict[str, int]:
    """The node-wide settings: `default` (new interfaces copy it) and `all` where the
    kernel reads it. DAD runs where either `all` or the interface says so, so `all`
    is written only to turn it off. The bridge-nf keys only where the node has a
    bridge of its own (hosts switch nothing)."""
    conf = conf_values(forwarding=node.forwarding, dad=node.dad)
    out = {f"net/ipv6/conf/default/{k}": v for k, v in conf.items()}
    for k, v in conf.items():
        if k in PER_INTERFACE_ONLY or (k == "accept_dad" and node.dad):
            continue
        out[f"net/ipv6/conf/all/{k}"] = v
    if node.clat is not None:
        out.update(clat_sysctls())
    out["net/ipv6/conf/all/force_mld_version"] = MLD_VERSION  # `all` wins over interfaces
    out["net/ipv4/ip_forward"] = 1 if node.forwarding else 0
    if any(i.kind == "bridge" for i in node.interfaces):
        out.update(BRIDGE_NF)
    return out


def clat_sysctls() -> dict[str, int]:
    """A CLAT host forwards between its uplink and the translator's tun device, so it
    takes RAs as a forwarding node does (accept_ra 2) and answers neighbour
    solicitations for the CLAT's address (proxy_ndp), as clatd sets them up. Set
    before the interfaces exist: turning forwarding on later flushes the default
    routes learnt from RAs."""
    out = {}
    for scope in ("all", "default"):
        out[f"net/ipv6/conf/{scope}/forwarding"] = 1
        out[f"net/ipv6/conf/{scope}/accept_ra"] = 2
    out["net/ipv6/conf/all/proxy_ndp"] = 1
    return out


# br_netfilter's per-namespace switches: bridged frames never meet the IP hooks
BRIDGE_NF = {f"net/bridge/bridge-nf-call-{t}": 0 for t in ("iptables", "ip6tables", "arptables")}


def interface_sysctls(iface: InterfacePlan) -> dict[str, int]:
    """What one interface gets beyond the node's defaults.

    A bridge port carries no IPv6 of its own (no link-local, no DAD, no MLD);
    an interface that takes its address and default route from the upstream's
    RA on a forwarding node needs accept_ra 2 (as odhcp6c makes OpenWrt do).
    """
    conf = f"net/ipv6/conf/{iface.name}"
    if iface.master is not None:
        return {f"{conf}/disable_ipv6": 1}
    if iface.accept_ra:
        return {f"{conf}/accept_ra": 2, f"{conf}/autoconf": 1}
    return {}


def needs_dad_timer(iface: InterfacePlan) -> bool:
    """Interfaces with IPv6 of their own get the DAD retransmit time (there is no
    per-namespace default for it: net.ipv6.neigh.IFACE.retrans_time_ms)."""
    return iface.master is None
