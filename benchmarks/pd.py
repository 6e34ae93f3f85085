#!/usr/bin/env python3
"""Prefix delegation: from `up` to usable delegated GUAs, and renumbering.

    sudo .venv/bin/python benchmarks/pd.py [--labs cascade,fan] [--routers 20]
                                           [--runs 1] [--no-t1]

Labs (written to a temp dir with their own names, DAD on as in the files):
- cascade: examples/cascade.yaml (ISP /48 as /56s -> r1 -> r2 /60 -> h2; h1 on
  r1's LAN), lifetimes as in the file (T1 30 s).
- fan: one ISP delegating /56s to N openwrt routers (default 20), a host behind
  each.

For each lab:
- up: wall time of the process `palmnet up LAB.yaml` (interpreter included).
  Meanwhile a thread per host waits for the host's namespace, subscribes to its
  address events and records when every planned GUA in a delegated prefix is
  there and out of DAD ("GUA"), then pings the ISP's own address from that GUA
  until a reply comes back ("usable": routes via the kea hook on every level
  are in place). Times count from the launch of `palmnet up`. `up` itself
  returns later when hosts also wait for DHCPv4 (ARP probing).
- renumber, nudged: `palmnet.lab.renumber.renumber(...)` in this process; per
  host, seconds from the new pool being recorded until the host holds its new
  addresses out of DAD.
- renumber, waiting for T1 (unless --no-t1): the same with nudge=False: every
  router moves at its own renewal time (T1 of its lease), so the chain takes up
  to one T1 per level.
Then `palmnet down`. Nothing else runs meanwhile.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from palmnet.kernel import nsfs  # noqa: E402
from palmnet.lab import plan_file  # noqa: E402
from palmnet.lab.renumber import HostWatch, renumber  # noqa: E402
from palmnet.plan.model import Plan  # noqa: E402

PALMNET = [sys.executable, "-m", "palmnet"]
NEW_POOL = "2001:db8:beef::/48"  # nudged renumbering
T1_POOL = "2001:db8:cafe::/48"  # then renumbering that waits for the routers' T1
ULA = ipaddress.IPv6Network("fc00::/7")

FAN_NETWORK = """\
config globals 'globals'
\toption ula_prefix 'auto'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'eth0'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '198.51.100.1'
\toption netmask '255.255.255.0'
\toption ip6assign '60'

config interface 'wan'
\toption device 'eth1'
\toption proto 'none'

config interface 'wan6'
\toption device 'eth1'
\toption proto 'dhcpv6'
\toption reqprefix '56'
"""


def cascade_lab(workdir: Path, name: str) -> Path:
    for folder in ("cascade-r1", "cascade-r2"):
        shutil.copytree(ROOT / "examples" / folder, workdir / folder)
    text = (ROOT / "examples" / "cascade.yaml").read_text()
    path = workdir / f"{name}.yaml"
    path.write_text(text.replace("name: cascade", f"name: {name}", 1))
    return path


def fan_lab(workdir: Path, name: str, routers: int) -> Path:
    (workdir / "router").mkdir()
    (workdir / "router" / "network").write_text(FAN_NETWORK)
    lines = [
        f"name: {name}",
        "networks:",
        "  isp: {}",
        *(f"  lan{i}: {{}}" for i in range(1, routers + 1)),
        "nodes:",
        "  isp:",
        "    kind: isp",
        "    delegate: {pool: 2001:db8:ebbd::/48, length: 56}",
        "    interfaces:",
        "      eth0: {network: isp, ipv6: [2001:db8:ebb0::1/64], ra: true}",
    ]
    for i in range(1, routers + 1):
        lines += [
            f"  r{i}:",
            "    kind: openwrt",
            "    uci: router",
            f"    interfaces: {{eth0: {{network: lan{i}}}, eth1: {{network: isp}}}}",
            f"  h{i}:",
            f"    interfaces: {{eth0: {{network: lan{i}}}}}",
        ]
    path = workdir / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def delegated_guas(plan: Plan) -> dict[str, set[str]]:
    """Each host's planned SLAAC addresses inside a delegated prefix."""
    delegated = [
        n.pd_client.delegated
        for n in plan.nodes
        if n.pd_client is not None and n.pd_client.delegated is not None
    ]
    out: dict[str, set[str]] = {}
    for node in plan.nodes:
        if node.kind != "host":
            continue
        addrs = {
            str(a.ip)
            for i in node.interfaces
            for a in i.ipv6_slaac
            if any(a.ip in d for d in delegated)
        }
        if addrs:
            out[node.name] = addrs
    return out


def isp_address(plan: Plan) -> str:
    isp = next(n for n in plan.nodes if n.kind == "isp")
    return str(next(a.ip for i in isp.interfaces for a in i.ipv6_static))


def is_netns(path: str) -> bool:
    """Mounted already (an nsfs file), not just created."""
    try:
        return os.stat(path).st_dev != os.stat(nsfs.NETNS_DIR).st_dev
    except OSError:
        return False


class HostTimer(threading.Thread):
    """Times one host: delegated GUA out of DAD, then a ping from it answered."""

    def __init__(self, plan: Plan, host: str, addrs: set[str], target: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.plan, self.host, self.addrs, self.target, self.t0 = plan, host, addrs, target, t0
        self.gua: float | None = None
        self.usable: float | None = None

    def run(self) -> None:
        netns = f"palmnet-{self.plan.lab}.{self.host}"  # the netns backend's naming
        path = nsfs.netns_path(netns)
        deadline = self.t0 + 60
        while not is_netns(path):
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)  # poll: the namespace appears when `up` makes it; no event
        watch = HostWatch({self.host: path}, {self.host: self.addrs})
        try:
            watch.dump()
            self.gua = watch.wait(self.t0, deadline)[self.host]
        finally:
            watch.close()
        if self.gua is None:
            return
        source = sorted(self.addrs)[0]
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["ip", "netns", "exec", netns, "ping", "-6", "-n", "-q", "-c1", "-W0.2",
                 "-I", source, self.target],
                capture_output=True,
            )  # fmt: skip
            if ping.returncode == 0:
                self.usable = time.monotonic() - self.t0
                return


class JournalTimer(threading.Thread):
    """When `up` created the lab's journal: it holds the lock and starts building."""

    def __init__(self, lab: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.path = Path(os.environ.get("PALMNET_STATE_DIR", "/run/palmnet")) / lab
        self.t0 = t0
        self.seconds: float | None = None

    def run(self) -> None:
        journal = self.path / "journal.sqlite"
        while time.monotonic() < self.t0 + 120:
            if journal.exists():
                self.seconds = time.monotonic() - self.t0
                return
            time.sleep(0.002)  # poll: no event for a file another process creates


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PALMNET, *args], capture_output=True, text=True, timeout=timeout)


def show(title: str, times: dict[str, float | None]) -> None:
    got = [t for t in times.values() if t is not None]
    missing = [h for h, t in times.items() if t is None]
    worst = f"{max(got):6.3f} s" if got else "   -   "
    median = f"{sorted(got)[len(got) // 2]:6.3f} s" if got else "   -   "
    extra = f"  missing: {', '.join(missing)}" if missing else ""
    print(f"  {title:<34} every host {worst}   median {median}   ({len(got)} hosts){extra}")


def bench(path: Path, no_t1: bool) -> None:
    plan = plan_file(path)
    lab = plan.lab
    guas = delegated_guas(plan)
    target = isp_address(plan)
    isp = next(n.name for n in plan.nodes if n.kind == "isp")
    t1 = next(n for n in plan.nodes if n.kind == "isp").pd_servers[0].t1
    print(f"lab {lab}: {len(plan.nodes)} nodes, {len(guas)} hosts behind PD, T1 {t1} s")
    t0 = time.monotonic()
    timers = [HostTimer(plan, h, a, target, t0) for h, a in sorted(guas.items())]
    for t in timers:
        t.start()
    journal = JournalTimer(lab, t0)
    journal.start()
    proc = run(["up", str(path)])
    up_seconds = time.monotonic() - t0
    for t in timers:
        t.join(65)
    journal.join(1)
    try:
        if proc.returncode != 0:
            print(f"  up failed: {proc.stderr.strip()[-400:]}")
            return
        print(f"  {'up returned':<34} {up_seconds:6.3f} s")
        show("up -> delegated GUA (out of DAD)", {t.host: t.gua for t in timers})
        show("up -> GUA usable (ping ISP)", {t.host: t.usable for t in timers})
        if journal.seconds is not None:
            # `up` waits for a lock that any verb on any lab of the machine may hold,
            # and starts an interpreter: counted from the lab's journal instead.
            lag = journal.seconds
            print(f"  {'(journal created at)':<34} {lag:6.3f} s")
            show("journal -> GUA usable", {t.host: t.usable - lag for t in timers if t.usable})
        result = renumber(lab, isp, NEW_POOL, nudge=True, timeout=60)
        show("renumber, nudged -> new GUA", result.hosts)
        routers = ", ".join(f"{r.name} {r.seconds:.3f}" for r in result.routers if r.seconds)
        if len(result.routers) <= 4:
            print(f"  {'':<34} routers: {routers}; ISP kea {result.isp_seconds:.3f} s")
        if not no_t1:
            result = renumber(lab, isp, T1_POOL, nudge=False, wait=True, timeout=4 * t1 + 30)
            show(f"renumber, T1 ({t1} s) -> new GUA", result.hosts)
    finally:
        run(["down", lab])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labs", default="cascade,fan")
    parser.add_argument("--routers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-t1", action="store_true", help="skip renumbering without nudges")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: labs are network namespaces", file=sys.stderr)
        return 2
    for n in range(opts.runs):
        for which in opts.labs.split(","):
            with tempfile.TemporaryDirectory(prefix="palmnet-pd-") as tmp:
                work = Path(tmp)
                if which == "cascade":
                    path = cascade_lab(work, f"pdbc{n}")
                elif which == "fan":
                    path = fan_lab(work, f"pdbf{n}", opts.routers)
                else:
                    print(f"unknown lab {which!r} (cascade, fan)", file=sys.stderr)
                    return 2
                bench(path, opts.no_t1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
