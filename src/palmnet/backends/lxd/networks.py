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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from palmnet.backends.lxd import tags
from palmnet.backends.lxd.client import Lxd
from palmnet.errors import LabError
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal


def bridge_name(lab: str, network: str) -> str:
    return "pn" + hashlib.sha256(f"{lab}/{network}".encode()).hexdigest()[:11]


def profile_name(lab: str) -> str:
    return f"palmnet-{lab}"


def network_config(lab: str, network: str) -> dict[str, object]:
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
        },
    }


def _existing(lxd: Lxd) -> dict[str, dict]:
    return {n["name"]: n for n in lxd.get("networks", recursion=1)}


def create_networks(lxd: Lxd, plan: Plan, journal: Journal) -> None:
    """Every network of the plan that is not there yet (journalled before it is made)."""
    existing = _existing(lxd)
    wanted = []
    for net in plan.bridged:  # an external network is the machine's, never made here
        name = bridge_name(plan.lab, net.name)
        if name in existing:
            if tags.lab_of(existing[name]) != plan.lab:
                raise LabError(f"network {name} exists and is not lab {plan.lab}'s: not touched")
            continue
        wanted.append((net.name, name))
    journal.record_many(("lxd-network", name, None, {"network": n}) for n, name in wanted)
    for net_name, name in wanted:
        lxd.wait(
            lxd.call(
                "post", "networks", f"network {net_name}", json=network_config(plan.lab, net_name)
            )
        )
        if _disable_ipv6(name) != "1":
            lxd.wait(lxd.call("delete", f"networks/{name}", f"network {net_name}"))
            raise LabError(f"bridge {name}: LXD left IPv6 on in the host namespace; removed it")


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
