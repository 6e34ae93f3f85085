"""What happens inside a node's container once it runs.

Network objects (static addresses, bridges inside the node, static routes) are
made over netlink from the host, standing in the container's network
namespace (/proc/PID/ns/net of its init), as LXD itself configures a NIC:
this needs no tool in the image. The firewall is loaded the same way, by the host's
nft in the container's namespace (services/nftables.py). Everything else goes
through LXD's API: files are pushed, commands run with `exec`, and the daemons
(radvd, dnsmasq, BIRD, kea, dhcpcd, rdnssd) are started inside the container
from the same adapters and the same runner as on the netns backend
(services/runner.py), with their files under /run/palmnet in the container.
A daemon's readiness is checked from the host through /proc/PID (its sockets,
its counters) and /proc/INIT/root (its control socket).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shlex
import subprocess
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import palmnet
from palmnet.backends.lxd.client import Lxd, OperationFailed
from palmnet.errors import LabError
from palmnet.kernel import nsfs, sysctl
from palmnet.plan import sysctls
from palmnet.plan.etc_files import etc_files as node_etc
from palmnet.plan.model import NodePlan, Plan
from palmnet.services.base import Service
from palmnet.services.registry import services_for
from palmnet.services.runner import Started, log_tail, start_all
from palmnet.state.journal import Journal

IFA_F_NODAD = 0x02
EXEC_TRIES = 3
EXEC_LOST = "Failed to retrieve PID of executing child process"
STATE_DIR = PurePosixPath("/run/palmnet")  # inside the container
RUNTIME_ZIP = STATE_DIR / "palmnet.zip"  # palmnet's modules, for hooks inside the container
PYTHON_SERVICES = ("dhcpcd", "kea", "httpd")  # their hooks or servers run palmnet modules


def netns_path(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


# -- netlink from the host ---------------------------------------------------------------
def _iproute(pid: int) -> Any:
    from pyroute2.iproute.linux import IPRoute

    with nsfs.netns(netns_path(pid)):
        return IPRoute()


def bridge_nf_off(pid: int) -> None:
    """br_netfilter's switches, off as on every node (plan/sysctls.py). Written from
    the host: LXC's linux.sysctl would fail the start where br_netfilter is not
    loaded, and a container's root may not write them."""
    with nsfs.netns(netns_path(pid)):
        sysctl.apply_sysctls(sysctls.BRIDGE_NF)


def configure_links(node: NodePlan, pid: int) -> None:
    """Bridges inside the node with their ports, then static addresses."""
    bridge_nf_off(pid)
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
    """A bridge made inside the node after it started: the node's settings for it, and
    its DAD timer (a per-interface setting that no default carries)."""
    conf = sysctls.conf_values(forwarding=node.forwarding, dad=node.dad)
    sysctl.apply_sysctls({f"net/ipv6/conf/{ifname}/{k}": v for k, v in conf.items()})
    with contextlib.suppress(OSError):
        sysctl.set_neigh_retrans(ifname, sysctls.DAD_RETRANS_MS)


def configure_routes(node: NodePlan, pid: int) -> None:
    if not node.routes:
        return
    ipr = _iproute(pid)
    try:
        for route in node.routes:
            if route.kind == "unreachable":
                ipr.route("replace", dst=str(route.to), type="unreachable", proto=4)
                continue
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
    for attempt in range(EXEC_TRIES):
        try:
            return _run(lxd, instance, argv, timeout)
        except OperationFailed as exc:
            # LXD 5.0 under load sometimes fails to start the command at all ("Failed
            # to retrieve PID of executing child process": its exec helper lost the
            # child before reporting it; 2 in a few hundred execs here): try again.
            if EXEC_LOST not in str(exc) or attempt == EXEC_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _run(
    lxd: Lxd, instance: str, argv: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
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
        push_bytes(lxd, instance, path, text.encode(), mode)


def push_bytes(lxd: Lxd, instance: str, path: PurePosixPath, data: bytes, mode: int) -> None:
    """One file into the container (its folder must exist), owned by its root."""
    try:
        lxd.api.instances[instance].files.post(
            params={"path": str(path)},
            data=data,
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
    """The node's own /etc files, the same as a namespace node's (plan/etc_files.py)."""
    return {
        PurePosixPath("/etc") / rel: (text, 0o644) for rel, text in node_etc(plan, node).items()
    }


def seed_etc(lxd: Lxd, plan: Plan, node: NodePlan, instance: str) -> None:
    # resolv.conf may be a symlink in the image (systemd-resolved): replace it, not follow it
    check(lxd, instance, ["rm", "-f", "/etc/resolv.conf"])
    push_files(lxd, instance, etc_files(plan, node))


# -- daemons -----------------------------------------------------------------------------
PYTHON = f"/usr/bin/env PYTHONPATH={RUNTIME_ZIP} /usr/bin/python3"
"""How commands inside a container run palmnet's own modules (Service.python): the
image's python3 with palmnet's pure-Python package, as one zip `push_runtime` puts
there (Python imports from a zip on its path)."""


def adapter(cls: type[Service], plan: Plan, node: NodePlan, init: int) -> Service:
    """An adapter with paths under /run/palmnet as the container sees them, seen from
    the host through /proc/INIT/root (for readiness, sockets, logs)."""
    return cls(plan, node, Path(str(STATE_DIR)), f"/proc/{init}/root", PYTHON, isolated=True)


def adapters(plan: Plan, node: NodePlan, init: int) -> list[Service]:
    return [adapter(cls, plan, node, init) for cls in services_for(node)]


@functools.cache
def runtime_zip() -> bytes:
    """palmnet's Python modules in a zip (made once per process): the PD and kea
    hooks and the web server import only the standard library and these."""
    base = Path(palmnet.__file__).parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(base.rglob("*.py")):
            z.write(path, str(Path("palmnet") / path.relative_to(base)))
    return buf.getvalue()


def push_runtime(lxd: Lxd, instance: str) -> None:
    check(lxd, instance, ["mkdir", "-p", str(STATE_DIR)])
    push_bytes(lxd, instance, PurePosixPath(str(RUNTIME_ZIP)), runtime_zip(), 0o644)


class LxdSpawner:
    """How the LXD backend puts a daemon into a container: files pushed through LXD's
    API, the process started with `exec` in its own session (it outlives the exec),
    its host pid found from its pid in the container."""

    def __init__(self, lxd: Lxd, node: NodePlan, instance: str, init: int) -> None:
        self.lxd = lxd
        self.node = node
        self.instance = instance
        self.init = init

    def write(self, files: dict[Path, str]) -> None:
        push_files(
            self.lxd,
            self.instance,
            {
                PurePosixPath(str(p)): (text, 0o755 if text.startswith("#!") else 0o644)
                for p, text in files.items()
            },
        )

    def spawn(self, svc: Service) -> int:
        exe = svc.argv()[0]
        pidfile = PurePosixPath(str(svc.dir)) / ".palmnet.pid"
        # The pid goes to a file, read from the host: LXD 5.0's recorded output of a
        # shell that leaves a background job came back empty.
        # The daemon's compiled-in paths (dhcpcd's /run/dhcpcd, /var/lib/dhcpcd) are the
        # container's own already; binding its state dirs there keeps its files together.
        binds = "".join(
            f"mkdir -p {shlex.quote(str(src))} {shlex.quote(target)} && "
            f"mount --bind {shlex.quote(str(src))} {shlex.quote(target)}; "
            for target, src in svc.private_mounts().items()
        )
        line = (
            f"mkdir -p {shlex.quote(str(svc.dir))}; {binds}"
            f"test -x {shlex.quote(exe)} || {{ echo 'missing: {exe} (package {svc.package})'; "
            f"exit 127; }}; (cd / && exec setsid {shlex.join(svc.argv())}) "
            f">>{shlex.quote(str(svc.log))} 2>&1 </dev/null & echo $! >{pidfile}"
        )
        proc = run(self.lxd, self.instance, ["sh", "-c", line])
        key = f"{self.node.name}/{svc.name}"
        if proc.returncode != 0:
            raise LabError(f"{key}: cannot start in its container: {proc.stdout.strip()}")
        inner = Path(f"/proc/{self.init}/root{pidfile}").read_text().strip()
        pid = host_pid(self.init, int(inner))
        if pid is None:
            raise LabError(f"{key} exited at start: {log_tail(svc.host_log)}")
        return pid


def start_daemons(
    journal: Journal,
    lxd: Lxd,
    plan: Plan,
    node: NodePlan,
    instance: str,
    init: int,
    when: Sequence[str],
) -> list[Started]:
    """Start the node's daemons of these start phases (services/runner.py)."""
    chosen = [s for s in adapters(plan, node, init) if s.starts in when]
    if not chosen:
        return []
    if any(s.name in PYTHON_SERVICES for s in chosen):
        push_runtime(lxd, instance)
    return start_all(journal, node, chosen, LxdSpawner(lxd, node, instance, init))


def host_pid(init: int, inner: int) -> int | None:
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
