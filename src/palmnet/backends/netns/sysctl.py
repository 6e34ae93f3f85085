"""Per-namespace sysctls, written by a thread standing in that namespace.

/proc/sys/net shows the namespace of the task that opens it, so these are
written from inside `create_netns(setup=...)`, before any interface exists:
new interfaces copy `default`, and DAD is skipped only when both `all` and the
interface say so.

The DAD profile ("fastdad" in reference/node-notes.md): router solicitations
without delay, one per second at most, and a neighbour retransmit time of
100 ms per interface, so DAD takes 100 ms instead of 1 s and still detects a
duplicate. With `dad: false` in the topology, DAD is off (accept_dad=0).
"""

from __future__ import annotations

import contextlib

from palmnet.plan.model import InterfacePlan

DAD_RETRANS_MS = 100


def _write(path: str, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


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


def set_neigh_retrans(ifname: str, ms: int = DAD_RETRANS_MS) -> None:
    """DAD waits one neighbour retransmit time; there is no per-netns default for it."""
    _write(f"/proc/sys/net/ipv6/neigh/{ifname}/retrans_time_ms", ms)


def interface_sysctls(iface: InterfacePlan) -> None:
    """Per-interface settings, written from inside the node before the link is up.

    A bridge port carries no IPv6 of its own (no link-local, no DAD, no MLD);
    an interface that takes its address and default route from the upstream's
    RA on a forwarding node needs accept_ra 2 (as odhcp6c makes OpenWrt do).
    """
    conf = f"/proc/sys/net/ipv6/conf/{iface.name}"
    if iface.master is not None:
        _write(f"{conf}/disable_ipv6", 1)
        return
    set_neigh_retrans(iface.name)
    if iface.accept_ra:
        _write(f"{conf}/accept_ra", 2)
        _write(f"{conf}/autoconf", 1)
