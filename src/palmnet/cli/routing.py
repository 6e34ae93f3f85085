"""`palmnet route` and `palmnet neighbors`: a node's IPv6 routes and routing neighbours.

    palmnet route [--lab L] NODE [--format json]
        The kernel's main IPv6 table inside the node (what it forwards by),
        each route with its source: connected, static, ra, or for routes
        BIRD installed the protocol that learned them (rip, babel, ospf),
        its next hops (link-local, with the interface) and metrics, like
        `birdc show route`. Works on any node: a host shows its RA routes.

    palmnet neighbors [--lab L] NODE [--format json]
        The routing protocol's neighbours, as `birdc show rip|babel|ospf
        neighbors` gives them (and the BFD session of each, where BFD runs).
        Only for nodes with a `routing:` section (exit 2 otherwise).

BIRD is asked over its control socket in the lab's state directory (the
same one `birdc -s` would use), from the host.
"""

from __future__ import annotations

import json

import typer

from palmnet.cli.grid import Grid, print_grid
from palmnet.cli.options import FORMAT, LAB, Format
from palmnet.toolbox.route_query import neighbors_of, routes_of
from palmnet.toolbox.routes import NeighborRow, RouteRow

NODE = typer.Argument(..., help="The node.")


def _hops(row: RouteRow) -> tuple[str, str]:
    vias = "\n".join(h.via or "-" for h in row.nexthops) or "-"
    devs = "\n".join(h.dev or "-" for h in row.nexthops) or "-"
    return vias, devs


def _text(value: object) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def route_table(node: str, rows: list[RouteRow]) -> Grid:
    t = Grid(("PREFIX", "SOURCE", "VIA", "DEV", "METRIC", "COST"), f"IPv6 routes of {node}", False)
    for r in rows:
        via, dev = _hops(r)
        if r.type != "unicast":
            via = r.type
        t.add_row(r.prefix, r.source, via, dev, _text(r.metric), _text(r.cost))
    return t


def neighbor_table(node: str, protocol: str, rows: list[NeighborRow]) -> Grid:
    bfd = any(r.bfd is not None for r in rows)
    cols = ["ADDRESS", "INTERFACE", "STATE"]
    if protocol == "ospf3":
        cols += ["ROUTER ID", "DEAD IN"]
    elif protocol == "babel":
        cols += ["METRIC", "ROUTES", "EXPIRES"]
    else:
        cols += ["METRIC", "ROUTES", "SEEN"]
    cols += ["BFD"] if bfd else []
    t = Grid(cols, f"{protocol} neighbours of {node}", False)
    for r in rows:
        cells = [r.address, r.interface, r.state]
        if protocol == "ospf3":
            cells += [_text(r.router_id), _text(r.expires)]
        elif protocol == "babel":
            cells += [_text(r.metric), _text(r.routes), _text(r.expires)]
        else:
            cells += [_text(r.metric), _text(r.routes), _text(r.seen)]
        cells += [_text(r.bfd)] if bfd else []
        t.add_row(*cells)
    return t


def route(node: str = NODE, lab: str | None = LAB, fmt: Format = FORMAT) -> None:
    """The node's IPv6 routing table, with the source of each route."""
    rows = routes_of(lab, node)
    if fmt == Format.json:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        print_grid(route_table(node, rows))


def neighbors(node: str = NODE, lab: str | None = LAB, fmt: Format = FORMAT) -> None:
    """The routing protocol's neighbours of a router (RIPng, Babel, OSPFv3)."""
    from palmnet.lab import LabAPI

    rows = neighbors_of(lab, node)
    if fmt == Format.json:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        routing = LabAPI().plan_of(lab).node(node).routing
        print_grid(neighbor_table(node, routing.protocol if routing else "", rows))


def register(app: typer.Typer) -> None:
    """Add `palmnet route` and `palmnet neighbors` to the app."""
    app.command("route")(route)
    app.command("neighbors")(neighbors)
