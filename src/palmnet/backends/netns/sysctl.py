"""Per-namespace sysctls, written by a thread standing in that namespace.

/proc/sys/net shows the namespace of the task that opens it, so these are
written from inside `create_netns(setup=...)`, before any interface exists:
new interfaces copy `default`, and DAD is skipped only when both `all` and the
interface say so.

The DAD profile ("fastdad" in reference/node-notes.md): router solicitations
without delay, one per second at most, and a neighbour retransmit time of
100 ms per interface, so DAD takes 100 ms instead of 1 s and still detects a
duplicate. With `dad: false` in the topology, DAD is off (accept_dad=0).

MLD: nodes speak MLDv1 (`all.force_mld_version=1`). The lab's bridges snoop
MLD (build.py): a v1 report goes to the multicast routers only, where the
bridge floods an MLDv2 report (sent to ff02::16) to every port, which made
a host's bring-up cost O(ports) packets on a big LAN.

A new namespace starts with the same values every time (the kernel's
compiled defaults, or a copy of the creator's, per
net.core.devconf_inherit_init_net): `apply_new_netns` reads them once per
process and writes only what differs, 5-7 files per node instead of ~30.
"""

from __future__ import annotations

import contextlib
import os

from palmnet.plan.model import InterfacePlan

DAD_RETRANS_MS = 100
MLD_VERSION = 1

_template: dict[str, str] = {}  # key -> value a namespace starts with (read once)


def _write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 256).decode().strip()
    finally:
        os.close(fd)


def node_sysctls(*, forwarding: bool, dad: bool) -> dict[str, str | int]:
    """The IPv6/IPv4 settings every node gets, `all` and `default` alike."""
    conf = {
        "forwarding": 1 if forwarding else 0,
        "accept_ra": 0 if forwarding else 1,
        "autoconf": 0 if forwarding else 1,
        "addr_gen_mode": 0,
        "use_tempaddr": 0,
        "max_addresses": 16,
        "accept_dad": 1 if dad else 0,
        "dad_transmits": 1,
        "router_solicitation_delay": 0,
        "router_solicitation_interval": 1,
        "router_solicitation_max_interval": 1,
        "router_solicitations": -1,
        "accept_redirects": 0 if forwarding else 1,
    }
    out: dict[str, str | int] = {}
    for scope in ("all", "default"):
        for key, value in conf.items():
            out[f"net/ipv6/conf/{scope}/{key}"] = value
    out["net/ipv6/conf/all/force_mld_version"] = MLD_VERSION  # `all` wins over interfaces
    out["net/ipv4/ip_forward"] = 1 if forwarding else 0
    return out


def switch_sysctls() -> dict[str, str | int]:
    """The lab's hidden namespace: bridges and ports carry no IPv6 of their own."""
    return {"net/ipv6/conf/all/disable_ipv6": 1, "net/ipv6/conf/default/disable_ipv6": 1}


def apply_sysctls(values: dict[str, str | int]) -> None:
    """Write sysctls of the calling thread's network namespace."""
    for key, value in values.items():
        # Older kernels lack router_solicitation_max_interval: skip what is not there.
        with contextlib.suppress(FileNotFoundError):
            _write(f"/proc/sys/{key}", value)


def apply_new_netns(values: dict[str, str | int]) -> None:
    """Like apply_sysctls, in a namespace just made (nothing written in it yet):
    only the values that differ from what every new namespace starts with."""
    for key in values:
        if key not in _template:
            _template[key] = _read(f"/proc/sys/{key}") or ""
    apply_sysctls({k: v for k, v in values.items() if _template[k] != str(v)})


def set_neigh_retrans(ifname: str, ms: int = DAD_RETRANS_MS) -> None:
    """DAD waits one neighbour retransmit time; there is no per-netns default for it.

    build.py sets it by netlink (Rtnl.set_neigh_retrans); this is the file way.
    """
    _write(f"/proc/sys/net/ipv6/neigh/{ifname}/retrans_time_ms", ms)


def interface_conf(iface: InterfacePlan) -> dict[str, str | int]:
    """Per-interface /proc settings, to write from inside the node before the link is up.

    A bridge port carries no IPv6 of its own (no link-local, no DAD, no MLD);
    an interface that takes its address and default route from the upstream's
    RA on a forwarding node needs accept_ra 2 (as odhcp6c makes OpenWrt do).
    The neighbour retransmit time (DAD) is set by netlink, see `needs_retrans`.
    """
    conf = f"net/ipv6/conf/{iface.name}"
    if iface.master is not None:
        return {f"{conf}/disable_ipv6": 1}
    if iface.accept_ra:
        return {f"{conf}/accept_ra": 2, f"{conf}/autoconf": 1}
    return {}


def needs_retrans(iface: InterfacePlan) -> bool:
    """Interfaces with IPv6 of their own get the DAD retransmit time."""
    return iface.master is None


def interface_sysctls(iface: InterfacePlan) -> None:
    """All per-interface settings by file, from inside the node (before link up)."""
    apply_sysctls(interface_conf(iface))
    if needs_retrans(iface):
        set_neigh_retrans(iface.name)
