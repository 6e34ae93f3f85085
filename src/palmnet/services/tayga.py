"""TAYGA: the stateful NAT64 (PLAT) of a router with `nat64:` (RFC 6146 in effect).

Why TAYGA: Jool, the other maintained NAT64 for Linux, is a kernel module,
and the machines palmnet runs on need not load modules (this CI's VM kernel
has none: no /lib/modules, no modprobe). TAYGA (Debian `tayga` 0.9.2) is a
userspace translator on a tun device, per network namespace, started like any
daemon. It translates TCP, UDP and ICMP (echo, and errors: IPv4
Fragmentation Needed becomes IPv6 Packet Too Big with the MTU adjusted, and
back), fragments non-DF IPv4 to fit IPv6's 1280, and passes IPv6 fragments.

TAYGA maps addresses one to one; it is made stateful by its dynamic pool:
each IPv6 client gets an address of pool4 when it first sends (kept two
hours after its last packet, in `dynamic.map` under the state dir), so the
IPv4 side sees pool4 addresses, as RFC 6146's pool4 means. TAYGA's own
address is pool4's first.

The start script is what OpenWrt's tayga proto handler does: make the tun
device (persistent, so a restart finds it), bring it up, route the prefix
and pool4 into it, then run TAYGA in the foreground. The IPv6 route is
`proto static`, so BIRD announces it where the node runs a routing protocol
(services/bird.py announces the kernel's static routes). On openwrt a NAT
rule keeps pool4 from the WAN zone's masquerade: it binds pool4 to itself in
a chain before fw4's srcnat, and the kernel NATs a connection once, in the
first chain that binds it. The rule lives in its own table (`ip palmnet_nat64`),
which `/etc/init.d/firewall restart` (it replaces `inet fw4`) leaves alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import Nat64Plan, NodePlan
from palmnet.services.base import Service

STATIC_PROTO = "static"


def render_tayga_config(nat: Nat64Plan, data_dir: Path) -> str:
    return "\n".join(
        [
            "# TAYGA, the NAT64 of this router, written by palmnet",
            f"tun-device {nat.device}",
            f"ipv4-addr {nat.address4}",
            f"prefix {nat.prefix}",
            f"dynamic-pool {nat.pool4}",
            f"data-dir {data_dir}",
            "",
        ]
    )


def unmasquerade_ruleset(nat: Nat64Plan) -> str:
    """nft: pool4 bound to itself before fw4's masquerade (priority srcnat - 1)."""
    return "\n".join(
        [
            "table ip palmnet_nat64",
            "delete table ip palmnet_nat64",
            "table ip palmnet_nat64 {",
            "    chain srcnat {",
            "        type nat hook postrouting priority srcnat - 1; policy accept;",
            f"        ip saddr {nat.pool4} snat ip to ip saddr",
            "    }",
            "}",
            "",
        ]
    )


def render_start(nat: Nat64Plan, conf: Path, nft: Path | None) -> str:
    lines = [
        "#!/bin/sh",
        "# TAYGA's tun device, its routes, then TAYGA itself (written by palmnet)",
        "set -e",
        f"tayga --config {conf} --mktun",
        f"ip link set {nat.device} up",
        f"ip route replace {nat.pool4} dev {nat.device} proto {STATIC_PROTO}",
        f"ip -6 route replace {nat.prefix} dev {nat.device} proto {STATIC_PROTO}",
    ]
    if nft is not None:
        lines.append(f"nft -f {nft}")
    lines.append(f"exec tayga --config {conf} --nodetach")
    return "\n".join(lines) + "\n"


def translator_ready(pid: int, device: str) -> bool:
    """The start script has become TAYGA (exec) and the node has its tun device."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        devices = Path(f"/proc/{pid}/net/dev").read_text()
    except OSError:
        return False
    return comm == "tayga" and f" {device}:" in devices


class Tayga(Service):
    name: ClassVar[str] = "tayga"
    executable: ClassVar[str] = "/usr/sbin/tayga"
    devices: ClassVar[tuple[str, ...]] = ("/dev/net/tun",)
    package: ClassVar[str] = "tayga"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.nat64 is not None

    @property
    def nat(self) -> Nat64Plan:
        assert self.node.nat64 is not None
        return self.node.nat64

    @property
    def conf(self) -> Path:
        return self.dir / "tayga.conf"

    @property
    def script(self) -> Path:
        return self.dir / "start"

    @property
    def nft(self) -> Path | None:
        return self.dir / "unmasquerade.nft" if self.nat.unmasqueraded else None

    def render(self) -> dict[Path, str]:
        files = {
            self.conf: render_tayga_config(self.nat, self.dir),
            self.script: render_start(self.nat, self.conf, self.nft),
        }
        if self.nft is not None:
            files[self.nft] = unmasquerade_ruleset(self.nat)
        return files

    def argv(self) -> list[str]:
        return [str(self.script)]

    def ready(self, pid: int) -> bool:
        return translator_ready(pid, self.nat.device)
