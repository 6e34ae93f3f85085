"""A lab's networks as LXD-managed bridges, and its profile.

LXD needs its bridges in the machine's own namespace, so each one is made to
carry nothing of the host: no IPv4 or IPv6 address (LXD then sets
`disable_ipv6` on the bridge, so the host never takes the lab's RAs, and
runs no dnsmasq for it), no NAT, no LXD firewall rules, and never a real
interface as a port (`bridge.external_interfaces` is never set). A new bridge
has no port yet when LXD makes it, so no RA can reach it before
`disable_ipv6` is set; `create` checks it is set and removes the bridge if not.

Bridge names are `pn` + 11 hex digits of a hash of (lab, network): 13 bytes,
unique per lab on the machine, and the description names lab and network.

On an LXD cluster each lab network is one layer-2 segment across the members:
an LXD bridge on every member (made as LXD wants a clustered network: a pending
part on each member with `target=MEMBER`, then the network itself) joined by a
VXLAN tunnel of LXD's own (`tunnel.v.*`, the device `BRIDGE-v` on each member).
The tunnel uses a multicast group, not `local`/`remote` pairs: LXD 5.0 keeps
tunnel keys cluster-wide ("Config key "tunnel.v.local" may not be used as
member-specific key"), and a group is the one value that is the same on every
member; every member joins it and floods the segment's broadcast and unknown
frames to it, so RAs, ND, DAD, DHCP and routing protocols cross members as on one
bridge. Group and VXLAN id derive from (lab, network), and a VXLAN id that another
network of the cluster already uses is refused. OVN would give the same segment
with unicast tunnels but needs ovn-central and ovn-host on every member: heavier
than LXD's bridge on a two-core machine, and not needed for one layer-2 segment.
The bridge's MTU is the lab's link MTU (plan/spanning.py: 1450 for VXLAN over
a 1500-byte underlay). `PALMNET_LXD_TUNNEL_INTERFACE` names the members'
underlay interface when the multicast route alone does not.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Iterable, Sequence

from palmnet.backends.lxd import tags
from palmnet.backends.lxd.client import Lxd
from palmnet.errors import LabError
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal


def bridge_name(lab: str, network: str) -> str:
    return "pn" + hashlib.sha256(f"{lab}/{network}".encode()).hexdigest()[:11]


def profile_name(lab: str) -> str:
    return f"palmnet-{lab}"


TUNNEL = "v"  # LXD names the tunnel device BRIDGE-v: 15 bytes, the kernel's limit


def vxlan_id(lab: str, network: str) -> int:
    """The network's VXLAN id (VNI), 24 bits of a hash of (lab, network); 0 is not used."""
    digest = hashlib.sha256(f"vxlan/{lab}/{network}".encode()).digest()
    return int.from_bytes(digest[:3], "big") or 1


def vxlan_group(lab: str, network: str) -> str:
    """The network's multicast group, in the organisation-local scope 239.0.0.0/8."""
    digest = hashlib.sha256(f"group/{lab}/{network}".encode()).digest()
    return str(ipaddress.IPv4Address(bytes([239, *digest[:3]])))


def tunnel_config(lab: str, network: str, mtu: int | None) -> dict[str, str]:
    """The keys that span a bridge across cluster members."""
    out = {
        f"tunnel.{TUNNEL}.protocol": "vxlan",
        f"tunnel.{TUNNEL}.id": str(vxlan_id(lab, network)),
        f"tunnel.{TUNNEL}.group": vxlan_group(lab, network),
    }
    if os.environ.get("PALMNET_LXD_TUNNEL_INTERFACE"):
        out[f"tunnel.{TUNNEL}.interface"] = os.environ["PALMNET_LXD_TUNNEL_INTERFACE"]
    if mtu:
        out["bridge.mtu"] = str(mtu)
    return out


def network_config(
    lab: str, network: str, extra: dict[str, str] | None = None
) -> dict[str, object]:
    return {
        "name": bridge_name(lab, network),
        "type": "bridge",
        "description": f"palmnet lab {lab}, network {network}",
        "config": {
            "ipv4.address": "none",
            "ipv6.address": "none",
            "ipv4.nat": "false",
            "ipv6.nat": "false",
            "ipv4.firewall": "false",
            "ipv6.firewall": "false",
            **tags.lab_config(lab, network=network),
            **(extra or {}),
        },
    }


def _existing(lxd: Lxd) -> dict[str, dict]:
    return {n["name"]: n for n in lxd.get("networks", recursion=1)}


def create_networks(
    lxd: Lxd,
    plan: Plan,
    journal: Journal,
    members: Sequence[str] = (),
    mtu: int | None = None,
) -> None:
    """Every network of the plan that is not there yet (journalled before it is made);
    on a cluster (`members`), spanning them all with a VXLAN tunnel."""
    existing = _existing(lxd)
    wanted = []
    for net in plan.bridged:  # an external network is the machine's, never made here
        name = bridge_name(plan.lab, net.name)
        if name in existing:
            if tags.lab_of(existing[name]) != plan.lab:
                raise LabError(f"network {name} exists and is not lab {plan.lab}'s: not touched")
            continue
        wanted.append((net.name, name))
    if members:
        _check_vxlan_ids(plan.lab, [n for n, _ in wanted], existing)
    journal.record_many(("lxd-network", name, None, {"network": n}) for n, name in wanted)
    for net_name, name in wanted:
        if members:
            _pending(lxd, name, net_name, members)
            extra = tunnel_config(plan.lab, net_name, mtu)
        else:
            extra = {"bridge.mtu": str(mtu)} if mtu else {}
        body = network_config(plan.lab, net_name, extra)
        lxd.wait(lxd.call("post", "networks", f"network {net_name}", json=body))
        if members:
            continue  # the bridges are in the members' namespaces, where LXD sets it
        if _disable_ipv6(name) != "1":
            lxd.wait(lxd.call("delete", f"networks/{name}", f"network {net_name}"))
            raise LabError(f"bridge {name}: LXD left IPv6 on in the host namespace; removed it")


def _pending(lxd: Lxd, name: str, network: str, members: Sequence[str]) -> None:
    """A clustered network's member parts (no member-specific keys: none are needed)."""
    lxd.run_all(
        (
            "post",
            "networks",
            f"network {network} on {member}",
            {"json": {"name": name, "type": "bridge", "config": {}}, "params": {"target": member}},
        )
        for member in members
    )


def _check_vxlan_ids(lab: str, networks: Sequence[str], existing: dict[str, dict]) -> None:
    """A VXLAN id is a segment: two networks with one id would be one layer 2."""
    used = {
        str((data.get("config") or {}).get(f"tunnel.{TUNNEL}.id")): name
        for name, data in existing.items()
    }
    for net in networks:
        other = used.get(str(vxlan_id(lab, net)))
        if other is not None:
            raise LabError(
                f"network {net}: VXLAN id {vxlan_id(lab, net)} is already network {other}'s "
                "on this cluster: rename the network or the lab"
            )


def _disable_ipv6(ifname: str) -> str:
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6") as f:
            return f.read().strip()
    except FileNotFoundError:
        return "1"  # no IPv6 on this host at all


def ensure_profile(lxd: Lxd, lab: str, pool: str, journal: Journal) -> str:
    """The lab's profile: the root disk on the pool, and the lab's tag."""
    name = profile_name(lab)
    if lxd.exists(f"profiles/{name}"):
        return name
    journal.record("lxd-profile", name)
    lxd.call(
        "post",
        "profiles",
        f"profile {name}",
        json={
            "name": name,
            "description": f"palmnet lab {lab}",
            "config": tags.lab_config(lab),
            "devices": {"root": {"type": "disk", "path": "/", "pool": pool}},
        },
    )
    return name


def lab_networks(lxd: Lxd, lab: str) -> list[str]:
    return [n for n, data in _existing(lxd).items() if tags.lab_of(data) == lab]


def lab_profiles(lxd: Lxd, lab: str) -> list[str]:
    return [p["name"] for p in lxd.get("profiles", recursion=1) if tags.lab_of(p) == lab]


def delete_networks(lxd: Lxd, names: Iterable[str]) -> None:
    lxd.run_all(
        ("delete", f"networks/{name}", f"network {name}", {})
        for name in names
        if lxd.exists(f"networks/{name}")
    )


def delete_profiles(lxd: Lxd, names: Iterable[str]) -> None:
    for name in names:
        if lxd.exists(f"profiles/{name}"):
            lxd.call("delete", f"profiles/{name}", f"profile {name}")
