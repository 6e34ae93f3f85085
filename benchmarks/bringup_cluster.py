#!/usr/bin/env python3
"""Bring-up of N busybox hosts behind one router on a two-member LXD cluster: every
node on one member (`placement: pack`) against spread over both (`placement:
spread`), in the same run.

    sudo .venv/bin/python benchmarks/bringup_cluster.py [--sizes 20,100] [--keep-cluster]

The cluster is the test cluster of scripts/lxd-test-cluster.sh (two nested LXD
members on this machine; built if it is not up, removed at the end unless
--keep-cluster). For each N and placement, a lab `pnclbN`: router `r` on member 1
(`ra: true`, radvd advertises 2001:db8:b::/64) and hosts h1..hN on one network;
wall time of `palmnet up` (returns when every planned address of every node is
present and out of DAD, so on `spread` every host on member 2 has its SLAAC
address from the RA that crossed the VXLAN tunnel), `palmnet ls` checks every
host's GUA, then `palmnet down` is timed. Images are imported first (not timed).
Both members share this machine's two cores: the numbers show the cost of the
cluster machinery (placement, per-member network parts, tunnels, a second LXD),
not the gain of a second machine.

A third row per N, `spread-far`: spread again, with member 2 driven as a member on
another machine (PALMNET_LXD_FAR_MEMBERS): its hosts are configured and waited
for through LXD's API alone (backends/lxd/far.py), not through this machine's /proc.
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
SCRIPT = ROOT / "scripts" / "lxd-test-cluster.sh"
PREFIX = "2001:db8:b:"


def palmnet() -> list[str]:
    return [sys.executable, "-m", "palmnet"]


def lab_text(name: str, hosts: int, placement: str) -> str:
    return (
        f"name: {name}\nbackend: lxd\nplacement: {placement}\nnetworks:\n  lan: {{}}\n"
        "nodes:\n  r:\n    kind: router\n    member: pncl-m1\n    interfaces:\n"
        "      eth0: {network: lan, ipv6: [2001:db8:b::1/64], ra: true}\n"
        f"  h:\n    count: {hosts}\n    interfaces:\n      eth0: {{network: lan}}\n"
    )


def run(
    argv: list[str], env: dict[str, str], timeout: float = 1800, check: bool = True
) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    took = time.monotonic() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:])} failed:\n{proc.stderr}")
    return took, proc.stdout


MODES = {  # row -> (the lab's placement, extra environment)
    "pack": ("pack", {}),
    "spread": ("spread", {}),
    "spread-far": ("spread", {"PALMNET_LXD_FAR_MEMBERS": "pncl-m2"}),
}


def one(size: int, mode: str, base: dict[str, str], tmp: Path) -> dict[str, object]:
    placement, extra = MODES[mode]
    env = {**base, **extra}
    name = f"pnclb{size}{mode[0]}{'f' if extra else ''}"
    path = tmp / f"{name}.yaml"
    path.write_text(lab_text(name, size, placement))
    subprocess.run([*palmnet(), "down", name], capture_output=True, env=env)
    try:
        up, _ = run([*palmnet(), "up", str(path), "--format", "json"], env)
        _, out = run([*palmnet(), "ls", name, "--format", "json"], env)
        nodes = json.loads(out)
        missing = [
            n["name"]
            for n in nodes
            if n["kind"] == "host"
            and not any(a.startswith(PREFIX) for i in n["interfaces"] for a in i["ipv6"])
        ]
        per_member: dict[str, int] = {}
        for n in nodes:
            per_member[n.get("member", "-")] = per_member.get(n.get("member", "-"), 0) + 1
    finally:
        down, _ = run([*palmnet(), "down", name], env, check=False)
    return {
        "hosts": size,
        "placement": mode,
        "up_s": round(up, 1),
        "down_s": round(down, 1),
        "per_member": per_member,
        "hosts_without_gua": missing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20,100")
    ap.add_argument("--keep-cluster", action="store_true")
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "LXD_DIR"}
    base["PALMNET_PYTHON"] = sys.executable
    built = time.monotonic()
    proc = subprocess.run([str(SCRIPT), "up", "2"], capture_output=True, text=True, env=base)
    if proc.returncode != 0:
        raise SystemExit(f"the test cluster did not start:\n{proc.stderr}")
    print(f"test cluster ready in {time.monotonic() - built:.1f} s (2 nested LXD members)")
    env = {
        **base,
        "LXD_DIR": proc.stdout.strip().splitlines()[-1].removeprefix("LXD_DIR="),
        "PALMNET_LXD_TUNNEL_INTERFACE": "eth0",
        "PYTHONPATH": str(ROOT / "src"),
    }
    rows = []
    try:
        for image in ("busybox", "router"):
            run([*palmnet(), "image", "build", image], env)
        with tempfile.TemporaryDirectory(prefix="pncl-bench-") as tmp:
            for size in [int(s) for s in args.sizes.split(",")]:
                for mode in MODES:
                    row = one(size, mode, env, Path(tmp))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        if not args.keep_cluster:
            subprocess.run([str(SCRIPT), "down"], env=base, capture_output=True)
    print()
    print(f"{'hosts':>5}  {'placement':<10}  {'up s':>6}  {'down s':>6}  per member")
    for r in rows:
        members = ", ".join(f"{m} {c}" for m, c in sorted(r["per_member"].items()))  # type: ignore[union-attr]
        print(
            f"{r['hosts']:>5}  {r['placement']:<10}  {r['up_s']:>6}  {r['down_s']:>6}  {members}"
            + (f"  NO GUA: {r['hosts_without_gua']}" if r["hosts_without_gua"] else "")
        )


if __name__ == "__main__":
    main()
