"""The files a node sees in its own /etc, whatever runs it.

Only what is the node's own: its hostname, and /etc/hosts with localhost and
the node's own addresses. Other nodes' names come from DNS (the lab's
resolver, learnt from RAs), never from a hosts file written behind the
network's back. resolv.conf is a regular file, which hides a host symlink
(systemd-resolved) so nothing writes through it into the host.
"""

from __future__ import annotations

from palmnet.plan.model import NodePlan, Plan


def render_hosts(plan: Plan, node: NodePlan) -> str:
    fqdn = f"{node.name}.{plan.domain}"
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for iface in node.interfaces:
        for addr in (*iface.ipv6_static, *iface.ipv6_slaac):
            lines.append(f"{addr.ip}\t{fqdn} {node.name}")
        for addr4 in iface.ipv4_static:
            lines.append(f"{addr4.ip}\t{fqdn} {node.name}")
    return "\n".join(lines) + "\n"


def render_resolv_conf(plan: Plan) -> str:
    return (
        "# palmnet: the node's resolver; RDNSS/DNSSL from router advertisements update it\n"
        f"search {plan.domain}\n"
    )


def lab_etc_files(plan: Plan) -> dict[str, str]:
    """The files that are the same in every node of the lab: resolv.conf."""
    return {"resolv.conf": render_resolv_conf(plan)}


def node_etc_files(plan: Plan, node: NodePlan) -> dict[str, str]:
    """The node's own: hostname, hosts, config/*."""
    files = {"hostname": node.name + "\n", "hosts": render_hosts(plan, node)}
    for name, text in node.uci:
        files[f"config/{name}"] = text
    return files


def etc_files(plan: Plan, node: NodePlan) -> dict[str, str]:
    """Paths under /etc (relative) -> text: hostname, hosts, resolv.conf, config/*."""
    return {**node_etc_files(plan, node), **lab_etc_files(plan)}
