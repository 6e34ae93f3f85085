"""A node: addresses and their sources, routes, routing neighbours, daemons and their
last log lines, what a router serves (DHCP reservations, delegated prefix), and the
`audit` scorecard on demand (a job)."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from palmnet.errors import InputError, PalmnetError
from palmnet.lab import LabAPI, LiveNode
from palmnet.ui.form import form_of
from palmnet.ui.leases import Lease, parse_leases

if TYPE_CHECKING:
    from palmnet.ui.app import Ui
    from palmnet.ui.jobs import Job

LOG_LINES = 15
# The audit's checks (toolbox/audit/runner.py CHECK_NAMES), the quick ones first.
CHECKS = (
    "slaac",
    "default_route_ll",
    "rdnss_dnssl",
    "dhcpv6",
    "prefix_delegation",
    "icmpv6_essentials",
    "link_bounce",
    "restart_stable",
    "ra_flood",
    "nd_scan",
)


def _tail(path: Any, lines: int = LOG_LINES) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return list(deque((line.rstrip("\n") for line in handle), maxlen=lines))
    except OSError:
        return []


def _leases(handle: Any) -> list[Lease]:
    """The router's live DHCP leases (dnsmasq's lease file, seen from the host)."""
    try:
        svc = handle.service("dnsmasq")
        text = svc.host(svc.leases).read_text()
    except (PalmnetError, OSError, KeyError, AttributeError):
        return []
    return parse_leases(text)


def node_view(lab: str, name: str) -> dict[str, Any]:
    from palmnet.toolbox.route_query import neighbors_of, routes_of

    api = LabAPI()
    plan, live = api.ls(lab)
    planned = plan.node(name)
    node: LiveNode = next(n for n in live if n.name == name)
    running = node.state not in ("STOPPED", "ERROR")
    routes, neighbors, logs, problems, leases = [], [], {}, [], []
    if running:
        try:
            routes = routes_of(lab, name)
        except PalmnetError as exc:
            problems.append(f"routes: {exc}")
        if planned.routing is not None:
            try:
                neighbors = neighbors_of(lab, name)
            except PalmnetError as exc:
                problems.append(f"neighbours: {exc}")
        with api.session(lab) as s:
            handle = s.node(name)
            for svc in node.services:
                with contextlib.suppress(PalmnetError, OSError, KeyError):
                    logs[svc.name] = _tail(handle.service(svc.name).host_log)
            if any(svc.name == "dnsmasq" for svc in node.services):
                leases = _leases(handle)
    return {
        "plan": plan,
        "node": node,
        "planned": planned,
        "routes": routes,
        "neighbors": neighbors,
        "logs": logs,
        "problems": problems,
        "running": running,
        "leases": leases,
        "now": time.time(),
        "checks": CHECKS,
    }


def node_page(ui: Ui, request: Request) -> Response:
    lab, name = request.path_params["lab"], request.path_params["node"]
    return ui.page(request, "node.html", lab=lab, **node_view(lab, name))


def audit(ui: Ui, request: Request) -> Response:
    """Start `palmnet audit NODE` as a job; its page shows each check as it ends."""
    lab, name = request.path_params["lab"], request.path_params["node"]
    LabAPI().plan_of(lab).node(name)  # an unknown node is said now
    form = form_of(request)
    chosen = [c for c in CHECKS if form.get(f"check_{c}")]
    if not chosen:
        raise InputError("choose at least one check", key="checks")
    only = ",".join(chosen) if len(chosen) < len(CHECKS) else None

    def work(job: Job) -> str:
        from palmnet.toolbox.audit.model import format_seconds
        from palmnet.toolbox.audit.runner import CHECK_NAMES, run_audit

        def heard(result: Any) -> None:
            job.report(f"{result.check}: {result.verdict.value} ({format_seconds(result.seconds)})")

        card = run_audit(lab, name, only=only, report=heard)
        return card.render(CHECK_NAMES)

    job = ui.jobs.start("audit", f"audit {name}", lab, work)
    return RedirectResponse(f"/jobs/{job.id}", 303)


ROUTES = [
    ("/lab/{lab}/node/{node}", node_page, ["GET"]),
    ("/lab/{lab}/node/{node}/audit", audit, ["POST"]),
]
