"""A lab's topology picture (nodes, networks, live state) and its `ls` table."""

from __future__ import annotations

import os
from html import escape
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from palmnet.lab import LabAPI
from palmnet.ui import graph

if TYPE_CHECKING:
    from palmnet.ui.app import Ui


def link_states(lab: str) -> tuple[dict[tuple[str, str], str], list[Any]]:
    """(node, interface) -> link state, and the links (links/control.py); empty when
    the links cannot be read (not root)."""
    if os.geteuid() != 0:
        return {}, []
    from palmnet.links.control import LinkControl

    with LabAPI().session(lab) as s:
        control = LinkControl(s.plan, s.switch())
    rows = control.status(only_failed=True)
    return graph.port_states(rows), rows


def lab_view(lab: str) -> dict[str, Any]:
    """What the topology page shows: elements for the picture, the nodes' states."""
    api = LabAPI()
    plan, live = api.ls(lab)
    ports, links = link_states(lab)
    states = {n.name: n.state for n in live}
    return {
        "plan": plan,
        "live": live,
        "links": links,
        "elements": graph.elements(plan, states, ports, prefix=f"/lab/{lab}/node/"),
        "summary": api.summary(lab),
    }


def topology(ui: Ui, request: Request) -> Response:
    lab = request.path_params["lab"]
    return ui.page(request, "topology.html", lab=lab, **lab_view(lab))


def graph_json(ui: Ui, request: Request) -> Response:
    lab = request.path_params["lab"]
    view = lab_view(lab)
    return JSONResponse({"lab": lab, "elements": view["elements"]})


def ls_page(ui: Ui, request: Request) -> Response:
    lab = request.path_params["lab"]
    plan, live = LabAPI().ls(lab)
    return ui.page(request, "ls.html", lab=lab, plan=plan, live=live, is_global=graph.is_global)


def ls_json(ui: Ui, request: Request) -> Response:
    lab = request.path_params["lab"]
    _, live = LabAPI().ls(lab)
    return JSONResponse(
        [
            {
                "name": n.name,
                "kind": n.kind,
                "state": n.state,
                "interfaces": [
                    {"name": i.name, "network": i.network, "ipv4": i.ipv4, "ipv6": i.ipv6}
                    for i in n.interfaces
                ],
            }
            for n in live
        ]
    )


def alive(ui: Ui, request: Request) -> Response:
    """What every page of a lab polls: nothing while the lab runs, a banner once gone."""
    lab = request.path_params["lab"]
    if lab in LabAPI().labs():
        return HTMLResponse("")
    return HTMLResponse(
        f'<div class="note error" id="gone-banner">Lab {escape(lab)} is gone: it is not '
        'running any more (taken down). <a href="/">Back to the running labs</a></div>'
    )


ROUTES = [
    ("/lab/{lab}/alive", alive, ["GET"]),
    ("/lab/{lab}", topology, ["GET"]),
    ("/lab/{lab}/graph.json", graph_json, ["GET"]),
    ("/lab/{lab}/ls", ls_page, ["GET"]),
    ("/lab/{lab}/ls.json", ls_json, ["GET"]),
]
