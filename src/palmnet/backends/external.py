"""Checks of the machine for a plan's external networks, before any backend makes
anything (issue 16): the host interface each one names is there and is what the
file says. Shared by the backends (each joins the LAN its own way: netns veths or
macvlans, LXD `nictype: bridged` or `macvlan` NICs)."""

from __future__ import annotations

from palmnet.kernel.hostlinks import host_link, host_link_names
from palmnet.plan.model import ExternalPlan, Plan


def preflight(plan: Plan) -> list[tuple[tuple[str, ...], str]]:
    """Every external network's host interface is there and is what the file says."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for net in plan.external:
        ext = net.external
        assert ext is not None
        path = ("networks", net.name, "external", ext.kind)
        problem = _interface_problem(ext)
        if problem:
            problems.append((path, problem))
    return problems


def _interface_problem(ext: ExternalPlan) -> str | None:
    link = host_link(ext.parent)
    if link is None:
        if ext.kind == "bridge":
            bridges = [n for n in host_link_names() if (h := host_link(n)) and h.kind == "bridge"]
            known = ", ".join(bridges) or "none"
            return (
                f"this machine has no interface {ext.parent} (its bridges: {known}); "
                "palmnet joins an existing bridge and never creates one"
            )
        return f"this machine has no interface {ext.parent}"
    if ext.kind == "bridge" and link.kind != "bridge":
        return (
            f"{ext.parent} is not a bridge: bridge: names an existing host bridge (the "
            f"field notes' br0); to hang the nodes on {ext.parent} itself use macvlan: "
            f"{ext.parent}"
        )
    if ext.kind == "macvlan":
        if link.kind == "loopback":
            return f"{ext.parent} is the loopback interface: macvlan needs an Ethernet one"
        if link.master is not None:
            return (
                f"{ext.parent} is a port of {link.master}: its frames belong to that bridge; "
                f"use bridge: {link.master}"
            )
    return None
