"""What changed between the plan a lab runs and the plan of its file.

Nodes added or removed can be applied live; a node whose interfaces,
addresses or kind changed cannot (its addresses would move under running
processes), so `up` refuses and shows the difference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from palmnet.plan.model import NodePlan, Plan
from palmnet.topology.limits import SHOWN_CHARS


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
        elif without_roster(old_nodes[name]) != without_roster(node):
            d.refused.append(
                f"  node {name}: "
                + _node_change(without_roster(old_nodes[name]), without_roster(node))
            )
    d.removed = [n for n in old_nodes if n not in new_nodes]
    old_nets = {n.name for n in old.networks}
    gone = old_nets - {n.name for n in new.networks}
    for net in sorted(gone):
        users = [p for p in old.networks if p.name == net]
        if any(node not in d.removed for u in users for node, _ in u.ports):
            d.refused.append(f"  network {net} removed while nodes still use it")
    new_nets = {n.name: n for n in new.networks}
    for was in old.networks:
        now = new_nets.get(was.name)
        if now is not None and now.external != was.external:
            d.refused.append(
                f"  network {was.name}: external {_external(was.external)} -> "
                f"{_external(now.external)}"
            )
    return d


def _external(ext: object) -> str:
    """How a network joins the machine's LAN, in the file's words (or 'none')."""
    if ext is None:
        return "none"
    kind, parent, prefix = (getattr(ext, k) for k in ("kind", "parent", "prefix"))
    return f"{{{kind}: {parent}" + (f", prefix: {prefix}" if prefix else "") + "}"


def without_roster(node: NodePlan) -> NodePlan:
    """The node without what the lab's roster decides in it: its LANs' DHCP
    reservations and its DNS records. Nodes added or removed change them on the
    router that serves them; `up` and `launch` reload those daemons
    (`Backend.refresh`), so that is no change of the router itself."""
    lans = tuple(dataclasses.replace(lan, hosts=(), hosts6=()) for lan in node.lans)
    dns = dataclasses.replace(node.dns, records=()) if node.dns is not None else None
    return dataclasses.replace(node, lans=lans, dns=dns)


def _node_change(old: NodePlan, new: NodePlan) -> str:
    """What differs, by key, with only the items that differ: `eth0.ipv4: -192.0.2.1/24
    +192.0.2.9/24`, `routing.protocol: ripng -> ospf3`."""
    changes: list[str] = []
    before = {i.name: i for i in old.interfaces}
    after = {i.name: i for i in new.interfaces}
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append(f"interface {name} removed")
        elif name not in before:
            changes.append(f"interface {name} added")
        else:
            changes += _delta(name, before[name], after[name])
    for f in dataclasses.fields(NodePlan):
        if f.name != "interfaces":
            changes += _delta(f.name, getattr(old, f.name), getattr(new, f.name))
    return "; ".join(changes) or "settings changed"


def _delta(key: str, a: object, b: object, depth: int = 0) -> list[str]:
    if a == b:
        return []
    if isinstance(a, tuple) and isinstance(b, tuple):
        named_a, named_b = _by_name(a), _by_name(b)
        if named_a is not None and named_b is not None and named_a.keys() == named_b.keys():
            out: list[str] = []
            for name, item in named_a.items():
                out += _delta(f"{key}[{name}]", item, named_b[name], depth + 1)
            return out or [f"{key}: reordered"]
        gone = [f"-{_short(x)}" for x in a if x not in b]
        new = [f"+{_short(x)}" for x in b if x not in a]
        return [f"{key}: {' '.join([*gone, *new]) or 'reordered'}"]
    if depth < 3 and dataclasses.is_dataclass(a) and type(a) is type(b) and not isinstance(a, type):
        fields: list[str] = []
        for f in dataclasses.fields(a):
            fields += _delta(f"{key}.{f.name}", getattr(a, f.name), getattr(b, f.name), depth + 1)
        return fields
    return [f"{key}: {_short(a)} -> {_short(b)}"]


def _by_name(items: tuple[object, ...]) -> dict[str, object] | None:
    """Items that carry a name (interfaces, LANs), by it; None for plain values."""
    names = [getattr(x, "name", None) or getattr(x, "interface", None) for x in items]
    if not items or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names):
        return None
    return dict(zip(names, items, strict=True))  # type: ignore[arg-type]


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
