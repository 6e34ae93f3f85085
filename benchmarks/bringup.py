#!/usr/bin/env python3
"""Bring-up of N plain hosts on one bridge: palmnet against Mininet, side by side.

    sudo .venv/bin/python benchmarks/bringup.py [--sizes 10,100,500] [--repeat K]
                                                [--backend netns] [--rootless]

For each N, a lab `benchN` (written to a temp dir): one router `r` advertising
2001:db8:b::/64 (radvd, `ra: true`) and hosts h1..hN, all on one bridge.

palmnet (driven only through its CLI, as a user would):
- up:    wall time around the process `.venv/bin/palmnet up benchN.yaml --format
         json` (interpreter start and imports included). `up` returns only when
         every planned address of every node is present and out of DAD. Run with
         PALMNET_TRACE=1: its `palmnet: phase NAME: X s` stderr lines are shown.
- check: afterwards `palmnet ls --format json`: a host counts as ready when its
         planned GUA (from `palmnet plan --format json`) is there; the others are
         stragglers and are named.
- down:  wall time around `palmnet down benchN`. The kernel frees namespaces
         asynchronously after that.
- memory: see MEMORY_METHOD below.
- neighbour table: the machine's IPv6 neighbour entries (/proc/net/stat/ndisc_cache,
         first column, hex) before and after `up`, and gc_thresh3. When the lab
         would take the table over 80 % of gc_thresh3 (the rule `up` warns by),
         `--raise-neigh-limit` is passed (restored by `down`).
- DAD profile: read back from h1 with `palmnet exec --lab benchN h1 -- sysctl ...`.

Mininet (benchmarks/mininet_hosts.py under /usr/bin/python3, Debian's mininet 2.3):
N bare hosts on one LinuxBridge switch, no controller. "start" counts from the
launch of that process to the return of net.start() (the same span as palmnet's
`up`: interpreter, imports, hosts, links, bridge), "stop" is net.stop(). Its hosts
get no global IPv6 address (no RA, no static IPv6): checked on h1.

One thing at a time: nothing runs in parallel (the machine may have 2 cores).
A failed run is printed and the next one goes on; the bench lab is always taken
down (try/finally), and Mininet stops its own network in a finally.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import rootless_column
from palmnet.lab.host import ENTRIES_PER_INTERFACE

ROOT = Path(__file__).resolve().parent.parent
PALMNET = ROOT / ".venv" / "bin" / "palmnet"
MININET_SCRIPT = Path(__file__).resolve().parent / "mininet_hosts.py"
SYSTEM_PYTHON = "/usr/bin/python3"
PREFIX = "2001:db8:b::1/64"
UP_TIMEOUT = 900.0
MININET_TIMEOUT = 600.0  # the bound: Mininet at 1000 if it finishes in 10 min
NDISC = Path("/proc/net/stat/ndisc_cache")
GC3 = Path("/proc/sys/net/ipv6/neigh/default/gc_thresh3")
PHASE = re.compile(r"^palmnet: phase (?P<name>.+): (?P<s>[0-9.]+) s$")
DAD_KEYS = (
    "net.ipv6.conf.eth0.accept_dad",
    "net.ipv6.conf.eth0.dad_transmits",
    "net.ipv6.neigh.eth0.retrans_time_ms",
    "net.ipv6.conf.eth0.router_solicitation_delay",
    "net.ipv6.conf.eth0.router_solicitation_interval",
    "net.ipv6.conf.eth0.router_solicitation_max_interval",
)
MEMORY_METHOD = """\
memory per node (MB/node) = (processes + kernel) / N, both taken as the difference
  between just before `up` (after the previous lab's memory settled) and just after it
  (once MemAvailable stops moving, at most 5 s):
  processes = PSS sum of every process whose network namespace is one of the lab's
    (/proc/PID/ns/net against the inodes of /run/netns/palmnet-LAB*: radvd);
  kernel = delta of Slab + Percpu + VmallocUsed + KernelStack + PageTables + Shmem
    from /proc/meminfo (namespaces, netdevs, sysctl and proc/sys entries, neighbour
    and route entries; Shmem = the lab's tmpfs state and /etc uppers).
  Cross-check shown beside it: the drop of MemAvailable / N, which also counts pages
  the kernel takes straight from the page allocator, but moves with page cache and any
  other activity of the machine (read small differences with care)."""


# ---- small readers -------------------------------------------------------------------------


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])  # kB
    return out


def ndisc_entries() -> int:
    try:
        return int(NDISC.read_text().splitlines()[1].split()[0], 16)
    except (OSError, IndexError, ValueError):
        return -1


NDISC_COUNTERS = ("forced_gc_runs", "table_fulls", "res_failed", "unresolved_discards")


def ndisc_counters() -> dict[str, int]:
    """Per-CPU counters of /proc/net/stat/ndisc_cache, summed over the CPUs."""
    out = dict.fromkeys(NDISC_COUNTERS, 0)
    try:
        head, *rows = NDISC.read_text().splitlines()
        names = head.split()
        for row in rows:
            for name, value in zip(names, row.split(), strict=False):
                if name in out:
                    out[name] += int(value, 16)
    except (OSError, ValueError):
        pass
    return out


RESTORES = Path("/run/palmnet/.host-sysctl")  # lab/host_restore.py, for root


def restore_done(timeout: float = 20.0) -> float | None:
    """Seconds from now until the neighbour limit that `down` handed to a detached
    process is back (its file gone; None: not within `timeout`). An older tree has no
    such process: 0. The next run must not start while it may still lower the limit."""
    t0 = time.monotonic()
    while RESTORES.is_dir() and any(RESTORES.glob("*.json")):
        if time.monotonic() - t0 >= timeout:
            return None
        time.sleep(0.02)
    return time.monotonic() - t0


def settle_neigh(target: int, timeout: float = 10.0) -> int:
    """Entries after `down`: namespaces (and their entries) go asynchronously."""
    deadline = time.monotonic() + timeout
    while (n := ndisc_entries()) > target and time.monotonic() < deadline:
        time.sleep(0.2)
    return n


def gc_thresh3() -> int:
    return int(GC3.read_text())


KERNEL_FIELDS = ("Slab", "Percpu", "VmallocUsed", "KernelStack", "PageTables", "Shmem")


def kernel_kb(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(after.get(k, 0) - before.get(k, 0) for k in KERNEL_FIELDS)


def settle_memory(timeout: float = 15.0) -> dict[str, int]:
    """Wait until MemAvailable stops moving (namespaces are freed asynchronously)."""
    deadline = time.monotonic() + timeout
    last = meminfo()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = meminfo()
        if abs(now["MemAvailable"] - last["MemAvailable"]) < 512:  # kB
            return now
        last = now
    return last


def lab_netns_inodes(lab: str) -> set[int]:
    out = set()
    for p in Path("/run/netns").glob(f"palmnet-{lab}*"):
        if p.name == f"palmnet-{lab}" or p.name.startswith(f"palmnet-{lab}."):
            with contextlib.suppress(OSError):
                out.add(p.stat().st_ino)
    return out


def lab_processes(lab: str) -> list[tuple[int, str, int, int]]:
    """(pid, comm, pss kB, rss kB) of every process inside one of the lab's namespaces."""
    inodes = lab_netns_inodes(lab)
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.stat(d / "ns" / "net").st_ino not in inodes:
                continue
            comm = (d / "comm").read_text().strip()
            pss = rss = 0
            for line in (d / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
            out.append((int(d.name), comm, pss, rss))
        except (OSError, ValueError):
            continue
    return out


def tree_size_kb(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total // 1024


# ---- the lab -------------------------------------------------------------------------------


PER_BRIDGE = 1000  # a Linux bridge holds 1,023 ports (topology/ports.py)


def topology(n: int) -> str:
    """One bridge up to PER_BRIDGE hosts; past that, one network per thousand hosts,
    the router on each (a single bridge would be refused by `plan`)."""
    if n > PER_BRIDGE:
        return spread_topology(n)
    return f"""\
# benchmarks/bringup.py: {n} plain hosts and one RA router on one bridge
name: bench{n}
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["{PREFIX}"], ra: true}}
  h:
    count: {n}
    interfaces:
      eth0: {{network: lan}}
"""


def spread_topology(n: int) -> str:
    lans = -(-n // PER_BRIDGE)
    nets = "".join(f"  lan{k}: {{}}\n" for k in range(lans))
    ifaces = "".join(
        f'      eth{k}: {{network: lan{k}, ipv6: ["2001:db8:b:{k:x}::1/64"], ra: true}}\n'
        for k in range(lans)
    )
    hosts = "".join(
        f"  l{k}h:\n    count: {min(PER_BRIDGE, n - k * PER_BRIDGE)}\n"
        f"    interfaces:\n      eth0: {{network: lan{k}}}\n"
        for k in range(lans)
    )
    return (
        f"# benchmarks/bringup.py: {n} plain hosts on {lans} networks, one RA router\n"
        f"name: bench{n}\nnetworks:\n{nets}nodes:\n  r:\n    kind: router\n"
        f"    interfaces:\n{ifaces}{hosts}"
    )


def single_bridge_refusal(n: int, workdir: Path) -> str:
    """What `plan` says of N hosts on one bridge (past 1,023 ports), and how fast."""
    path = workdir / f"one-bridge-{n}.yaml"
    path.write_text(
        topology(min(n, PER_BRIDGE)).replace(f"count: {min(n, PER_BRIDGE)}", f"count: {n}")
    )
    t, p = palmnet("plan", str(path), "--format", "json")
    return f"exit {p.returncode} in {t:.2f} s: {p.stderr.strip()}"


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None):
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    return time.monotonic() - t0, p


PALMNET_SRC: Path | None = None  # --palmnet-src: run another tree's palmnet
VERBS_AT = 100  # the lab size the read-only verbs are timed on


def palmnet(*args: str, timeout: float = 120.0, env: dict[str, str] | None = None):
    if PALMNET_SRC is None:
        return run([str(PALMNET), *args], timeout, env)
    env = dict(env or os.environ, PYTHONPATH=str(PALMNET_SRC))
    return run([sys.executable, "-m", "palmnet", *args], timeout, env)


def global_src(src: Path | None) -> None:
    global PALMNET_SRC
    PALMNET_SRC = src


def planned_guas(plan: list[dict]) -> dict[str, set[str]]:
    """Host name -> its planned global addresses (no fe80::)."""
    out = {}
    for node in plan:
        if node["kind"] != "host":
            continue
        out[node["name"]] = {
            a.split("/")[0]
            for i in node["interfaces"]
            for a in i["ipv6"]
            if not a.lower().startswith("fe80:")
        }
    return out


def lab_running(lab: str) -> bool:
    return Path(f"/run/palmnet/{lab}").exists() or Path(f"/run/netns/palmnet-{lab}").exists()


@dataclass
class PalmnetRun:
    n: int
    up_s: float | None = None
    down_s: float | None = None
    down_note: str = ""
    verified: bool = False
    ready: int = 0
    stragglers: list[str] = field(default_factory=list)
    mb_per_node: float | None = None
    mem: dict[str, float] = field(default_factory=dict)
    procs: list[tuple[int, str, int, int]] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)
    stderr_other: list[str] = field(default_factory=list)
    neigh: dict[str, int] = field(default_factory=dict)
    raised: bool = False
    dad: dict[str, str] = field(default_factory=dict)
    verbs: dict[str, tuple[float, float]] = field(default_factory=dict)  # median, min
    errors: list[str] = field(default_factory=list)


VERB_RUNS = 10


def verb_times(lab: str, host: str) -> dict[str, tuple[float, float]]:
    """Read-only verbs on the running lab, wall time from process launch to exit:
    median and min of VERB_RUNS (each checked to succeed)."""
    verbs = {
        "--version": ["--version"],
        "ls": ["ls", lab],
        "ls --format json": ["ls", lab, "--format", "json"],
        f"exec {host} -- true": ["exec", "--lab", lab, host, "--", "true"],
    }
    out = {}
    for label, argv in verbs.items():
        times = []
        for _ in range(VERB_RUNS):
            t, p = palmnet(*argv)
            if p.returncode != 0:
                raise RuntimeError(f"palmnet {' '.join(argv)}: exit {p.returncode} {p.stderr}")
            times.append(t)
        out[label] = (statistics.median(times), min(times))
    return out


def run_palmnet(n: int, workdir: Path) -> PalmnetRun:
    lab = f"bench{n}"
    r = PalmnetRun(n)
    path = workdir / f"{lab}.yaml"
    path.write_text(topology(n))
    if lab_running(lab):  # left over from an earlier, interrupted run
        palmnet("down", lab, timeout=300)
    try:
        _, p = palmnet("plan", str(path), "--format", "json")
        if p.returncode != 0:
            r.errors.append(f"plan exit {p.returncode}: {p.stderr.strip()[-800:]}")
            return r
        want = planned_guas(json.loads(p.stdout))
        interfaces = sum(len(node["interfaces"]) for node in json.loads(p.stdout))
        need, have, cap = ENTRIES_PER_INTERFACE * interfaces, ndisc_entries(), gc_thresh3()
        r.raised = have + need > 0.8 * cap
        r.neigh = {"before": have, "gc_thresh3_before": cap, "need": need}

        mem0 = settle_memory()
        c0 = ndisc_counters()
        env = dict(os.environ, PALMNET_TRACE="1")
        argv = ["up", str(path), "--format", "json"]
        if r.raised:
            argv.insert(1, "--raise-neigh-limit")
        try:
            up_s, p = palmnet(*argv, timeout=UP_TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            r.errors.append(f"palmnet up did not return within {UP_TIMEOUT:g} s")
            return r
        mem1 = settle_memory(timeout=5.0)  # the kernel finishes addrconf work after `up`
        r.procs = lab_processes(lab)
        state_kb = tree_size_kb(Path(f"/run/palmnet/{lab}"))
        r.neigh.update(after_up=ndisc_entries(), gc_thresh3_during=gc_thresh3())
        c1 = ndisc_counters()
        r.neigh.update({k: c1[k] - c0[k] for k in NDISC_COUNTERS})
        for line in p.stderr.splitlines():
            m = PHASE.match(line.strip())
            if m:
                r.phases.append((m["name"], float(m["s"])))
            elif line.strip():
                r.stderr_other.append(line.rstrip())
        if p.returncode != 0:
            r.errors.append(f"palmnet up exit {p.returncode} after {up_s:.2f} s")
        else:
            r.up_s = up_s
        avail = mem0["MemAvailable"] - mem1["MemAvailable"]
        kernel = kernel_kb(mem0, mem1)
        pss = sum(x[2] for x in r.procs)
        r.mb_per_node = (kernel + pss) / 1024 / n if r.up_s is not None else None
        r.mem = {
            "kernel_delta_mb": kernel / 1024,
            "mem_available_delta_mb": avail / 1024,
            "slab_delta_mb": (mem1["Slab"] - mem0["Slab"]) / 1024,
            "sunreclaim_delta_mb": (mem1["SUnreclaim"] - mem0["SUnreclaim"]) / 1024,
            "percpu_delta_mb": (mem1.get("Percpu", 0) - mem0.get("Percpu", 0)) / 1024,
            "vmalloc_delta_mb": (mem1["VmallocUsed"] - mem0["VmallocUsed"]) / 1024,
            "shmem_delta_mb": (mem1["Shmem"] - mem0["Shmem"]) / 1024,
            "procs_pss_mb": sum(x[2] for x in r.procs) / 1024,
            "procs_rss_mb": sum(x[3] for x in r.procs) / 1024,
            "state_dir_mb": state_kb / 1024,
        }

        # Verify what the kernel holds (also after a failed `up`: count what is there).
        _, p = palmnet("ls", lab, "--format", "json", timeout=300)
        if p.returncode == 0:
            have_addrs = {
                node["name"]: {a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"]}
                for node in json.loads(p.stdout)
            }
            r.verified = True
            for host, guas in want.items():
                if guas and guas <= have_addrs.get(host, set()):
                    r.ready += 1
                else:
                    r.stragglers.append(host)
        else:
            r.errors.append(f"palmnet ls exit {p.returncode}: {p.stderr.strip()[-400:]}")

        first = sorted(want, key=lambda h: (len(h), h))[0]
        _, p = palmnet("exec", "--lab", lab, first, "--", "sysctl", *DAD_KEYS)
        for line in p.stdout.splitlines():
            key, _, value = line.partition(" = ")
            r.dad[key.strip()] = value.strip()
        if p.returncode != 0:
            r.errors.append(f"palmnet exec sysctl exit {p.returncode}: {p.stderr.strip()}")
        if n == VERBS_AT:
            r.verbs = verb_times(lab, "h7" if "h7" in want else first)
    except Exception as e:  # print it, go on with the next size
        r.errors.append(f"{type(e).__name__}: {e}")
    finally:
        if not lab_running(lab):
            r.down_note = "not run: no lab left (a failed `up` removes what it made)"
        else:
            try:
                down_s, p = palmnet("down", lab, timeout=600)
                if p.returncode == 0:
                    r.down_s = down_s
                else:
                    r.errors.append(f"palmnet down exit {p.returncode}: {p.stderr.strip()}")
            except subprocess.TimeoutExpired:
                r.errors.append("palmnet down did not return within 600 s")
        r.neigh["restored_after_s"] = restore_done()
        r.neigh["after_down"] = settle_neigh(r.neigh.get("before", 0))
        r.neigh["gc_thresh3_after_down"] = gc_thresh3()
    return r


@dataclass
class MininetRun:
    n: int
    start_s: float | None = None
    stop_s: float | None = None
    data: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def run_mininet(n: int) -> MininetRun:
    r = MininetRun(n)
    settle_memory()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(MININET_SCRIPT), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=MININET_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script stops its network in a finally
        out, err = proc.communicate(timeout=300)
        r.errors.append(f"mininet_hosts.py did not finish within {MININET_TIMEOUT:g} s")
    line = next((x for x in out.splitlines() if x.startswith("MININET-JSON ")), None)
    if line is None:
        r.errors.append(f"mininet_hosts.py exit {proc.returncode}: {err.strip()[-800:]}")
        return r
    r.data = json.loads(line.split(" ", 1)[1])
    if "error" in r.data:
        r.errors.append("mininet: " + r.data["error"])
    if "stop_error" in r.data:
        r.errors.append("mininet stop: " + r.data["stop_error"])
    if "t_started" in r.data:
        r.start_s = r.data["t_started"] - t0
        r.data["launch_to_python_s"] = r.data["t_process"] - t0
    if "error" not in r.data:
        r.stop_s = r.data.get("stop_s")
    noise = [x for x in err.splitlines() if x.strip()]
    if noise:
        r.data["stderr"] = noise[-10:]
    return r


# ---- report --------------------------------------------------------------------------------


def agg(values: list[float | None]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals)


def cell(a: tuple[float, float] | None, repeat: int, fmt: str = "{:.2f}") -> str:
    if a is None:
        return "-"
    med, low = a
    return fmt.format(med) if repeat == 1 else f"{fmt.format(med)} ({fmt.format(low)})"


def print_size(pr: PalmnetRun, mr: MininetRun, k: int, repeat: int) -> None:
    tag = f"N={pr.n}" + (f" run {k + 1}/{repeat}" if repeat > 1 else "")
    print(f"\n=== {tag} ===", flush=True)
    up = f"{pr.up_s:.2f} s" if pr.up_s is not None else "FAILED"
    down = f"{pr.down_s:.2f} s" if pr.down_s is not None else pr.down_note or "FAILED"
    print(f"palmnet up {up}, down {down}; hosts with their GUA: ", end="")
    if pr.verified:
        shown = ", ".join(pr.stragglers[:20]) + (" ..." if len(pr.stragglers) > 20 else "")
        print(f"{pr.ready}/{pr.n}; stragglers: {shown or 'none'}")
    else:
        print("not verified (no lab to list)")
    if pr.phases:
        print("  phases (PALMNET_TRACE=1): " + ", ".join(f"{k} {v:.3f}" for k, v in pr.phases))
        rest = (pr.up_s or 0) - sum(v for _, v in pr.phases)
        if pr.up_s is not None:
            print(f"  outside the traced phases (interpreter, imports, plan, table): {rest:.2f} s")
    for line in pr.stderr_other:
        print(f"  up stderr: {line}")
    if pr.mem and pr.up_s is not None:
        m = pr.mem
        procs = ", ".join(f"{c}[{pid}] {pss / 1024:.1f}" for pid, c, pss, _ in pr.procs) or "none"
        per_node = (m["kernel_delta_mb"] + m["procs_pss_mb"]) / pr.n
        print(
            f"  memory: {per_node:.3f} MB/node = (processes PSS {m['procs_pss_mb']:.1f}"
            f" + kernel {m['kernel_delta_mb']:.1f} MB) / {pr.n}; kernel: Slab"
            f" {m['slab_delta_mb']:+.1f} (unreclaimable {m['sunreclaim_delta_mb']:+.1f}),"
            f" Percpu {m['percpu_delta_mb']:+.1f}, Vmalloc {m['vmalloc_delta_mb']:+.1f},"
            f" Shmem {m['shmem_delta_mb']:+.1f} (state dir {m['state_dir_mb']:.1f}) MB;"
            f" processes (RSS {m['procs_rss_mb']:.1f} MB): {procs};"
            f" cross-check: MemAvailable {-m['mem_available_delta_mb']:+.1f} MB ="
            f" {m['mem_available_delta_mb'] / pr.n:.3f} MB/node"
        )
    nb = pr.neigh
    if "before" in nb:
        parts = [
            f"before {nb['before']}, after up {nb.get('after_up', '-')},"
            f" after down {nb.get('after_down', '-')}",
            f"estimate by up's rule ({ENTRIES_PER_INTERFACE} per interface) {nb['need']}",
        ]
        if pr.up_s is not None:
            parts[-1] += f", seen {(nb['after_up'] - nb['before']) / (pr.n + 1):.1f} per interface"
        if "forced_gc_runs" in nb:
            parts.append("during up: " + ", ".join(f"{k} +{nb[k]}" for k in NDISC_COUNTERS))
        gc = f"gc_thresh3 {nb['gc_thresh3_before']}"
        if pr.raised:
            gc += (
                f" -> {nb.get('gc_thresh3_during', '-')} (--raise-neigh-limit)"
                f" -> {nb.get('gc_thresh3_after_down', '-')} after down"
                f" (back {nb.get('restored_after_s') or 0:.2f} s after `down` returned)"
            )
        else:
            gc += " (not raised)"
        parts.append(gc)
        print("  IPv6 neighbour entries (machine-wide): " + "; ".join(parts))
    for label, (med, low) in pr.verbs.items():
        print(f"  `palmnet {label}` on this lab: {med * 1000:.0f} ms (min {low * 1000:.0f})")
    if pr.dad:
        print(
            "  first host's sysctls: "
            + ", ".join(f"{k.split('.', 3)[-1]}={v}" for k, v in pr.dad.items())
        )
    for e in pr.errors:
        print(f"  palmnet ERROR: {e}")

    d = mr.data
    if mr.start_s is not None:
        print(
            f"mininet start {mr.start_s:.2f} s from process launch (python3 start"
            f" {d['launch_to_python_s']:.2f}, import {d['import_s']:.2f}, {mr.n} x addHost +"
            f" addSwitch {d['add_nodes_s']:.2f}, addLink + build() {d['build_s']:.2f},"
            f" start() {d['start_s']:.2f}); stop() "
            + (f"{mr.stop_s:.2f} s" if mr.stop_s is not None else "FAILED")
        )
        mem = d.get("mem", {})
        if mem:
            own = (mem["kernel_delta_kb"] + mem["shells_pss_kb"]) / 1024
            print(
                f"  mininet memory: {own / mr.n:.3f} MB/node = (bash shells PSS"
                f" {mem['shells_pss_kb'] / 1024:.1f} + kernel {mem['kernel_delta_kb'] / 1024:.1f}"
                f" MB) / {mr.n}, same method; plus Mininet's own python3 (must stay alive):"
                f" PSS {mem['python_pss_kb'] / 1024:.1f} MB; cross-check: MemAvailable"
                f" {-mem['mem_available_delta_kb'] / 1024:+.1f} MB"
            )
        if "h1_ipv6_global" in d:
            gua = d["h1_ipv6_global"] or "none"
            print(
                f"  mininet h1 `ip -6 addr show scope global`: {gua}; IPv4 {d['h1_ipv4']};"
                f" link-local: {d['h1_ipv6_link'] or 'none'}"
            )
        if d.get("sysctls_restored"):
            print(
                "  mininet's fixLimits() changed host sysctls, put back: "
                + "; ".join(d["sysctls_restored"])
            )
    for line in d.get("stderr", []):
        print(f"  mininet stderr: {line}")
    for e in mr.errors:
        print(f"  mininet ERROR: {e}")
    sys.stdout.flush()


def print_table(
    results: dict[tuple[int, str], list[tuple[PalmnetRun, MininetRun]]], repeat: int
) -> None:
    head = (
        "N",
        "tree",
        "palmnet up s",
        "stragglers",
        "palmnet down s",
        "MB/node",
        "Mininet start s",
        "Mininet stop s",
        "Mininet MB/node",
        "ratio palmnet/mininet start",
    )
    rows = []
    for (n, tree), runs in results.items():
        up = agg([p.up_s for p, _ in runs])
        mstart = agg([m.start_s for _, m in runs])
        ratios = [p.up_s / m.start_s for p, m in runs if p.up_s is not None and m.start_s]
        strag = [len(p.stragglers) if p.verified else None for p, _ in runs]
        rows.append(
            (
                str(n),
                tree,
                cell(up, repeat),
                cell(agg(strag), repeat, "{:.0f}"),
                cell(agg([p.down_s for p, _ in runs]), repeat),
                cell(agg([p.mb_per_node for p, _ in runs]), repeat, "{:.3f}"),
                cell(mstart, repeat),
                cell(agg([m.stop_s for _, m in runs]), repeat),
                cell(agg([mininet_mb(m) for _, m in runs]), repeat, "{:.3f}"),
                cell(agg(ratios), repeat),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    print("\n" + line)
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if repeat > 1:
        print(f"cells: median (min) of {repeat} runs")
    verbs = [(tree, p.verbs) for (_, tree), runs in results.items() for p, _ in runs if p.verbs]
    if verbs:
        print(
            f"\nread-only verbs on the {VERBS_AT}-node lab, ms from process launch"
            f" (median of {VERB_RUNS}):"
        )
        labels = list(verbs[0][1])
        print("tree | " + " | ".join(labels))
        for tree, v in verbs:
            print(
                f"{tree} | "
                + " | ".join(f"{v[k][0] * 1000:.0f}" if k in v else "-" for k in labels)
            )


def mininet_mb(m: MininetRun) -> float | None:
    mem = m.data.get("mem", {})
    if not mem or m.start_s is None:
        return None
    return (mem["kernel_delta_kb"] + mem["shells_pss_kb"]) / 1024 / m.n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes", default="10,100,500,1000", help="comma-separated N (default 10,100,500,1000)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (min/median shown)")
    ap.add_argument(
        "--backend", choices=["netns"], default="netns", help="palmnet backend (only netns for now)"
    )
    ap.add_argument("--no-mininet", action="store_true", help="palmnet only")
    ap.add_argument(
        "--rootless",
        action="store_true",
        help="also as a plain user made for the run, in its own user namespace "
        "(benchmarks/rootless_column.py)",
    )
    ap.add_argument(
        "--palmnet-src",
        type=Path,
        help="run `python -m palmnet` from this src dir (another tree), not .venv/bin/palmnet",
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="also run this src dir (an older tree) for every size, in the same run",
    )
    ap.add_argument(
        "--mininet-max", type=int, default=1000, help="no Mininet above this N (default 1000)"
    )
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    global PALMNET_SRC
    PALMNET_SRC = args.palmnet_src.resolve() if args.palmnet_src else None
    if os.geteuid() != 0:
        print("bringup.py: needs root (network namespaces)", file=sys.stderr)
        return 2

    palmnet("--help")  # warm the page cache
    t_cli, _ = palmnet("ls", "--help")
    if PALMNET_SRC is not None:
        print(f"palmnet from {PALMNET_SRC} (python -m palmnet), not {PALMNET}")
    print(
        f"palmnet bring-up benchmark, backend {args.backend}; {os.cpu_count()} CPUs,"
        f" kernel {os.uname().release}; palmnet CLI start alone (`palmnet ls --help`):"
        f" {t_cli:.2f} s"
    )
    print(
        "topology: one router r (kind router, eth0 2001:db8:b::1/64, ra: true -> radvd)"
        " and hosts h1..hN (kind host, eth0) on one bridge `lan`"
    )
    print(
        "DAD profile palmnet states (sysctl.py): DAD on (accept_dad 1, dad_transmits 1),"
        " neighbour retrans_time_ms 100, router_solicitation_delay 0,"
        " router_solicitation_interval 1, router_solicitation_max_interval 1;"
        " read back from h1 of every lab below"
    )
    print(MEMORY_METHOD)
    print(
        "mininet: Mininet(topo=None, controller=None, switch=LinuxBridge, build=False)"
        " under /usr/bin/python3; 'start' = process launch -> net.start() returned"
    )

    trees: list[tuple[str, Path | None]] = [("after", PALMNET_SRC)]
    if args.before is not None:
        trees.append(("before", args.before.resolve()))
    results: dict[tuple[int, str], list[tuple[PalmnetRun, MininetRun]]] = {}
    rootless: dict[int, list[rootless_column.RootlessRun]] = {}
    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="palmnet-bench-") as tmp,
    ):
        user = (
            stack.enter_context(rootless_column.bench_user(PALMNET_SRC)) if args.rootless else None
        )
        for n in sizes:
            if n > PER_BRIDGE:
                print(
                    f"\nN={n} on one bridge: `palmnet plan` {single_bridge_refusal(n, Path(tmp))}"
                )
                print(f"N={n} below: {-(-n // PER_BRIDGE)} networks of up to {PER_BRIDGE} hosts")
            for k in range(args.repeat):
                if args.no_mininet or n > args.mininet_max:
                    mr = MininetRun(n, errors=["skipped"])
                else:
                    try:
                        mr = run_mininet(n)
                    except Exception as e:
                        mr = MininetRun(n, errors=[f"{type(e).__name__}: {e}"])
                for tree, src in trees:
                    global_src(src)
                    try:
                        pr = run_palmnet(n, Path(tmp))
                    except Exception as e:  # even the finally failed: keep going
                        pr = PalmnetRun(n, errors=[f"{type(e).__name__}: {e}"])
                    results.setdefault((n, tree), []).append((pr, mr))
                    print(f"\n--- tree: {tree} ({src or PALMNET}) ---")
                    print_size(pr, mr, k, args.repeat)
                if user is not None:
                    pr = results[(n, "after")][-1][0]
                    need = pr.neigh.get("need") if pr.raised else None
                    rl = rootless_column.run_rootless(user, n, topology(n), need)
                    rootless.setdefault(n, []).append(rl)
    print_table(results, args.repeat)
    if rootless:
        root_up = {n: [p.up_s for p, _ in results[(n, "after")]] for n in rootless}
        rootless_column.print_column(root_up, rootless)
    return 0


if __name__ == "__main__":
    sys.exit(main())
