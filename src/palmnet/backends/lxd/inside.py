"""What happens inside a node's container once it runs.

Network objects (static addresses, bridges inside the node, static routes) are
made over netlink from the host, standing in the container's network
namespace (/proc/PID/ns/net of its init), as LXD itself configures a NIC:
this needs no tool in the image. Everything else goes through LXD's API:
files are pushed, commands run with `exec`, and the routers' daemons (radvd,
dnsmasq, BIRD, kea, dhcpcd, rdnssd) are started inside the container from the
same adapters as on the netns backend, with their files under /run/palmnet
in the container. A daemon's readiness is checked from the host through
/proc/PID (its sockets, its counters) and /proc/INIT/root (its control socket).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from palmnet.backends.lxd.client import Lxd, OperationFailed
from palmnet.backends.netns import nsfs
from palmnet.errors import LabError
from palmnet.plan.model import NodePlan, Plan
from palmnet.services.base import Service
from palmnet.services.registry import services_for

IFA_F_NODAD = 0x02
STATE_DIR = PurePosixPath("/run/palmnet")  # inside the container
READY_TIMEOUT = float(os.environ.get("PALMNET_READY_TIMEOUT", "30"))


def netns_path(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


# -- netlink from the host ---------------------------------------------------------------
def _iproute(pid: int) -> Any:
    from pyroute2.iproute.linux import IPRoute

    with nsfs.netns(netns_path(pid)):
        return IPRoute()


def configure_links(node: NodePlan, pid: int) -> None:
    """Bridges inside the node with their ports, then static addresses."""
    ipr = _iproute(pid)
    try:
        for iface in node.interfaces:
            if iface.kind != "bridge":
                continue
            ipr.link(
                "add",
                ifname=iface.name,
                kind="bridge",
                address=iface.mac,
                br_stp_state=0,
                br_forward_delay=0,
            )
            index = ipr.link("get", ifname=iface.name)[0]["index"]
            with nsfs.netns(netns_path(pid)):
                _bridge_sysctls(node, iface.name)
            for port in iface.ports:
                ipr.link("set", ifname=port, master=index)
            ipr.link("set", index=index, state="up")
        flags = 0 if node.dad else IFA_F_NODAD
        for iface in node.interfaces:
            if not (iface.ipv6_static or iface.ipv4_static):
                continue
            idx = ipr.link("get", ifname=iface.name)[0]["index"]
            for a6 in iface.ipv6_static:
                ipr.addr(
                    "add",
                    index=idx,
                    address=str(a6.ip),
                    prefixlen=a6.network.prefixlen,
                    flags=flags,
                )
            for a4 in iface.ipv4_static:
                ipr.addr("add", index=idx, address=str(a4.ip), prefixlen=a4.network.prefixlen)
    finally:
        ipr.close()


def _bridge_sysctls(node: NodePlan, ifname: str) -> None:
    """A bridge made inside the node after start: its IPv6 settings by hand."""
    base = f"/proc/sys/net/ipv6/conf/{ifname}"
    values = {"addr_gen_mode": 0, "use_tempaddr": 0, "accept_dad": 1 if node.dad else 0}
    for key, value in values.items():
        with contextlib.suppress(OSError), open(f"{base}/{key}", "w") as f:
            f.write(str(value))
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/neigh/{ifname}/retrans_time_ms", "w") as f,
    ):
        f.write("100")


def configure_routes(node: NodePlan, pid: int) -> None:
    if not node.routes:
        return
    ipr = _iproute(pid)
    try:
        for route in node.routes:
            ipr.route(
                "replace",
                dst=str(route.to),
                gateway=str(route.via),
                oif=ipr.link("get", ifname=route.dev)[0]["index"],
                proto=4,
            )
    finally:
        ipr.close()


# -- exec and files through the API ------------------------------------------------------
def run(
    lxd: Lxd, instance: str, argv: list[str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run argv in the container and collect its output (LXD's `exec`)."""
    if stdin is not None:
        return _run_with_stdin(lxd, instance, argv, stdin, timeout)
    pending = lxd.call(
        "post",
        f"instances/{instance}/exec",
        f"exec in {instance}",
        json={
            "command": argv,
            "record-output": True,
            "interactive": False,
            "wait-for-websocket": False,
            "environment": {},
        },
    )
    try:
        meta = lxd.wait(pending, timeout)
    except OperationFailed as exc:
        if "not done after" in str(exc):
            raise subprocess.TimeoutExpired(argv, timeout) from None
        if "Command not found" in str(exc):
            raise LabError(f"{argv[0]}: command not found in {instance}") from None
        raise
    out = {"1": "", "2": ""}
    for fd, url in (meta.get("output") or {}).items():
        leaf = str(url).rsplit("/", 1)[-1]
        logs = lxd.api.instances[instance].logs
        with contextlib.suppress(Exception):
            out[str(fd)] = logs[leaf].get().text
        with contextlib.suppress(Exception):
            logs[leaf].delete()
    return subprocess.CompletedProcess(argv, int(meta.get("return", -1)), out["1"], out["2"])


def _run_with_stdin(
    lxd: Lxd, instance: str, argv: list[str], stdin: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    inst = lxd.client.instances.get(instance)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = inst.execute(argv, stdin_payload=stdin)
        except Exception as exc:  # reported below
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise subprocess.TimeoutExpired(argv, timeout)
    if "error" in box:
        raise LabError(f"exec in {instance}: {box['error']}")
    code, out, err = box["result"]
    return subprocess.CompletedProcess(argv, int(code), out or "", err or "")


def check(lxd: Lxd, instance: str, argv: list[str], stdin: str | None = None) -> str:
    proc = run(lxd, instance, argv, stdin)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"{instance}: `{shlex.join(argv)}` exited {proc.returncode}: {detail}")
    return proc.stdout


def push_files(lxd: Lxd, instance: str, files: dict[PurePosixPath, tuple[str, int]]) -> None:
    """Write files (path -> (text, mode)) into the container, making their folders."""
    if not files:
        return
    dirs = sorted({str(p.parent) for p in files})
    check(lxd, instance, ["mkdir", "-p", *dirs])
    for path, (text, mode) in files.items():
        try:
            lxd.api.instances[instance].files.post(
                params={"path": str(path)},
                data=text.encode(),
                headers={
                    "X-LXD-type": "file",
                    "X-LXD-mode": f"{mode:04o}",
                    "X-LXD-write": "overwrite",
                },
            )
        except lxd.APIError as exc:
            raise LabError(f"{instance}: cannot write {path}: {exc}") from None


# -- the node's /etc ---------------------------------------------------------------------
def etc_files(plan: Plan, node: NodePlan) -> dict[PurePosixPath, tuple[str, int]]:
    """The node's own /etc files, as the netns backend seeds them."""
    from palmnet.backends.netns.etc import render_hosts, render_resolv_conf

    files = {
        PurePosixPath("/etc/hostname"): (node.name + "\n", 0o644),
        PurePosixPath("/etc/hosts"): (render_hosts(plan, node), 0o644),
        PurePosixPath("/etc/resolv.conf"): (render_resolv_conf(plan), 0o644),
    }
    for name, text in node.uci:
        files[PurePosixPath("/etc/config") / name] = (text, 0o644)
    return files


def seed_etc(lxd: Lxd, plan: Plan, node: NodePlan, instance: str) -> None:
    # resolv.conf may be a symlink in the image (systemd-resolved): replace it, not follow it
    check(lxd, instance, ["rm", "-f", "/etc/resolv.conf"])
    push_files(lxd, instance, etc_files(plan, node))


def load_firewall(lxd: Lxd, node: NodePlan, instance: str) -> None:
    """The node's fw4-style ruleset, loaded with the container's own nft."""
    from palmnet.openwrt.fw4 import compile_firewall
    from palmnet.openwrt.uci import parse
    from palmnet.openwrt.zones import zone_devices

    files = dict(node.uci)
    network = parse(files["network"], "network", file="/etc/config/network")
    firewall = parse(files["firewall"], "firewall", file="/etc/config/firewall")
    result = compile_firewall(firewall, zone_devices(network))
    check(lxd, instance, ["nft", "-f", "-"], stdin=result.nft_text)


# -- daemons -----------------------------------------------------------------------------
def adapters(plan: Plan, node: NodePlan, root: str | Path = "") -> list[Service]:
    """The node's daemon adapters, their files under /run/palmnet as the container sees
    it (`root` prefixes that path, e.g. /proc/INIT/root to look at it from the host)."""
    base = Path(f"{root}{STATE_DIR}") if root else Path(str(STATE_DIR))
    return [cls(plan, node, base) for cls in services_for(node)]


def _host_pid(init: int, inner: int) -> int | None:
    """The host pid of process `inner` of the container whose init is host pid `init`."""
    try:
        pidns = os.stat(f"/proc/{init}/ns/pid").st_ino
    except OSError:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry.name}/ns/pid").st_ino != pidns:
                continue
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == inner:
                            return int(entry.name)
                        break
        except (OSError, ValueError):
            continue
    return None


class Started:
    """A daemon started in a node: its adapter seen from the host, and its host pid."""

    def __init__(self, key: str, outside: Service, pid: int) -> None:
        self.key = key
        self.outside = outside
        self.pid = pid


def start_daemons(
    lxd: Lxd, plan: Plan, node: NodePlan, instance: str, init: int, when: Sequence[str]
) -> list[Started]:
    """Push each daemon's files and start it in the container, in its own session,
    output to its log (it outlives the `exec` that started it)."""
    inside = [s for s in adapters(plan, node) if s.starts in when]
    if not inside:
        return []
    outside = {s.name: s for s in adapters(plan, node, f"/proc/{init}/root")}
    files: dict[PurePosixPath, tuple[str, int]] = {}
    for svc in inside:
        files[PurePosixPath(str(svc.dir)) / ".keep"] = ("", 0o644)
        for path, text in svc.render().items():
            script = text.startswith("#!")
            files[PurePosixPath(str(path))] = (text, 0o755 if script else 0o644)
    push_files(lxd, instance, files)
    started = []
    for svc in inside:
        exe = svc.argv()[0]
        pidfile = PurePosixPath(str(svc.dir)) / ".palmnet.pid"
        # The pid goes to a file, read from the host: LXD 5.0's recorded output of a
        # shell that leaves a background job came back empty.
        line = (
            f"test -x {shlex.quote(exe)} || {{ echo 'missing: {exe} (package {svc.package})'; "
            f"exit 127; }}; (cd / && exec setsid {shlex.join(svc.argv())}) "
            f">>{shlex.quote(str(svc.log))} 2>&1 </dev/null & echo $! >{pidfile}"
        )
        proc = run(lxd, instance, ["sh", "-c", line])
        key = f"{node.name}/{svc.name}"
        if proc.returncode != 0:
            raise LabError(f"{key}: cannot start in its container: {proc.stdout.strip()}")
        inner = Path(f"/proc/{init}/root{pidfile}").read_text().strip()
        pid = _host_pid(init, int(inner))
        if pid is None:
            raise LabError(f"{key} exited at start: {_tail(outside[svc.name].log)}")
        started.append(Started(key, outside[svc.name], pid))
    return started


def wait_ready(started: list[Started], timeout: float = READY_TIMEOUT) -> None:
    """Poll each daemon's own readiness test (they give no notification) until all
    pass; fail naming the laggards, or at once for a daemon that died."""
    deadline = time.monotonic() + timeout
    waiting = list(started)
    while waiting:
        still = []
        for s in waiting:
            if not _alive(s.pid):
                raise LabError(f"{s.key} exited at start: {_tail(s.outside.log)}")
            if not s.outside.ready(s.pid):
                still.append(s)
        waiting = still
        if waiting:
            if time.monotonic() > deadline:
                names = ", ".join(s.key for s in waiting)
                raise LabError(f"daemons not ready after {timeout:g} s: {names}")
            time.sleep(0.01)  # poll: these daemons give no readiness notification


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    return "(no log)"
