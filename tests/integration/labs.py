"""Helpers for tests that build real labs with the real `palmnet` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PALMNET = [sys.executable, "-m", "palmnet"]


def run(
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [*PALMNET, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"palmnet {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def run_json(*args: str) -> object:
    return json.loads(run(*args, "--format", "json").stdout)


def node_exec(
    lab: str, node: str, *argv: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run("exec", "--lab", lab, node, "--", *argv, check=check)


def ip_json(lab: str, node: str, *argv: str) -> list[dict]:
    """`ip -j ...` of this machine in the node's network namespace (a busybox node's
    own `ip` has no JSON)."""
    proc = node_tool(lab, node, "ip", "-j", *argv)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "[]")


def lab_traces(lab: str) -> list[str]:
    """Everything of the lab that could be left on the machine."""
    traces = []
    netns = Path("/run/netns")
    if netns.is_dir():
        traces += [
            f"netns {n}"
            for n in os.listdir(netns)
            if n == f"palmnet-{lab}" or n.startswith(f"palmnet-{lab}.")
        ]
    with open("/proc/self/mountinfo") as f:
        traces += [
            f"mount {line.split()[4]}"
            for line in f
            if f"/run/palmnet/{lab}" in line.split()[4] or f"palmnet-{lab}." in line.split()[4]
        ]
    state = Path("/run/palmnet") / lab
    if state.exists():
        traces.append(f"state dir {state}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"/run/palmnet/{lab}/" in cmd:
            traces.append(f"process {pid} {cmd[:80]}")
    return traces


def restores_done(timeout: float = 20.0) -> bool:
    """Whether the neighbour-limit restores that `down` handed to a detached process
    (lab/host_restore.py) are done within `timeout`: that process removes its file
    when it has put the values back. It tells no one else, so its folder is looked at
    every 50 ms; the test does not take over its work (as `host.settle` would)."""
    from palmnet.lab import host_restore

    deadline = time.monotonic() + timeout
    while host_restore.pending():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def write_lab(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- both backends --------------------------------------------------------------------
BACKENDS = ("netns", "lxd")


def lxd_reason() -> str | None:
    """Why the LXD backend cannot be tested here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        from palmnet.backends.lxd.client import connect
        from palmnet.errors import InputError
    except ImportError as exc:  # pragma: no cover
        return f"palmnet's LXD backend cannot load: {exc}"
    try:
        connect()
    except InputError as exc:
        return f"LXD not available ({exc.message}); scripts/lxd-setup.sh sets it up"
    return None


def lxd_traces(lab: str) -> list[str]:
    """Every LXD object tagged with the lab."""
    from palmnet.backends.lxd import images, instances, networks
    from palmnet.backends.lxd.client import connect

    lxd = connect()
    traces = [f"instance {i['name']}" for i in instances.lab_instances(lxd, lab).values()]
    traces += [f"network {n}" for n in networks.lab_networks(lxd, lab)]
    traces += [f"profile {p}" for p in networks.lab_profiles(lxd, lab)]
    traces += [f"image {r.fingerprint[:12]}" for r in images.list_images(lxd) if r.lab == lab]
    return traces


def traces(lab: str, backend: str) -> list[str]:
    """What of the lab is left on the machine, on either backend."""
    found = lab_traces(lab)
    if backend == "lxd":
        found += lxd_traces(lab)
    return found


def up(path: Path, backend: str, *args: str, timeout: float = 240) -> None:
    """`palmnet up` of a lab file on `backend` (the file says nothing of backends)."""
    run("up", "--backend", backend, *args, str(path), timeout=timeout)


def node_tool(lab: str, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """A program of this machine in the node's network namespace (whatever the node's
    image holds), through the Lab API's node handle."""
    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        return s.running_node(node).tool(list(argv))


def service_host_path(lab: str, node: str, service: str, leaf: str) -> Path:
    """Where the host sees a file of one of the node's daemons (BIRD's socket...)."""
    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        svc = s.running_node(node).service(service)
        return svc.host(svc.dir / leaf)
