"""Continuity: the GUAs come back after the link goes down and up, and a
restart gives the node the very addresses it had (DNS needs no churn).

Two link bounces, the way a device meets them:
- carrier: the cable is pulled. The outer veth end in the lab's hidden
  namespace goes down and up; the node sees NO-CARRIER, keeps its addresses
  (the kernel keeps them across carrier loss) and runs DAD again on return.
- admin: `ip link set dev down/up` in the node, as a suspend or a network
  manager does. The kernel drops the SLAAC addresses and routes; the node
  must solicit an RA and form them again (the systemd bug of the field notes).
  Skipped where palmnet configured static addresses or routes on the link:
  a plain Linux router does not restore those, palmnet does at start.

Only preferred addresses are expected back. A deprecated one (preferred
lifetime 0: the old prefix after a renumbering) is on its way out: the RA that
answers the node's RS no longer offers it, so it is not formed again, and a
restart forgets it. Both checks name the deprecated ones they leave out.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from palmnet.kernel.dump import dump_links
from palmnet.plan.model import InterfacePlan
from palmnet.toolbox.audit.context import (
    AuditContext,
    NetlinkBell,
    addressable,
    parse_ip_addr,
)
from palmnet.toolbox.audit.model import Outcome


def _globals(ctx: AuditContext, iface: str) -> set[tuple[str, int]]:
    """Preferred global addresses on `iface`: the ones that must come back."""
    return {
        (str(a.address), a.prefixlen)
        for a in ctx.addresses(None, iface)
        if a.scope == "global" and a.usable and "deprecated" not in a.flags
    }


def _deprecated(ctx: AuditContext, iface: str | None = None) -> list[str]:
    """Deprecated IPv6 addresses (`iface`, else all but loopback): expected to go."""
    return sorted(
        str(a)
        for a in ctx.addresses(None, iface)
        if a.interface != "lo" and a.usable and "deprecated" in a.flags
    )


def _expected_to_go(deprecated: list[str]) -> str:
    if not deprecated:
        return ""
    return f"; {', '.join(deprecated)} deprecated, expected to go, not back"


def _carrier(ctx: AuditContext, iface: str) -> bool:
    links = ctx.ip_json(None, "link", "show", "dev", iface)
    return bool(links) and "LOWER_UP" in links[0].get("flags", [])


def _bounced_interface(ctx: AuditContext) -> InterfacePlan | None:
    """The link to bounce: the one the stimulus shares, else the first with a GUA."""
    candidates = addressable(ctx.target)
    if ctx.target_if is not None:
        candidates = [ctx.target_if, *[i for i in candidates if i != ctx.target_if]]
    for iface in candidates:
        if _globals(ctx, iface.name):
            return iface
    return None


def _ports(ctx: AuditContext, iface: InterfacePlan) -> list[str]:
    """The switch ports behind an interface (a bridge inside the node: its ports')."""
    switch = ctx.session.switch()
    names = iface.ports if iface.kind == "bridge" else (iface.name,)
    return [p for n in names if (p := switch.port(ctx.target.name, n)) is not None]


def _show(addresses: set[tuple[str, int]]) -> str:
    return ", ".join(sorted(f"{a}/{p}" for a, p in addresses))


def link_bounce(ctx: AuditContext) -> Outcome:
    iface = _bounced_interface(ctx)
    if iface is None:
        return Outcome.na("the node holds no global address to lose")
    name = iface.name
    before = _globals(ctx, name)
    old = _deprecated(ctx, name)
    everything = _all_addresses(ctx)
    deadline = ctx.options.deadline
    outers = _ports(ctx, iface)
    parts: list[str] = []

    def carrier_down() -> None:
        for outer in outers:
            ctx.switch_ip("link", "set", "dev", outer, "down", port=outer)

    def carrier_up() -> None:
        for outer in outers:
            ctx.switch_ip("link", "set", "dev", outer, "up", port=outer)

    def admin(state: str) -> Callable[[], None]:
        return lambda: ctx.run(None, ["ip", "link", "set", "dev", name, state]).check_returncode()

    phases = [("carrier off/on at the switch", carrier_down, carrier_up)]
    static_routes = [r for r in ctx.target.routes if r.dev == name]
    if iface.ipv6_static or iface.ipv4_static or static_routes or iface.kind != "veth":
        skipped = "; link down/up in the node skipped (static addresses or routes on the link)"
    else:
        skipped = ""
        phases.append(("link down/up in the node", admin("down"), admin("up")))
    for what, down, up in phases:
        with NetlinkBell(ctx.netns()) as bell:
            try:
                down()
                lost = bell.wait(lambda: not _carrier(ctx, name), deadline)
                dropped = len(before - _globals(ctx, name))
            finally:
                up()
            if lost is None:
                return Outcome.failed(f"{what}: {name} kept its carrier")
            took = bell.wait(
                lambda: _carrier(ctx, name) and before <= _globals(ctx, name), deadline
            )
            if took is None:
                gone = _show(before - _globals(ctx, name)) or "the carrier"
                return Outcome.failed(
                    "; ".join([*parts, f"{what}: {gone} not back on {name} after {deadline:g} s"])
                )
            # The node as it was (DHCPv4 leases too) before the next phase or check.
            rest = bell.wait(lambda: everything <= _all_addresses(ctx), deadline)
        text = f"{what}: {dropped} of {len(before)} dropped, all back in {took:.2f} s"
        if rest is None:
            text += f" (but {_diff(everything, _all_addresses(ctx))} after {deadline:g} s)"
        elif rest > 0.01:
            text += f" (the other addresses in {took + rest:.2f} s)"
        parts.append(text)
    answer = ""
    if ctx.stimulus is not None:
        gua = ctx.global_address(None, name)
        rtt = ctx.ping(ctx.stimulus.node, gua, ctx.stimulus.iface.name) if gua else None
        answer = f"; {gua} {'answers' if rtt is not None else 'does NOT answer'} ping6"
        if rtt is None:
            return Outcome.failed(
                f"{_show(before)} on {name}: {'; '.join(parts)}{skipped}{answer}"
                + _expected_to_go(old)
            )
    return Outcome.passed(
        f"{_show(before)} on {name}: {'; '.join(parts)}{skipped}{answer}" + _expected_to_go(old)
    )


def _all_addresses(ctx: AuditContext) -> set[tuple[str, str]]:
    """(interface, address/len) of every usable IPv4 and preferred IPv6 address,
    loopback aside."""
    data = ctx.ip_json(None, "addr", "show")
    out = {
        (a.interface, str(a))
        for a in parse_ip_addr(data)
        if a.usable and "deprecated" not in a.flags
    }
    for link in data:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info:
                out.add((link.get("ifname", ""), f"{info['local']}/{info.get('prefixlen', 32)}"))
    return {(i, a) for i, a in out if i != "lo" and not ipaddress.ip_interface(a).ip.is_loopback}


def _diff(before: set[tuple[str, str]], after: set[tuple[str, str]]) -> str:
    parts = []
    if before - after:
        parts.append("lost " + ", ".join(f"{a} ({i})" for i, a in sorted(before - after)))
    if after - before:
        parts.append("new " + ", ".join(f"{a} ({i})" for i, a in sorted(after - before)))
    return "; ".join(parts)


def _switch_links(path: str) -> set[str]:
    return {link.name for link in dump_links(path).values()}


def _restart(ctx: AuditContext) -> None:
    """`LabAPI.restart`, with a wait between its stop and its start.

    Removing a node destroys its veth pairs in the kernel's own time (a
    workqueue): a start right after the stop can find the old ports still on
    the switch and fail to add them again (EEXIST). So: stop, wait on the
    switch's netlink until the node's ports are gone, start.
    """
    switch = ctx.session.switch()
    ports = {p for (node, _), p in switch.ports.items() if node == ctx.target.name}
    netns = switch.netns_of(next(iter(ports))) if ports else switch.netns
    with NetlinkBell(netns) as bell:
        ctx.api.stop(ctx.lab, ctx.target.name)
        bell.wait(lambda: not ports & _switch_links(netns), ctx.options.deadline)
    ctx.api.start(ctx.lab, ctx.target.name)
    ctx.forget_handles()


def restart_stable(ctx: AuditContext) -> Outcome:
    before = _all_addresses(ctx)
    old = _deprecated(ctx)
    start = time.monotonic()
    _restart(ctx)
    restarted = time.monotonic() - start
    ctx.forget_adverts()
    # DHCP leases and late SLAAC addresses may follow the start: wait for them all.
    with NetlinkBell(ctx.netns()) as bell:
        took = bell.wait(lambda: before <= _all_addresses(ctx), ctx.options.deadline)
    after = _all_addresses(ctx)
    if took is None or after != before:
        return Outcome.failed(
            f"restart took {restarted:.2f} s; afterwards {_diff(before, after)}"
            + (f" ({ctx.options.deadline:g} s after the start)" if took is None else "")
            + _expected_to_go(old)
        )
    shown = sorted(a.split("/")[0] for _, a in before if not a.startswith("fe80:"))
    return Outcome.passed(
        f"restart took {restarted:.2f} s; the same {len(before)} addresses"
        f" {took:.2f} s after it ({', '.join(shown)} and link-locals)" + _expected_to_go(old)
    )
