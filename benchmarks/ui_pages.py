#!/usr/bin/env python3
"""How long `palmnet ui` takes to answer each page of a running lab.

    sudo .venv/bin/python benchmarks/ui_pages.py LAB [--rounds 20] [--node NODE]

Starts `palmnet ui --port 0` (loopback only), reads the token URL from its first
line, then fetches every page of the lab ROUNDS times, one at a time, with the
token as a Bearer header, and prints the median and the slowest time per page and
the server's resident memory. Each page asks the Lab API again (netlink, the
journal, BIRD's socket, the node's files): this is what one refresh costs. Prints
numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _fetch(url: str, token: str) -> tuple[float, int]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as reply:
        reply.read()
        status = reply.status
    return time.perf_counter() - start, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lab")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--node", help="the node page to time (default: the lab's first)")
    args = parser.parse_args()

    from palmnet.lab import LabAPI

    plan = LabAPI().plan_of(args.lab)
    node = args.node or plan.nodes[0].name
    pages = ["/", f"/lab/{args.lab}", f"/lab/{args.lab}/graph.json", f"/lab/{args.lab}/ls"]
    pages += [f"/lab/{args.lab}/node/{node}", f"/lab/{args.lab}/experiments"]
    pages += [f"/lab/{args.lab}/node/{n.name}/firewall" for n in plan.nodes if n.kind == "openwrt"]

    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "palmnet", "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if "?token=" not in url:
            raise SystemExit(f"palmnet ui printed no URL: {url!r}")
        base, token = url.split("/?token=")
        first, _ = _fetch(base + "/", token)
        print(f"lab {args.lab}: {len(plan.nodes)} nodes, {len(plan.networks)} networks")
        print(f"start to first page: {time.perf_counter() - started:.2f} s (first {first:.3f} s)")
        print(f"{'PAGE':<44} {'MEDIAN':>9} {'MAX':>9}")
        for page in pages:
            times = []
            for _ in range(args.rounds):
                seconds, status = _fetch(base + page, token)
                if status != 200:
                    raise SystemExit(f"{page}: HTTP {status}")
                times.append(seconds)
            median, slowest = statistics.median(times) * 1000, max(times) * 1000
            print(f"{page:<44} {median:7.1f} ms {slowest:6.1f} ms")
        rss = Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]
        print(f"server resident memory: {int(rss) / 1024:.0f} MiB")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
