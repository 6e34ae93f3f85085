#!/usr/bin/python3
"""Start and stop N bare Mininet hosts on one Linux bridge; print JSON.

    sudo /usr/bin/python3 benchmarks/mininet_hosts.py N

The Mininet side of benchmarks/bringup.py. Mininet (Debian package `mininet`
2.3) imports only under the system Python, so bringup.py runs this file as a
subprocess. No controller and no Open vSwitch: one `LinuxBridge` switch (needs
bridge-utils' brctl) and N `Host`s, each linked to it:

    Mininet(topo=None, controller=None, switch=LinuxBridge, build=False)
    addSwitch + N x addHost + N x addLink; net.build(); net.start()  ... net.stop()

Times are taken with time.monotonic() (CLOCK_MONOTONIC, shared by every
process of the machine), so bringup.py can also count from the moment it
launched this process, as it does for `palmnet up`.

What this script never does: `mn -c` or mininet.clean.cleanup() (they kill
every `ping`, every ovs and every `mininet:` shell on the machine). It stops
only the network it built (net.stop() in a finally, also on SIGTERM).
Mininet.init() raises some host-wide sysctls (fixLimits: neighbour tables of
IPv4, socket buffers, ...) and never lowers them again; this script records
them before and writes back the ones Mininet changed, and reports them.

The JSON goes to stdout on one line that starts with `MININET-JSON `.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

T_PROCESS = time.monotonic()

SWITCH = "pnb1"  # a name of our own in the machine's namespace (Mininet's bridge lives there)
FIXLIMITS_SYSCTLS = (
    "fs/file-max",
    "net/core/wmem_max",
    "net/core/rmem_max",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/core/netdev_max_backlog",
    "net/ipv4/neigh/default/gc_thresh1",
    "net/ipv4/neigh/default/gc_thresh2",
    "net/ipv4/neigh/default/gc_thresh3",
    "net/ipv4/route/max_size",
    "kernel/pty/max",
)


def read_sysctls() -> dict[str, str]:
    out = {}
    for key in FIXLIMITS_SYSCTLS:
        try:
            with open("/proc/sys/" + key) as f:
                out[key] = f.read().strip()
        except OSError:
            pass
    return out


def restore_sysctls(before: dict[str, str]) -> list[str]:
    restored = []
    after = read_sysctls()
    for key, old in before.items():
        new = after.get(key)
        if new is not None and new != old:
            try:
                with open("/proc/sys/" + key, "w") as f:
                    f.write(old)
                restored.append(f"{key.replace('/', '.')}: {new} -> {old}")
            except OSError as e:
                restored.append(f"{key.replace('/', '.')}: {new} (could not restore {old}: {e})")
    return restored


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0])  # kB
    return out


KERNEL_FIELDS = ("Slab", "Percpu", "VmallocUsed", "KernelStack", "PageTables", "Shmem")


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"signal {signum}")


def main() -> int:
    n = int(sys.argv[1])
    signal.signal(signal.SIGTERM, _terminate)
    out: dict[str, object] = {"n": n, "t_process": T_PROCESS}
    t0 = time.monotonic()
    from mininet.log import setLogLevel
    from mininet.net import Mininet
    from mininet.nodelib import LinuxBridge  # no ovs needed: brctl only

    setLogLevel("warning")
    out["t_imported"] = time.monotonic()
    out["import_s"] = out["t_imported"] - t0
    sysctls = read_sysctls()
    mem0 = meminfo()
    net = None
    try:
        t1 = time.monotonic()
        net = Mininet(topo=None, controller=None, switch=LinuxBridge, build=False)
        s = net.addSwitch(SWITCH)
        for i in range(1, n + 1):
            net.addHost(f"h{i}")
        t2 = time.monotonic()
        for h in net.hosts:
            net.addLink(h, s)
        net.build()
        t3 = time.monotonic()
        net.start()
        t4 = time.monotonic()
        out.update(
            t_started=t4,
            add_nodes_s=t2 - t1,
            build_s=t3 - t2,
            start_s=t4 - t3,
            build_start_s=t4 - t2,
            in_process_up_s=t4 - t1,
        )
        mem1 = meminfo()
        shells = sum(pss_kb(h.pid) for h in net.hosts)
        out["mem"] = {
            "mem_available_delta_kb": mem0["MemAvailable"] - mem1["MemAvailable"],
            "kernel_delta_kb": sum(mem1.get(k, 0) - mem0.get(k, 0) for k in KERNEL_FIELDS),
            "shells_pss_kb": shells,
            "python_pss_kb": pss_kb(os.getpid()),
        }
        time.sleep(1.0)  # not timed: give a router-less LAN a second anyway
        h1 = net.hosts[0]
        out["h1_ipv6_global"] = h1.cmd("ip -6 addr show scope global").strip()
        out["h1_ipv6_link"] = h1.cmd("ip -6 -br addr show scope link").strip()
        out["h1_ipv4"] = h1.IP()
        t5 = time.monotonic()
        net.stop()
        out["stop_s"] = time.monotonic() - t5
        net = None
    except BaseException as e:  # report, then stop what was built
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        if net is not None:
            try:
                t5 = time.monotonic()
                net.stop()
                out.setdefault("stop_s", time.monotonic() - t5)
            except BaseException as e:
                out["stop_error"] = f"{type(e).__name__}: {e}"
        out["sysctls_restored"] = restore_sysctls(sysctls)
    sys.stdout.write("MININET-JSON " + json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("mininet_hosts.py: needs root")
    sys.exit(main())
