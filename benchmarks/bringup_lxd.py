#!/usr/bin/env python3
"""Bring-up of N busybox hosts behind one router: palmnet on LXD, palmnet on netns, and
plain `lxc launch` in a loop, side by side.

    sudo .venv/bin/python benchmarks/bringup_lxd.py [--sizes 10,50]

For each N, a lab `lxbN`: router `r` (`ra: true`, radvd advertises 2001:db8:b::/64)
and hosts h1..hN on one network. Every number is wall time of the commands a user
types, interpreter start included:

- lxd:   `palmnet up --backend lxd` (returns when every planned address of every
         node is present and out of DAD), then `palmnet ls` checks every host holds
         its planned GUA; `palmnet down`.
- netns: the same file with `--backend netns`.
- lxc:   the router alone (`palmnet up --backend lxd` of a lab without hosts),
         then `lxc launch palmnet-busybox cI -n BRIDGE` for I in 1..N, one after
         the other, as by hand, then `lxc list --format json` polled (every 0.2 s,
         as a user would re-run it) until every container shows a global IPv6
         address. Reported: the launch loop, and the loop to every GUA. Then
         `lxc delete -f` of all of them in one command.
Images are built first (not timed). One thing at a time; everything is removed in
a finally.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PALMNET = [str(ROOT / ".venv" / "bin" / "python"), "-m", "palmnet"]
PREFIX = "2001:db8:b:"


def lab_text(name: str, hosts: int) -> str:
    lines = [
        f"name: {name}",
        "networks:",
        "  lan: {}",
        "nodes:",
        "  r:",
        "    kind: router",
        "    interfaces:",
        "      eth0: {network: lan, ipv6: [2001:db8:b::1/64], ra: true}",
    ]
    if hosts:
        lines += [
            "  h:",
            f"    count: {hosts}",
            "    interfaces:",
            "      eth0: {network: lan}",
        ]
    return "\n".join(lines) + "\n"


def palmnet(*args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    proc = subprocess.run([*PALMNET, *args], capture_output=True, text=True)
    took = time.monotonic() - started
    if check and proc.returncode != 0:
        raise RuntimeError(f"palmnet {' '.join(args)}: {proc.stderr.strip()}")
    return took, proc


def ready_hosts(lab: str) -> tuple[int, int]:
    _, proc = palmnet("ls", lab, "--format", "json")
    nodes = [n for n in json.loads(proc.stdout) if n["name"] != "r"]
    ok = sum(
        1 for n in nodes if any(a.startswith(PREFIX) for i in n["interfaces"] for a in i["ipv6"])
    )
    return ok, len(nodes)


def run_palmnet(path: Path, lab: str, backend: str) -> dict[str, object]:
    try:
        up, _ = palmnet("up", "--backend", backend, str(path), "--format", "json")
        ok, total = ready_hosts(lab)
    finally:
        down, _ = palmnet("down", lab, check=False)
    return {"up": up, "down": down, "ready": f"{ok}/{total}"}


def lxc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["lxc", *args], capture_output=True, text=True, check=True)


def run_plain(tmp: Path, n: int) -> dict[str, object]:
    from palmnet.backends.lxd.networks import bridge_name

    lab = f"lxr{n}"
    path = tmp / f"{lab}.yaml"
    path.write_text(lab_text(lab, 0))
    names = [f"pnbench-c{i}" for i in range(1, n + 1)]
    try:
        router, _ = palmnet("up", "--backend", "lxd", str(path))
        bridge = bridge_name(lab, "lan")
        started = time.monotonic()
        for name in names:
            lxc("launch", "palmnet-busybox", name, "-n", bridge, "-q")
        launched = time.monotonic() - started
        deadline = started + 300
        ok = 0
        while time.monotonic() < deadline:
            listing = json.loads(lxc("list", "pnbench-c", "--format", "json").stdout)
            ok = sum(
                1
                for inst in listing
                if any(
                    a["family"] == "inet6" and a["address"].startswith(PREFIX)
                    for net in ((inst.get("state") or {}).get("network") or {}).values()
                    for a in net.get("addresses", [])
                )
            )
            if ok == n:
                break
            time.sleep(0.2)  # a user re-running `lxc list`
        ready = time.monotonic() - started
    finally:
        d0 = time.monotonic()
        subprocess.run(["lxc", "delete", "-f", *names], capture_output=True, text=True)
        deleted = time.monotonic() - d0
        palmnet("down", lab, check=False)
    return {
        "router": router,
        "launch": launched,
        "ready": ready,
        "delete": deleted,
        "gua": f"{ok}/{n}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    for image in ("busybox", "router"):
        palmnet("image", "build", image)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n in sizes:
            lab = f"lxb{n}"
            path = tmp / f"{lab}.yaml"
            path.write_text(lab_text(lab, n))
            lxd = run_palmnet(path, lab, "lxd")
            netns = run_palmnet(path, lab, "netns")
            plain = run_plain(tmp, n)
            rows.append((n, lxd, netns, plain))
            print(f"N={n}: lxd {lxd} | netns {netns} | lxc {plain}", file=sys.stderr, flush=True)
    print()
    print(
        "| N | palmnet lxd: up (GUAs ready) / down | palmnet netns: up / down "
        "| lxc launch loop: launches / every GUA / delete (router lab up first) |"
    )
    print("| --- | --- | --- | --- |")
    for n, lxd, netns, plain in rows:
        print(
            f"| {n} | {lxd['up']:.1f} s ({lxd['ready']}) / {lxd['down']:.1f} s "
            f"| {netns['up']:.1f} s ({netns['ready']}) / {netns['down']:.1f} s "
            f"| {plain['launch']:.1f} s / {plain['ready']:.1f} s ({plain['gua']}) / "
            f"{plain['delete']:.1f} s (router {plain['router']:.1f} s) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
