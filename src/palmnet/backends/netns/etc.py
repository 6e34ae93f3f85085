"""The files a node sees in its own /etc, seeded before its overlay is mounted.

Only what is the node's own: its hostname, and /etc/hosts with localhost and
the node's own addresses. Other nodes' names come from DNS (the lab's
resolver, learnt from RAs), never from a hosts file written behind the
network's back. resolv.conf is a regular file here, which hides a host
symlink (systemd-resolved) so nothing writes through it into the host.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
        for addr in (*iface.ipv6_static, *iface.ipv6_slaac, *iface.ipv4_static):
            lines.append(f"{addr.ip}\t{fqdn} {node.name}")
    return "\n".join(lines) + "\n"


def render_resolv_conf(plan: Plan) -> str:
    return (
        "# palmnet: the node's resolver; RDNSS/DNSSL from router advertisements update it\n"
        f"search {plan.domain}\n"
    )


def seed_openwrt(node: NodePlan, upper: Path) -> None:
    """/etc/config/{network,firewall,dhcp} and /etc/init.d/firewall, as on OpenWrt."""
    from palmnet.openwrt.firewall_cli import render_init_script

    config = upper / "config"
    config.mkdir(parents=True, exist_ok=True)
    for name, text in node.uci:
        (config / name).write_text(text)
    initd = upper / "init.d"
    initd.mkdir(parents=True, exist_ok=True)
    script = initd / "firewall"
    script.write_text(render_init_script(sys.executable))
    script.chmod(0o755)


def seed_etc(plan: Plan, node: NodePlan, upper: Path) -> None:
    upper.mkdir(parents=True, exist_ok=True)
    if node.uci:
        seed_openwrt(node, upper)
    (upper / "hostname").write_text(node.name + "\n")
    (upper / "hosts").write_text(render_hosts(plan, node))
    resolv = upper / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text(render_resolv_conf(plan))
