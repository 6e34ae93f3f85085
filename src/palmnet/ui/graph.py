"""A lab as a graph for the topology page: nodes, networks and the ports between them.

Pure: from the stored plan, the live nodes (`LabAPI.ls`) and the link states
(`LinkControl.status`) to cytoscape's element list. Networks are nodes of the
graph too (a bridge with many ports is a hub, as on a drawn network diagram),
labelled with the prefixes planned on them; each node interface plugged into a
network is an edge, coloured by its link's state. The page lays the graph out
with cytoscape's force-directed layout (cose).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from palmnet.plan.model import InterfacePlan, Plan

Element = dict[str, Any]


def network_prefixes(plan: Plan) -> dict[str, list[str]]:
    """The prefixes on each network: advertised /64s, static and delegated subnets,
    IPv4 subnets; link-local left out."""
    out: dict[str, list[str]] = {n.name: [] for n in plan.networks}
    for node in plan.nodes:
        for iface in node.interfaces:
            if iface.master is not None or iface.network not in out:
                continue
            seen = out[iface.network]
            for prefix in _prefixes(iface):
                if prefix not in seen:
                    seen.append(prefix)
    return out


def _prefixes(iface: InterfacePlan) -> Iterable[str]:
    yield from (str(p) for p in iface.ra_prefixes)
    statics: tuple[ipaddress.IPv6Interface | ipaddress.IPv4Interface, ...] = (
        *iface.ipv6_static,
        *iface.ipv6_delegated,
        *iface.ipv4_static,
    )
    for address in statics:
        if not address.ip.is_link_local:
            yield str(address.network)


def elements(
    plan: Plan,
    live: Mapping[str, str],
    ports: Mapping[tuple[str, str], str],
    prefix: str = "",
) -> list[Element]:
    """Cytoscape elements.

    `live`: node -> state (RUNNING, DEGRADED, STOPPED, ERROR); `ports`:
    (node, interface) -> link state (`up`, `down`, `loss 30%`, `blackhole`...);
    `prefix`: where node pages live (a click on a node opens prefix + name).
    """
    out: list[Element] = []
    prefixes = network_prefixes(plan)
    failed_networks = {
        net
        for (node, iface), state in ports.items()
        if state != "up"
        for net in _network_of(plan, node, iface)
    }
    for net in plan.networks:
        label = "\n".join([net.name, *prefixes.get(net.name, [])])
        state = "failed" if net.name in failed_networks else "up"
        out.append(
            {"data": {"id": f"net:{net.name}", "label": label, "kind": "network", "state": state}}
        )
    for node in sorted(plan.nodes, key=lambda n: _natural(n.name)):
        state = live.get(node.name, "GONE")
        out.append(
            {
                "data": {
                    "id": f"node:{node.name}",
                    "label": node.name,
                    "kind": node.kind,
                    "state": state.lower(),
                    "href": prefix + node.name,
                }
            }
        )
        for iface in node.veths:
            link = ports.get((node.name, iface.name), "up")
            out.append(
                {
                    "data": {
                        "id": f"port:{node.name}:{iface.name}",
                        "source": f"node:{node.name}",
                        "target": f"net:{iface.network}",
                        "label": iface.name if link == "up" else f"{iface.name}: {link}",
                        "state": _edge_state(link),
                    }
                }
            )
    return out


def _natural(name: str) -> tuple[object, ...]:
    """w2 before w10: the order the picture places a farm's copies in."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _network_of(plan: Plan, node: str, iface: str) -> Sequence[str]:
    try:
        return [plan.node(node).interface(iface).network]
    except KeyError:
        return []


def _edge_state(link: str) -> str:
    if link == "up":
        return "up"
    return "down" if link.startswith("down") else "impaired"


def port_states(statuses: Iterable[Any]) -> dict[tuple[str, str], str]:
    """(node, interface) -> state of its link end, from `LinkControl.status()` rows."""
    out: dict[tuple[str, str], str] = {}
    for status in statuses:
        for end in status.link.ends:
            words = []
            if end.node in status.down:
                words.append("down")
            impairment = status.impaired.get(end)
            if impairment is not None:
                words.append(impairment.describe())
            out[(end.node, end.interface)] = ", ".join(words) or "up"
    return out


def is_global(address: str) -> bool:
    """An address worth a copy button: not link-local."""
    try:
        return not ipaddress.ip_interface(address).ip.is_link_local
    except ValueError:
        return False
