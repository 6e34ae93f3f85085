"""Nodes added to a running lab by `palmnet launch`, as copies of a node of the file.

Like `lxc launch web_image w11`: the copy has the template's interfaces,
kind and service, and its own name, so its MACs and addresses are its own
and stable. The lab's journal keeps the list, so the copies belong to the
lab until `down`.
"""

from __future__ import annotations

from palmnet.errors import InputError
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


def with_copies(lab: Lab, copies: dict[str, str]) -> Lab:
    """The lab with `copies` (new name -> template) added after the file's nodes."""
    if not copies:
        return lab
    nodes = dict(lab.nodes)
    for name, template in copies.items():
        if not NODE_NAME.match(name):
            raise InputError(f"invalid node name {name!r}: a DNS label, lowercase, <= 32 chars")
        if name in nodes:
            raise InputError(f"node '{name}' already exists in lab {lab.name}")
        source = template_node(lab, template)
        nodes[name] = source.model_copy(update={"name": name})
    return lab.model_copy(update={"nodes": nodes})


def with_pools(lab: Lab, pools: dict[str, str]) -> Lab:
    """The lab with ISPs' delegation pools replaced (`palmnet isp renumber`)."""
    if not pools:
        return lab
    import ipaddress

    nodes = dict(lab.nodes)
    for name, prefix in pools.items():
        node = nodes.get(name)
        if node is None or node.delegate is None:
            raise InputError(f"no isp node '{name}' with a delegation pool in lab {lab.name}")
        try:
            pool = ipaddress.IPv6Network(prefix)
        except ValueError as exc:
            raise InputError(f"{prefix!r} is not an IPv6 prefix ({exc})") from None
        if node.delegate.length <= pool.prefixlen:
            raise InputError(f"{pool} is too small to delegate /{node.delegate.length}s from it")
        nodes[name] = node.model_copy(
            update={"delegate": node.delegate.model_copy(update={"pool": pool})}
        )
    return lab.model_copy(update={"nodes": nodes})
