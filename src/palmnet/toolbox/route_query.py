"""A running node's routes and routing neighbours, fetched through the Lab API.

`palmnet route` / `palmnet neighbors` and the web UI's node page show the same
rows: the kernel's main IPv6 table inside the node (`ip -6 -j route`, run from
the host in its network namespace) with each BIRD route's source from `show
route all`, and BIRD's neighbours, asked over its control socket in the lab's
state directory (the one `birdc -s` would use). toolbox/routes.py parses.
"""

from __future__ import annotations

import json
import subprocess

from palmnet.errors import InputError, LabError
from palmnet.lab import NodeHandle
from palmnet.toolbox.routes import (
    NEIGHBOR_COMMAND,
    BirdRoute,
    NeighborRow,
    RouteRow,
    bfd_states,
    bird_routes,
    neighbor_rows,
    route_rows,
)


def _ask_bird(handle: NodeHandle, command: str) -> list[tuple[str, str]]:
    """One command on the node's BIRD control socket, reached from the host."""
    from palmnet.services.bird import BirdControlError, control

    svc = handle.service("bird")
    try:
        reply = control(svc.host(svc.socket), command)  # type: ignore[attr-defined]
    except BirdControlError as exc:
        raise LabError(f"BIRD on {handle.name} does not answer ({exc})") from None
    errors = [text for code, text in reply if code.startswith(("8", "9"))]
    if errors:
        raise LabError(f"BIRD on {handle.name}: {command}: {'; '.join(errors)}")
    return reply


def _kernel_routes(handle: NodeHandle) -> list[dict[str, object]]:
    try:
        proc = handle.tool(["ip", "-6", "-j", "route", "show", "table", "main"], timeout=30)
    except subprocess.TimeoutExpired:
        raise LabError(f"ip route on node {handle.name} did not finish in time") from None
    if proc.returncode != 0:
        raise LabError(f"ip route on node {handle.name} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout or "[]")


def routes_of(lab: str | None, node_name: str) -> list[RouteRow]:
    """The node's routing table as rows (the Lab API's view for other verbs too)."""
    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        node = s.plan.node(node_name)
        handle = s.running_node(node_name)
        kernel = _kernel_routes(handle)
        bird: dict[str, BirdRoute] = {}
        if node.routing is not None and any(r.get("protocol") == "bird" for r in kernel):
            bird = bird_routes(_ask_bird(handle, "show route all"))
    return route_rows(kernel, bird)


def neighbors_of(lab: str | None, node_name: str) -> list[NeighborRow]:
    from dataclasses import replace

    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        node = s.plan.node(node_name)
        if node.routing is None:
            raise InputError(
                f"node '{node_name}' runs no routing protocol (no routing: section in the lab file)"
            )
        handle = s.running_node(node_name)
        protocol = node.routing.protocol
        rows = neighbor_rows(protocol, _ask_bird(handle, NEIGHBOR_COMMAND[protocol]))
        if node.routing.bfd_interval is not None:
            states = bfd_states(_ask_bird(handle, "show bfd sessions"))
            rows = [replace(r, bfd=states.get((r.address, r.interface), "none")) for r in rows]
    return rows
