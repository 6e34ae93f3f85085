"""Nodes added to a running lab by `palmnet launch`, as copies of a node of the file.

Like `lxc launch web_image w11`: the copy has the template's interfaces,
kind and service, and its own name, so its MACs and addresses are its own
and stable. The lab's journal keeps the list, so the copies belong to the
lab until `down`.
"""

from __future__ import annotations

from palmnet.errors import InputError
from palmnet.topology.addresses import delegation_pool
from palmnet.topology.describe import shown
from palmnet.topology.limits import MAX_NODES
from palmnet.topology.model import NODE_NAME, Lab, Node


def template_node(lab: Lab, template: str) -> Node:
    """A node of the file by its name, or the first copy of a `count:` entry."""
    if template in lab.nodes:
        return lab.nodes[template]
    for node in lab.nodes.values():
        if node.template == template:
            return node
    known = ", ".join(dict.fromkeys(n.template for n in lab.nodes.values()))
    raise InputError(f"no node or node entry '{template}' in lab {lab.name} (known: {known})")


def with_copies(lab: Lab, copies: dict[str, str], images: dict[str, str] | None = None) -> Lab:
    """The lab with `copies` (new name -> template) added after the file's nodes; a copy
    named in `images` starts from that LXD image (`launch --image`, like `lxc launch
    web_image w11`), whatever its template's `image:` says."""
    if not copies:
        return lab
    nodes = dict(lab.nodes)
    if len(nodes) + len(copies) > MAX_NODES:
        raise InputError(
            f"the lab would have {len(nodes) + len(copies):,} nodes: more than {MAX_NODES:,} "
            "(the limit of a lab)"
        )
    for name, template in copies.items():
        if not NODE_NAME.fullmatch(name):
            raise InputError(
                f"invalid node name {shown(name)}: a DNS label, lowercase, <= 32 chars"
            )
        if name in nodes:
            raise InputError(f"node '{name}' already exists in lab {lab.name}")
        source = template_node(lab, template)
        update: dict[str, object] = {"name": name}
        if images and name in images:
            update["image"] = images[name]
        nodes[name] = source.model_copy(update=update)
    return lab.model_copy(update={"nodes": nodes})


def with_pools(lab: Lab, pools: dict[str, str]) -> Lab:
    """The lab with ISPs' delegation pools replaced (`palmnet isp renumber`)."""
    if not pools:
        return lab
    nodes = dict(lab.nodes)
    for name, prefix in pools.items():
        node = nodes.get(name)
        if node is None or node.delegate is None:
            raise InputError(f"no isp node {shown(name)} with a delegation pool in lab {lab.name}")
        try:
            pool = delegation_pool(prefix)  # the same rules as the file's `delegate.pool`
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if node.delegate.length <= pool.prefixlen:
            raise InputError(f"{pool} is too small to delegate /{node.delegate.length}s from it")
        links = [a.network for i in node.interfaces.values() for a in i.ipv6]
        own = [net for net in links if net.overlaps(pool)]
        if own:
            raise InputError(f"the pool {pool} holds {own[0]} of {name}'s own link")
        nodes[name] = node.model_copy(
            update={"delegate": node.delegate.model_copy(update={"pool": pool})}
        )
    return lab.model_copy(update={"nodes": nodes})
