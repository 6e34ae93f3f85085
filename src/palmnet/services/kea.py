"""kea-dhcp6: DHCPv6 prefix delegation, one server per node for all its PD links.

An ISP delegates from its pool; an openwrt router delegates /60s from the part
of its LAN's share that it does not announce (plan/pd.py). Every delegation is
reserved for the requesting router's DUID, so kea hands out what the plan
printed.

Confined to its node (reference/pd-notes.md): kea's compiled-in paths are
/run/kea (pid file), /run/lock/kea (logger lock) and /var/lib/kea (server DUID,
leases). KEA_PIDFILE_DIR / KEA_LOCKFILE_DIR move the first two (set through
`env` in argv, so the backend needs no environment support), `data-directory`
and the memfile name the rest.

Details that matter:
- `interface` in the subnet matches directly attached clients (they speak from
  their link-local); the subnet itself only has to be the link's /64.
- With DAD on, kea can start before its link-local leaves DAD and would stay
  deaf (DHCP6_OPEN_SOCKETS_FAILED): service-sockets-max-retries/-wait-time
  make it try again.
- Rapid commit (RFC 8415 §18.2.1, dhcpcd asks for it): Solicit -> Reply in one
  exchange instead of Solicit, Advertise, a wait for more Advertises, Request.
- Routes to delegated prefixes come from the run_script hook (pd/kea_route.py);
  the wrapper script starts Python only for the hook points it uses.
- Who owns the file: on an ISP the plan (palmnet renumbers by re-rendering its
  pool, `reloads`); on an openwrt router the PD client's hook (pd/hook.py)
  rewrites it when its own delegation arrives, so a reconcile must not write
  the planned one over it (`reloads` is False there). The router's kea starts
  with the planned prefixes, like a router that kept its last lease: routers
  below it get their delegation while their upstream is still asking for its own.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any, ClassVar

from palmnet.plan.model import NodePlan, PdServerPlan
from palmnet.services.base import Service

RUN_SCRIPT_GLOB = "/usr/lib/*/kea/hooks/libdhcp_run_script.so"
ROUTE_HOOK_POINTS = ("leases6_committed", "lease6_release", "lease6_expire")
SOCKET_RETRIES = 120
SOCKET_RETRY_MS = 100  # a link-local leaves DAD in ~100 ms here (sysctl.DAD_RETRANS_MS)

HOOK_WRAPPER = """#!/bin/sh
# kea run_script hook for {node}, written by palmnet: routes to delegated
# prefixes. Only these hook points start Python; the others return at once.
case "$1" in
  {points}) ;;
  *) exit 0 ;;
esac
PATH=/usr/sbin:/usr/bin:/sbin:/bin
PALMNET_KEA_DIR={dir}
export PATH PALMNET_KEA_DIR
exec {python} -m palmnet.pd.kea_route "$@" >> {log} 2>&1
"""


def run_script_library() -> str | None:
    found = sorted(glob.glob(RUN_SCRIPT_GLOB))
    return found[0] if found else None


def subnet_id(subnet: ipaddress.IPv6Network, interface: str) -> int:
    """Stable kea subnet id of a link: from its /64, so a new LAN prefix is a new
    subnet (its old leases then expire on their own and fire lease6_expire)."""
    import hashlib  # here: `ls` imports every adapter, and OpenSSL's takes 4 ms

    digest = hashlib.sha256(f"{interface}/{subnet}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 0x7FFFFFFF + 1


def duid_colons(duid_hex: str) -> str:
    return ":".join(duid_hex[i : i + 2] for i in range(0, len(duid_hex), 2))


def subnet_config(pd: PdServerPlan) -> dict[str, Any]:
    """One kea subnet6 entry from a plan's PD server (or the hook's recomputed one)."""
    return {
        "id": subnet_id(pd.subnet, pd.interface),
        "subnet": str(pd.subnet),
        "interface": pd.interface,
        "rapid-commit": True,
        "renew-timer": pd.t1,
        "rebind-timer": pd.t2,
        "preferred-lifetime": pd.preferred,
        "valid-lifetime": pd.valid,
        "pd-pools": [
            {
                "prefix": str(pool.network_address),
                "prefix-len": pool.prefixlen,
                "delegated-len": pd.delegated_len,
            }
            for pool in pd.pools
            if pool.prefixlen <= pd.delegated_len
        ],
        "reservations": [
            {
                "duid": duid_colons(r.duid),
                "hostname": r.client,
                "prefixes": [str(r.prefix)],
            }
            for r in pd.reservations
            if r.prefix is not None
        ],
    }


def render_kea_config(
    servers: list[PdServerPlan] | tuple[PdServerPlan, ...],
    directory: Path,
    hook: Path,
    log: Path,
) -> str:
    """kea-dhcp6's whole configuration (JSON) for these PD links."""
    library = run_script_library()
    dhcp6: dict[str, Any] = {
        "interfaces-config": {
            "interfaces": sorted({pd.interface for pd in servers}),
            "service-sockets-max-retries": SOCKET_RETRIES,
            "service-sockets-retry-wait-time": SOCKET_RETRY_MS,
        },
        "data-directory": str(directory),
        "lease-database": {
            "type": "memfile",
            "persist": True,
            "name": str(directory / "leases6.csv"),
            "lfc-interval": 0,
        },
        "control-socket": {"socket-type": "unix", "socket-name": str(directory / "kea.sock")},
        # Leases that run out are reclaimed each second: lease6_expire fires soon.
        "expired-leases-processing": {
            "reclaim-timer-wait-time": 1,
            "hold-reclaimed-time": 60,
            "flush-reclaimed-timer-wait-time": 10,
        },
        "subnet6": [subnet_config(pd) for pd in servers],
        "loggers": [
            {
                "name": "kea-dhcp6",
                "output_options": [{"output": str(log)}],
                "severity": "INFO",
            }
        ],
    }
    if library is not None:
        dhcp6["hooks-libraries"] = [
            {"library": library, "parameters": {"name": str(hook), "sync": False}}
        ]
    return json.dumps({"Dhcp6": dhcp6}, indent=2) + "\n"


def hook_wrapper(node: str, directory: Path, log: Path, python: str) -> str:
    return HOOK_WRAPPER.format(
        node=node,
        points="|".join(ROUTE_HOOK_POINTS),
        python=python,
        dir=directory,
        log=log,
    )


def control(sock_path: Path | str, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """One command on kea's control socket; its answer (`result` 0 = success)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(json.dumps({"command": command}).encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            try:
                answer = json.loads(b"".join(chunks))
            except ValueError:
                continue
            return answer[0] if isinstance(answer, list) else answer
    raise OSError("kea closed its control socket without an answer")


class Kea(Service):
    name: ClassVar[str] = "kea"
    executable: ClassVar[str] = "/usr/sbin/kea-dhcp6"
    package: ClassVar[str] = "kea-dhcp6-server"
    # Started with the other router daemons ("up"); a PD client waits for its
    # server's control socket before it starts (services/dhcpcd.py), since a
    # Solicit that finds no server listening costs a 1 s retransmission.

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return bool(node.pd_servers)

    @property  # type: ignore[override]
    def reloads(self) -> bool:  # type: ignore[override]
        """The ISP's config follows the plan (renumbering); a router's follows its
        own delegation, written by its PD client's hook."""
        return self.node.kind == "isp"

    @property
    def conf(self) -> Path:
        return self.dir / "kea.json"

    @property
    def socket_path(self) -> Path:
        return self.dir / "kea.sock"

    @property
    def hook(self) -> Path:
        return self.dir / "route-hook"

    @property
    def hook_log(self) -> Path:
        return self.dir / "route-hook.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "kea.kea-dhcp6.pid"

    def render(self) -> dict[Path, str]:
        return {
            self.conf: render_kea_config(self.node.pd_servers, self.dir, self.hook, self.log),
            self.hook: hook_wrapper(self.node.name, self.dir, self.hook_log, self.python),
        }

    def argv(self) -> list[str]:
        return [
            "/usr/bin/env",
            f"KEA_PIDFILE_DIR={self.dir}",
            f"KEA_LOCKFILE_DIR={self.dir}",
            self.executable,
            "-c",
            str(self.conf),
        ]

    def ready(self, pid: int) -> bool:
        """Its DHCPv6 server socket is bound (kea retries until the link-local is out
        of DAD) and it answers on its control socket."""
        from palmnet.services.dnsmasq import UDP_UNCONNECTED, owns_socket

        if not owns_socket(pid, ("udp6",), 547, UDP_UNCONNECTED):
            return False
        return os.path.exists(self.host(self.socket_path))
