"""`palmnet isp renumber` and the prefix view behind `palmnet ls --prefixes`.

`renumber` moves an ISP's delegation pool in a running lab and (by default)
nudges the routers down the chain until every host holds its new addresses
(lab/renumber.py says how). `prefix_rows` is what each router really holds:
its planned delegation next to the live one and each LAN's /64.
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import TYPE_CHECKING, Any

import typer

from palmnet.cli.options import FORMAT, LAB, Format

if TYPE_CHECKING:
    from palmnet.lab import LabSession, NodeHandle
    from palmnet.plan.model import NodePlan

NO_PREFIX = "no prefix delegated"


def _kernel_view(handle: NodeHandle, lans: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(dhcpcd's reject routes = delegations, global /64s on each LAN) inside the node."""
    rejects: list[str] = []
    proc = handle.tool(["ip", "-j", "-6", "route", "show", "proto", "dhcp"], timeout=10)
    try:
        for route in json.loads(proc.stdout or "[]"):
            if route.get("type") == "unreachable":
                rejects.append(str(ipaddress.IPv6Network(route["dst"], strict=False)))
    except (ValueError, KeyError):
        pass
    held: dict[str, list[str]] = {}
    proc = handle.tool(["ip", "-j", "-6", "addr", "show", "scope", "global"], timeout=10)
    try:
        for link in json.loads(proc.stdout or "[]"):
            if link.get("ifname") not in lans:
                continue
            for a in link.get("addr_info", []):
                if "local" not in a or a.get("tentative") or a.get("prefixlen") != 64:
                    continue
                net = ipaddress.IPv6Network(f"{a['local']}/64", strict=False)
                held.setdefault(link["ifname"], []).append(str(net))
    except (ValueError, KeyError):
        pass
    return rejects, held


def prefix_rows(lab: str | None) -> list[dict[str, Any]]:
    """One row per PD-requesting router: wan, planned and live delegation, LAN /64s,
    state "ok" or "no prefix delegated"."""
    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        return [_prefix_row(s, node) for node in s.plan.nodes if node.pd_client is not None]


def _prefix_row(s: LabSession, node: NodePlan) -> dict[str, Any]:
    from palmnet.lab.renumber import pd_state

    pd = node.pd_client
    assert pd is not None
    live: str | None = None
    lans = [a.interface for a in pd.assignments]
    rejects: list[str] = []
    held: dict[str, list[str]] = {}
    handle = s.node(node.name)
    if node.name not in s.stopped and handle.running():
        state = pd_state(handle)
        until = state.get("valid_until")
        if state.get("prefix") and isinstance(until, (int, float)) and until > time.time():
            live = str(state["prefix"])
        rejects, held = _kernel_view(handle, lans)
        if live is None and rejects:
            live = rejects[0]
    live_net = ipaddress.IPv6Network(live) if live else None
    lan_cells = []
    complete = live_net is not None
    for a in pd.assignments:
        inside = [
            n for n in held.get(a.interface, [])
            if live_net is not None and ipaddress.IPv6Network(n).subnet_of(live_net)
        ]  # fmt: skip
        if inside:
            lan_cells.append(f"{a.interface} {inside[0]}")
        else:
            lan_cells.append(f"{a.interface} -")
            complete = complete and a.lan is None
    return {
        "name": node.name,
        "wan": pd.wan,
        "planned": str(pd.delegated) if pd.delegated is not None else None,
        "delegated": live,
        "lans": lan_cells,
        "state": "ok" if complete else NO_PREFIX,
    }


def renumber(
    isp: str = typer.Argument(..., help="The isp node whose pool changes."),
    new_prefix: str = typer.Argument(..., help="Its new pool, e.g. 2001:db8:beef::/48."),
    lab: str | None = LAB,
    no_nudge: bool = typer.Option(
        False,
        "--no-nudge",
        help="Do not ask the routers to renew: each follows at its own T1 (returns at once).",
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", min=1.0, help="Seconds to wait for every host's new addresses."
    ),
    fmt: Format = FORMAT,
) -> None:
    """Renumber: the ISP delegates from NEW_PREFIX, every level and host follows."""
    from palmnet.lab import LabAPI
    from palmnet.lab.renumber import RenumberResult

    say = (lambda m: typer.echo(m, err=True)) if fmt == Format.table else None
    api = LabAPI(report=say)
    result = api.renumber(lab, isp, new_prefix, nudge=not no_nudge, timeout=timeout)
    assert isinstance(result, RenumberResult)
    if fmt == Format.json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    hosts = [s for s in result.hosts.values() if s is not None]
    tail = f"; every host in {max(hosts):.3f} s" if hosts else ""
    typer.echo(
        f"{result.isp}: {result.old_pool} -> {result.new_pool} in {result.seconds:.3f} s{tail}"
    )


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the app."""
    group = typer.Typer(
        name="isp", help="The upstream: prefix delegation pools.", no_args_is_help=True
    )
    group.command("renumber")(renumber)
    app.add_typer(group, name="isp")
