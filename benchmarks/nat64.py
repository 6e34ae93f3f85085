#!/usr/bin/env python3
"""Throughput through the NAT64 (TAYGA) against the same path without translation.

    sudo .venv/bin/python benchmarks/nat64.py [--seconds 5] [--runs 3] [--parallel 1]

One lab (examples/ipv6only.yaml with the WAN made dual-stack, so one path can be
taken both ways): w1 on the IPv6-only LAN, the openwrt router (TAYGA, fw4), and
`legacy` on the WAN with 198.51.100.10 and 2001:db8:64:2::10. iperf3 (Debian)
runs as a server in legacy and as a client in w1 / app, TCP, each run bounded by
--seconds:

- native:  w1 -> 2001:db8:64:2::10           IPv6 routed by the router's kernel
- nat64:   w1 -> 2001:db8:64:ff9b::c633:640a IPv6 -> TAYGA -> IPv4 (pool4)
- 464xlat: app -> 198.51.100.10              IPv4 -> CLAT (TAYGA) -> IPv6 -> PLAT -> IPv4

It prints receiver throughput (Gbit/s, median of --runs) and the ratio to
native. Numbers, not assertions: TAYGA is one userspace thread copying every
packet through a tun device twice, the kernel path is none of that.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PALMNET = [sys.executable, "-m", "palmnet"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
LAB = "n64bench"
WAN6 = "\toption ip6addr '2001:db8:64:2::1/64'\n"
TARGETS = {
    "native": ("w1", "2001:db8:64:2::10"),
    "nat64": ("w1", "2001:db8:64:ff9b::c633:640a"),
    "464xlat": ("app", "198.51.100.10"),
}


def palmnet(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*PALMNET, *args], capture_output=True, text=True, env=ENV, timeout=300)
    if check and proc.returncode != 0:
        raise SystemExit(f"palmnet {' '.join(args)}: {proc.stderr or proc.stdout}")
    return proc


def write_lab(folder: Path) -> Path:
    router = folder / "ipv6only-router"
    shutil.copytree(ROOT / "examples" / "ipv6only-router", router)
    network = (router / "network").read_text()
    network = network.replace(
        "\toption netmask '255.255.255.0'\n", "\toption netmask '255.255.255.0'\n" + WAN6
    )
    (router / "network").write_text(network)
    text = (ROOT / "examples" / "ipv6only.yaml").read_text().replace("name: v6only", f"name: {LAB}")
    text = text.replace(
        "eth0: {network: wan, ipv4: [198.51.100.10/24]}",
        "eth0: {network: wan, ipv4: [198.51.100.10/24], ipv6: [2001:db8:64:2::10/64]}",
    ).replace(
        "      - {to: 203.0.113.128/26, via: router}",
        "      - {to: 203.0.113.128/26, via: router}\n      - {to: 2001:db8:64::/48, via: router}",
    )
    path = folder / "lab.yaml"
    path.write_text(text)
    return path


def iperf(node: str, address: str, seconds: int, parallel: int) -> float:
    """Receiver throughput in bit/s of one bounded iperf3 run."""
    proc = palmnet(
        "exec", "--lab", LAB, node, "--", "iperf3", "-c", address, "-t", str(seconds),
        "-P", str(parallel), "-J", "--connect-timeout", "3000", check=False,
    )  # fmt: skip
    data = json.loads(proc.stdout or "{}")
    if "error" in data or "end" not in data:
        raise SystemExit(f"iperf3 {node} -> {address}: {data.get('error', proc.stderr)}")
    return float(data["end"]["sum_received"]["bits_per_second"])


def warm_up(node: str, address: str, tries: int = 10) -> None:
    """Pings until one is answered: neighbour discovery, TAYGA's first mapping."""
    for _ in range(tries):
        ping = palmnet("exec", "--lab", LAB, node, "--", "ping", "-c", "1", "-W", "1", address,
                       check=False)  # fmt: skip
        if ping.returncode == 0:
            return
    raise SystemExit(f"{node} cannot reach {address}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (it builds a lab)")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lab(Path(tmp))
        palmnet("up", str(path))
        pid_file = Path(tmp) / "iperf3.pid"
        try:
            palmnet("exec", "--lab", LAB, "legacy", "--", "iperf3", "-s", "-D", "-I", str(pid_file))
            results: dict[str, float] = {}
            for name, (node, address) in TARGETS.items():
                warm_up(node, address)
                runs = [iperf(node, address, args.seconds, args.parallel) for _ in range(args.runs)]
                results[name] = statistics.median(runs)
                shown = ", ".join(f"{r / 1e9:.2f}" for r in runs)
                rate = results[name] / 1e9
                print(f"{name:8} {node:4} -> {address:28} {rate:6.2f} Gbit/s  ({shown})")
            for name in ("nat64", "464xlat"):
                print(f"{name} / native: {results[name] / results['native']:.1%}")
        finally:
            if pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), 15)
            palmnet("down", LAB, check=False)


if __name__ == "__main__":
    main()
