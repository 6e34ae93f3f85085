#!/usr/bin/env python3
"""External networks (issue 16): what joining the machine's LAN and guarding it costs.

    sudo .venv/bin/python benchmarks/external.py [--sizes 10,50] [--pings 500]

Builds its own "home LAN" (tests/integration/homelan.py: a bridge `pnextbr9` in the
host namespace, IPv6 off on it, and a namespace `pnext-bench` running radvd with
2001:db8:ebbd:2080::/64 and dnsmasq); never the machine's real interfaces.

For each size N:
- external: N hosts on `external: {bridge: pnextbr9, prefix: ...}`: wall time of
  `palmnet up` (returns when every host holds its planned GUA from the home
  router's RA) and of `palmnet down` (every port deleted from the bridge).
- lab: the same N hosts on a lab bridge with a lab router advertising the prefix.
Then, on the external lab of the smallest size: a flood ping (`ping -f -c P`) from
the home namespace to a node, with the node's guard table loaded and after
deleting it (`nft delete table`): the guard's per-packet cost on the way out.
Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.integration.homelan import HOME_PREFIX, HomeLan  # noqa: E402

PALMNET = [sys.executable, "-m", "palmnet"]
BRIDGE = "pnextbr9"

EXTERNAL = """\
name: {name}
networks:
  home: {{external: {{bridge: {bridge}, prefix: {prefix}}}}}
nodes:
  h:
    count: {n}
    interfaces:
      eth0: {{network: home}}
"""
LAB = """\
name: {name}
networks:
  home: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: home, ipv6: [2001:db8:ebbd:2080::1/64], ra: true}}
  h:
    count: {n}
    interfaces:
      eth0: {{network: home}}
"""


def palmnet(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.monotonic()
    proc = subprocess.run([*PALMNET, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"palmnet {' '.join(args)}: {proc.stderr}")
    return time.monotonic() - start


def rtt(ns: str, address: str, count: int) -> tuple[float, float]:
    """(average round trip in microseconds, round trips per second) of a flood ping:
    each echo request leaves when the previous reply came back."""
    start = time.monotonic()
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-q", "-f", "-c", str(count), address],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    wall = time.monotonic() - start
    avg = float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))  # type: ignore[union-attr]
    return avg * 1000, count / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,50")
    parser.add_argument("--pings", type=int, default=20000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    home = HomeLan(bridge=BRIDGE, ns="pnext-bench").open()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                for kind, text in (("external", EXTERNAL), ("lab", LAB)):
                    name = f"extb{kind[0]}{n}"
                    path = Path(tmp) / f"{name}.yaml"
                    body = text.format(name=name, bridge=BRIDGE, prefix=HOME_PREFIX, n=n)
                    path.write_text(body)
                    up = palmnet("up", str(path))
                    down = palmnet("down", name)
                    rows.append((kind, n, up, down))
            n = min(sizes)
            name = f"extbg{n}"
            path = Path(tmp) / "guard.yaml"
            path.write_text(EXTERNAL.format(name=name, bridge=BRIDGE, prefix=HOME_PREFIX, n=n))
            palmnet("up", str(path))
            try:
                import json

                env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
                plan = json.loads(
                    subprocess.run(
                        [*PALMNET, "plan", str(path), "--format", "json"],
                        capture_output=True, text=True, env=env, check=True,
                    ).stdout
                )  # fmt: skip
                target = plan[0]["interfaces"][0]["ipv6"][1].split("/")[0]
                guarded = rtt(home.ns, target, args.pings)
                subprocess.run(
                    ["ip", "netns", "exec", f"palmnet-{name}.h1", "nft", "delete", "table",
                     "netdev", f"palmnet_{name}_guard"], check=True,
                )  # fmt: skip
                bare = rtt(home.ns, target, args.pings)
            finally:
                palmnet("down", name)
    finally:
        home.close()
    print(f"{'network':<10}{'hosts':>6}{'up s':>8}{'down s':>8}")
    for kind, n, up, down in rows:
        print(f"{kind:<10}{n:>6}{up:>8.2f}{down:>8.2f}")
    for label, (us, per_s) in (("guarded", guarded), ("guard deleted", bare)):
        print(f"flood ping home -> h1, {label}: {us:.1f} us average RTT, {per_s:,.0f}/s")


if __name__ == "__main__":
    main()
