#!/usr/bin/env python3
"""Late hosts at scale: when each host's link came up and got its GUA, over many `up`s.

    sudo .venv/bin/python benchmarks/late_hosts.py [--hosts 1000] [--runs 20]
                                                   [--palmnet-src DIR]

Each run brings up benchmarks/bringup.py's lab of N hosts (`--raise-neigh-limit`,
PALMNET_TRACE=1 for its phases), then reads, inside every host, the kernel's own
timestamps of its addresses (IFA_CACHEINFO `cstamp`, 1/100 s since boot): when the
link-local was made (the kernel's linkwatch had taken the link up) and when the GUA
was (an RA came). It prints per run the `addresses` phase, the spread of both times
from the first link-local, and, for runs whose addresses phase passed --slow s, how
many link-locals appeared in each 0.1 s: a clump of 50 hosts a second apart is
linkwatch's one-run-a-second path (100 interfaces per run; backends/netns/build.py).
Also the RS/RA counters of the hosts and the router (ICMPv6 MIB) and the drops of
radvd's socket, to tell a lost solicitation from a late link. Then `down`.

Root; nothing else should run on the machine; the lab is always taken down.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyroute2 import IPRoute

import bringup
from palmnet.kernel import nsfs

RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
PHASE = re.compile(r"phase ([a-z ]+): ([\d.]+) s")


def stamps(netns: str) -> dict[str, int]:
    """'ll' and 'gua' -> the cstamp of the node's first such IPv6 address."""
    with nsfs.netns(netns):
        ipr = IPRoute()
    try:
        out: dict[str, int] = {}
        for a in ipr.get_addr(family=10):
            kind = {RT_SCOPE_LINK: "ll", RT_SCOPE_UNIVERSE: "gua"}.get(a["scope"])
            if kind is not None:  # not the loopback's ::1
                out.setdefault(kind, a.get_attr("IFA_CACHEINFO")["cstamp"])
        return out
    finally:
        ipr.close()


def counters(netns: str) -> dict[str, int]:
    with nsfs.netns(netns):
        text = Path("/proc/self/net/snmp6").read_text()
        raw = Path("/proc/self/net/raw6").read_text()
    out = {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}
    out["raw6_drops"] = sum(int(line.split()[-1]) for line in raw.splitlines()[1:])
    return out


NDISC_KEYS = ("table_fulls", "forced_gc_runs", "res_failed")


def spread(values: list[int]) -> str:
    v = [x / 100 for x in sorted(values)]
    return f"p50 {v[len(v) // 2]:.2f} p99 {v[int(len(v) * 0.99)]:.2f} max {v[-1]:.2f} s"


def one_run(k: int, lab: str, path: Path, slow: float) -> float:
    env = dict(os.environ, PALMNET_TRACE="1")
    before = bringup.ndisc_counters()
    t0 = time.monotonic()
    _, p = bringup.palmnet("up", str(path), "--format", "json", "--raise-neigh-limit", env=env)
    wall = time.monotonic() - t0
    after = bringup.ndisc_counters()
    ndisc = {k: after[k] - before[k] for k in NDISC_KEYS}
    phases = dict(PHASE.findall(p.stderr))
    addresses = float(phases.get("addresses", "nan"))
    print(
        f"run {k}: up {wall:.2f} s exit {p.returncode}; "
        + ", ".join(f"{name} {s}" for name, s in phases.items())
        + "; neighbour table during up: "
        + ", ".join(f"{k} +{v}" for k, v in ndisc.items())
    )
    if p.returncode != 0:
        print("  " + p.stderr.strip()[-600:])
        return addresses
    prefix = f"palmnet-{lab}."
    hosts = [n for n in os.listdir(nsfs.NETNS_DIR) if n.startswith(prefix) and n != prefix + "r"]
    by_host = {n: stamps(nsfs.netns_path(n)) for n in hosts}
    seen = {n: s for n, s in by_host.items() if "ll" in s and "gua" in s}
    first = min(s["ll"] for s in seen.values())
    lls = spread([s["ll"] - first for s in seen.values()])
    guas = spread([s["gua"] - first for s in seen.values()])
    print(f"  {len(seen)} hosts, from the first link-local: link-local {lls}; GUA {guas}")
    if addresses > slow:
        bins = collections.Counter((s["ll"] - first) // 10 for s in seen.values())
        print("  link-locals per 0.1 s:", dict(sorted(bins.items())))
        for n, s in seen.items():
            if s["gua"] - s["ll"] > 100:  # an RA more than a second after the link
                c = counters(nsfs.netns_path(n))
                print(
                    f"  late: {n} link-local at {(s['ll'] - first) / 100:.2f} s, GUA at"
                    f" {(s['gua'] - first) / 100:.2f} s; RS out {c['Icmp6OutRouterSolicits']},"
                    f" RA in {c['Icmp6InRouterAdvertisements']}, ICMPv6 in errors"
                    f" {c['Icmp6InErrors']}, IPv6 in discards {c['Ip6InDiscards']}"
                )
                for what in (["route", "show", "default"], ["neigh", "show"]):
                    shown = subprocess.run(
                        ["ip", "-n", n, "-6", *what], capture_output=True, text=True
                    ).stdout.strip()
                    print(f"    ip -6 {what[0]}: {shown or '(none)'}")
    rs = collections.Counter(counters(nsfs.netns_path(n))["Icmp6OutRouterSolicits"] for n in hosts)
    router = counters(nsfs.netns_path(prefix + "r"))
    print(
        f"  hosts by RS sent {dict(sorted(rs.items()))}; router: RS in"
        f" {router['Icmp6InRouterSolicits']}, RA out {router['Icmp6OutRouterAdvertisements']},"
        f" raw socket drops {router['raw6_drops']}"
    )
    return addresses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--slow", type=float, default=1.0, help="addresses phase (s) that is late")
    ap.add_argument("--palmnet-src", type=Path, help="run `python -m palmnet` from this src dir")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("late_hosts.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    bringup.global_src(args.palmnet_src.resolve() if args.palmnet_src else None)
    lab = f"bench{args.hosts}"
    done: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{lab}.yaml"
        path.write_text(bringup.topology(args.hosts))
        for k in range(args.runs):
            try:
                done.append(one_run(k, lab, path, args.slow))
            finally:
                bringup.palmnet("down", lab)
    late = [a for a in done if a > args.slow]
    print(
        f"\n{len(done)} runs of {args.hosts} hosts: addresses phase median"
        f" {statistics.median(done):.2f} s, max {max(done):.2f} s;"
        f" over {args.slow:g} s: {len(late)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
