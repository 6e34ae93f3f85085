"""What changed between the plan a lab runs and the plan of its file.

Nodes added or removed can be applied live; a node whose interfaces,
addresses or kind changed cannot (its addresses would move under running
processes), so `up` refuses and shows the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from palmnet.plan.model import Plan


@dataclass
class PlanDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.refused)

    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append("added " + ", ".join(self.added))
        if self.removed:
            parts.append("removed " + ", ".join(self.removed))
        return "; ".join(parts)


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    d = PlanDiff()
    old_nodes = {n.name: n for n in old.nodes}
    new_nodes = {n.name: n for n in new.nodes}
    if (old.lab, old.domain, old.dad) != (new.lab, new.domain, new.dad):
        d.refused.append(
            f"  lab settings: {old.domain}/dad={old.dad} -> {new.domain}/dad={new.dad}"
        )
    if (old.placement, old.link_mtu) != (new.placement, new.link_mtu):
        # running nodes would keep their members and their NICs' MTU
        d.refused.append(
            f"  placement: {old.placement}, link MTU {old.link_mtu or 1500} -> "
            f"{new.placement}, link MTU {new.link_mtu or 1500}"
        )
    for name, node in new_nodes.items():
        if name not in old_nodes:
            d.added.append(name)
        elif old_nodes[name] != node:
            d.refused.append(f"  node {name}: " + _node_change(old_nodes[name], node))
    d.removed = [n for n in old_nodes if n not in new_nodes]
    old_nets = {n.name for n in old.networks}
    gone = old_nets - {n.name for n in new.networks}
    for net in sorted(gone):
        users = [p for p in old.networks if p.name == net]
        if any(node not in d.removed for u in users for node, _ in u.ports):
            d.refused.append(f"  network {net} removed while nodes still use it")
    new_nets = {n.name: n for n in new.networks}
    for net in old.networks:
        now = new_nets.get(net.name)
        if now is not None and now.external != net.external:
            d.refused.append(
                f"  network {net.name}: external {_external(net.external)} -> "
                f"{_external(now.external)}"
            )
    return d


def _external(ext: object) -> str:
    """How a network joins the machine's LAN, in the file's words (or 'none')."""
    if ext is None:
        return "none"
    kind, parent, prefix = (getattr(ext, k) for k in ("kind", "parent", "prefix"))
    return f"{{{kind}: {parent}" + (f", prefix: {prefix}" if prefix else "") + "}"


def _node_change(old: object, new: object) -> str:
    from palmnet.plan.model import NodePlan, node_json

    assert isinstance(old, NodePlan) and isinstance(new, NodePlan)
    a, b = node_json(old, ""), node_json(new, "")
    changes = []
    if old.kind != new.kind:
        changes.append(f"kind {old.kind} -> {new.kind}")
    ai = {i["name"]: i for i in a["interfaces"]}
    bi = {i["name"]: i for i in b["interfaces"]}
    for name in sorted(set(ai) | set(bi)):
        if ai.get(name) != bi.get(name):
            before = ai.get(name, {}).get("ipv6", "absent")
            after = bi.get(name, {}).get("ipv6", "absent")
            changes.append(f"{name}: {before} -> {after}")
    if old.service != new.service:
        changes.append(f"service {old.service} -> {new.service}")
    if old.dad != new.dad:
        changes.append(f"dad {old.dad} -> {new.dad}")
    if old.docker != new.docker:
        changes.append("docker: containers or their settings")
    if old.nat64 != new.nat64:
        said = [f"{n.prefix} pool4 {n.pool4}" if n else "none" for n in (old.nat64, new.nat64)]
        changes.append(f"nat64 {said[0]} -> {said[1]}")
    if (old.clat is None) != (new.clat is None):
        changes.append(f"clat {old.clat is not None} -> {new.clat is not None}")
    return "; ".join(changes) or "settings changed"
