"""How a running lab's daemons are doing, for `ls` and `up`.

Each node's daemons (the ones its plan wants) are `running` (the pid the
journal holds is alive), `restarting` (it died, the supervisor will start it
after its delay), `failed` (it kept dying: given up on until `palmnet up`), or
`dead` (gone, and no supervisor to notice). A running node with a daemon that
is not running is DEGRADED.
"""

from __future__ import annotations

import dataclasses

from palmnet.backends.base import LiveNode, LiveService
from palmnet.lab import store, supervisor
from palmnet.plan.model import Plan
from palmnet.services import respawn
from palmnet.services.runner import key_of, recorded_pid
from palmnet.state.journal import Journal

RUNNING = "RUNNING"
DEGRADED = "DEGRADED"


def wanted_services(plan: Plan, j: Journal) -> dict[str, list[str]]:
    """Node -> the names of the daemons its plan runs: as stored with the plan, or
    asked of the adapters for a lab stored without them."""
    stored = store.node_services(j)
    if stored is not None:
        return stored
    from palmnet.services.registry import services_for

    return {n.name: [cls.name for cls in services_for(n)] for n in plan.nodes}


def service_states(
    j: Journal, node: str, names: list[str], watched: bool
) -> tuple[LiveService, ...]:
    out = []
    for name in names:
        key = key_of(node, name)
        record = supervisor.record_of(j, key)
        pid = recorded_pid(j, node, name)
        if pid is not None:
            state = respawn.RUNNING
        elif record.state == respawn.FAILED:
            state = respawn.FAILED
        elif watched:
            state = respawn.RESTARTING
        else:
            state = "dead"
        out.append(LiveService(name, state, pid, record.restarts, record.last_exit))
    return tuple(out)


def with_services(plan: Plan, j: Journal, nodes: list[LiveNode]) -> list[LiveNode]:
    """The observed nodes with their daemons; DEGRADED where one is not running."""
    watched = supervisor.pid_of(j) is not None
    wanted = wanted_services(plan, j)
    out = []
    for node in nodes:
        if node.state != RUNNING:
            out.append(node)
            continue
        services = service_states(j, node.name, wanted.get(node.name, []), watched)
        down = any(s.state != respawn.RUNNING for s in services)
        out.append(
            dataclasses.replace(node, services=services, state=DEGRADED if down else RUNNING)
        )
    return out


def dead_services(plan: Plan, j: Journal, stopped: set[str]) -> list[tuple[str, str]]:
    """(node, service) of every daemon of a running node that does not run."""
    from palmnet.services.registry import services_for

    return [
        (node.name, cls.name)
        for node in plan.nodes
        if node.name not in stopped
        for cls in services_for(node)
        if recorded_pid(j, node.name, cls.name) is None
    ]
