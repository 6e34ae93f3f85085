"""Helpers for tests that build real labs with the real `palmnet` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PALMNET = [sys.executable, "-m", "palmnet"]


def run(
    *args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [*PALMNET, *args], capture_output=True, text=True, env=full_env, timeout=timeout
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
    return json.loads(node_exec(lab, node, "ip", "-j", *argv).stdout or "[]")


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


def write_lab(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
