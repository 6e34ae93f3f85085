#!/usr/bin/env python3
"""Babel and RIPng convergence after a silent link failure, measured WITHOUT palmnet.

    sudo .venv/bin/python benchmarks/babel_reference.py                 # every row, 3 trials
    sudo .venv/bin/python benchmarks/babel_reference.py --rows babel-wired-4s --trials 5
    sudo .venv/bin/python benchmarks/babel_reference.py --history routes --fresh   # young

The independent reproduction of issue 12, by hand: nothing of palmnet is imported
or run. Four network namespaces r1..r4 in a ring, joined by veth pairs named as in
examples/ring.yaml (r1 eth0 - r2 eth1, r2 eth0 - r3 eth1, r3 eth0 - r4 eth1,
r4 eth0 - r1 eth1), a host h1 behind r1 (home, 2001:db8:b0:1::/64) and h3 behind
r3 (dmz, 2001:db8:b0:3::/64), BIRD 2 in each router with a bird.conf written here
(`--config minimal`: device, direct on the LAN, kernel export of learned routes,
the protocol on the ring; `--config palmnet`: the text services/bird.py writes,
copied by hand, to change that one thing). DAD is off in every namespace
(accept_dad 0: the addresses are ours and cannot clash, and routers' next hops are
link-local), so nothing waits for it.

Per trial: h1 pings h3 every --interval s (iputils ping, reply times from -D);
after 2 s plus a random part of the protocol's hello/update period (so that the
trials sample where in that period the failure falls) the link r1's probes
really leave on (r1's transmit counters during the baseline, which also settle
RIPng's ECMP) fails silently: an nftables netdev ingress chain drops every frame
on both ends, inside the two routers (`--fail-on routers`, the default), or on
the two outer veth ends in a switch namespace with a bridge per link, as palmnet
does (`--fail-on switch`). The return path is read the same way (r3's counters,
then those of the router before r1), so the table says whether the replies
crossed the failed link too. Outage: from the last reply before the failure to
the first reply after it (reply timestamps; resolution: the interval). The
failure is removed once the replies have flowed for --quiet s again.

Before each trial (`--history full`, the default) the lab is in its steady
state: the route and the other way round the ring are known, and every Babel
neighbour of every router has heard 16 of the last 16 hellos (`birdc show babel
neighbors`), i.e. its k-out-of-j window is full, as on a link that has been up a
while. `--history routes` fails as soon as the routes and the other way are
known (what a fixed short settle time gives); `--fresh` restarts every BIRD
before each trial, so the neighbours are young (few hellos heard), and `--age S`
also starts the trial S s after BIRD started (a fixed settle time). With Babel
wired these change the outage (see docs/convergence.md): BIRD 2.0.12 declares a
wired link dead when fewer than 12/16 of the hellos it expected arrived, over the
hellos it has counted so far (at most 16).

Everything it makes is named with a unique prefix (bref<pid>-) and removed at the
end, on error and on Ctrl-C/SIGTERM: its namespaces (with their veths and nft
tables), its BIRD and ping processes (by pid) and its temp dir. Root.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROUTERS = ("r1", "r2", "r3", "r4")
HOSTS = ("h1", "h3")
# (router, interface, router, interface): the ring, named as in examples/ring.yaml
LINKS = (
    ("r1", "eth0", "r2", "eth1"),
    ("r2", "eth0", "r3", "eth1"),
    ("r3", "eth0", "r4", "eth1"),
    ("r4", "eth0", "r1", "eth1"),
)
HOME, DMZ = "2001:db8:b0:1::/64", "2001:db8:b0:3::/64"
H1, H3 = "2001:db8:b0:1::10", "2001:db8:b0:3::10"
LAN = {"r1": ("2001:db8:b0:1::1", "h1", H1), "r3": ("2001:db8:b0:3::1", "h3", H3)}
NFT_TABLE = "bref_fail"
BABEL_INFINITY = 65535


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    protocol: str  # babel | rip
    kind: str = "wired"  # babel interface type
    hello: float = 1.0  # babel hello interval (s)
    bfd: bool = False

    @property
    def period(self) -> float:
        """The hello/update period whose phase the failure samples (RIPng: update 1 s)."""
        return self.hello if self.protocol == "babel" else 1.0


ROWS = (
    Row("babel-wired-1s", "Babel wired, hello 1 s", "babel", "wired", 1),
    Row("babel-wired-4s", "Babel wired, hello 4 s (BIRD's default)", "babel", "wired", 4),
    Row("babel-wired-5s", "Babel wired, hello 5 s", "babel", "wired", 5),
    Row("babel-wireless", "Babel wireless, hello 1 s", "babel", "wireless", 1),
    Row("ripng-tuned", "RIPng, update 1 s, timeout 3 s, garbage 2 s", "rip"),
    Row("bfd", "RIPng tuned + BFD 20 ms x 3", "rip", bfd=True),
)
BY_NAME = {r.name: r for r in ROWS}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- bird.conf ------------------------------------------------------------------------
def _iface_block(row: Row) -> str:
    if row.protocol == "babel":
        secs = f"{row.hello:g} s" if float(row.hello).is_integer() else f"{row.hello * 1000:g} ms"
        return f"type {row.kind}; hello interval {secs};"
    return "update time 1; timeout time 3; garbage time 2;" + (" bfd on;" if row.bfd else "")


def _bfd_block(row: Row) -> str:
    if not row.bfd:
        return ""
    return (
        'protocol bfd {\n  interface "eth0", "eth1" {\n'
        "    min rx interval 20 ms; min tx interval 20 ms; multiplier 3;\n  };\n}\n"
    )


def bird_conf(row: Row, router: str, style: str) -> str:
    """bird.conf for one router: `minimal` (the reference) or `palmnet` (as
    services/bird.py writes it, transcribed by hand)."""
    rid = f"10.0.0.{ROUTERS.index(router) + 1}"
    src = "RTS_BABEL" if row.protocol == "babel" else "RTS_RIP"
    proto = "babel babel1" if row.protocol == "babel" else "rip ng rip1"
    debug = "  debug { events };\n" if row.protocol == "babel" else ""
    iface = f'  interface "eth0", "eth1" {{ {_iface_block(row)} }};\n'
    head = f"router id {rid};\nlog stderr all;\ntimeformat log iso long ms;\n"
    if style == "minimal":
        return (
            head + "protocol device { }\n"
            'protocol direct { ipv6; interface "eth2"; }\n'
            f"protocol kernel {{ ipv6 {{ export where source ~ [{src}]; }}; }}\n"
            + _bfd_block(row)
            + f"protocol {proto} {{\n"
            f"  ipv6 {{ import all; export where source ~ [RTS_DEVICE, {src}]; }};\n"
            + debug
            + iface
            + "}\n"
        )
    names = ("eth0", "eth1", "eth2") if router in LAN else ("eth0", "eth1")
    ifaces = ", ".join(f'"{i}"' for i in names)
    return (
        head + "protocol device { scan time 10; }\n"
        f"protocol direct {{ ipv6; interface {ifaces}; }}\n"
        "protocol kernel {\n"
        f"  ipv6 {{ import all; export where source ~ [{src}]; }};\n"
        "  learn;\n  scan time 10;\n}\n" + _bfd_block(row) + "filter announce {\n"
        "  if source = RTS_DEVICE then accept;\n"
        "  if source = RTS_INHERIT && krt_source = 4 then accept;\n"
        f"  if source ~ [{src}] then accept;\n"
        "  reject;\n}\n"
        f"protocol {proto} {{\n  ipv6 {{ import all; export filter announce; }};\n"
        + debug
        + "".join(f'  interface "{i}" {{ {_iface_block(row)} }};\n' for i in ("eth0", "eth1"))
        + "}\n"
    )


# -- the lab --------------------------------------------------------------------------
def run(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


@dataclass
class Lab:
    row: Row
    style: str
    fail_on: str
    prefix: str
    folder: Path
    netns: list[str] = field(default_factory=list)  # created (to delete), in order
    birds: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # BIRD start time per router

    def ns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def ip(self, node: str, *args: str) -> str:
        return run("ip", "-n", self.ns(node), *args)

    def sh(self, node: str, *argv: str, check: bool = True, stdin: str | None = None) -> str:
        return run("ip", "netns", "exec", self.ns(node), *argv, check=check, stdin=stdin)

    # building
    def _add_ns(self, node: str) -> None:
        self.netns.append(self.ns(node))  # recorded before it exists: cleanup is total
        run("ip", "netns", "add", self.ns(node))
        # defaults first: interfaces made afterwards copy them
        self.sh(
            node,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_dad=0",
            f"net.ipv6.conf.all.forwarding={int(node in ROUTERS)}",
            "net.ipv6.conf.default.accept_ra=0",
        )
        self.ip(node, "link", "set", "lo", "up")

    def _veth(self, a: str, ia: str, b: str, ib: str) -> None:
        self.ip(a, "link", "add", ia, "type", "veth", "peer", "name", ib, "netns", self.ns(b))
        self.ip(a, "link", "set", ia, "up")
        self.ip(b, "link", "set", ib, "up")

    def outer(self, router: str, iface: str) -> str:
        return f"{router}{iface}"  # the switch-side end of router's interface

    def build(self) -> None:
        for node in (*ROUTERS, *HOSTS):
            self._add_ns(node)
        if self.fail_on == "switch":
            self._add_ns("sw")
            for k, (a, ia, b, ib) in enumerate(LINKS):
                br = f"br{k}"
                self.ip("sw", "link", "add", br, "type", "bridge")
                self.ip("sw", "link", "set", br, "up")
                for r, i in ((a, ia), (b, ib)):
                    self._veth(r, i, "sw", self.outer(r, i))
                    self.ip("sw", "link", "set", self.outer(r, i), "master", br)
        else:
            for a, ia, b, ib in LINKS:
                self._veth(a, ia, b, ib)
        for router, (gw, host, addr) in LAN.items():
            self._veth(router, "eth2", host, "eth0")
            self.ip(router, "-6", "addr", "add", f"{gw}/64", "dev", "eth2", "nodad")
            self.ip(host, "-6", "addr", "add", f"{addr}/64", "dev", "eth0", "nodad")
            self.ip(host, "-6", "route", "add", "default", "via", gw)
        for r in ROUTERS:
            (self.folder / r).mkdir(parents=True, exist_ok=True)
            (self.folder / r / "bird.conf").write_text(bird_conf(self.row, r, self.style))
        self.start_birds()

    def sock(self, r: str) -> str:
        return str(self.folder / r / "bird.ctl")

    def log(self, r: str) -> Path:
        return self.folder / r / "bird.log"

    def start_birds(self) -> None:
        for r in ROUTERS:
            conf = self.folder / r / "bird.conf"
            with open(self.log(r), "ab") as log:
                self.birds[r] = subprocess.Popen(
                    [
                        *("ip", "netns", "exec", self.ns(r), "bird", "-f", "-c", str(conf)),
                        *("-s", self.sock(r), "-P", str(self.folder / r / "bird.pid")),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,  # a Ctrl-C reaches us, and we stop it
                )
            self.started[r] = time.time()
        deadline = time.monotonic() + 20
        for r in ROUTERS:
            while "up and running" not in self.birdc(r, "show status"):
                if self.birds[r].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"BIRD in {r} did not start: {self.log(r)}")
                time.sleep(0.1)  # poll: the control socket, with a deadline

    def stop_birds(self) -> None:
        for proc in self.birds.values():
            stop(proc)
        self.birds.clear()

    def birdc(self, r: str, command: str) -> str:
        proc = subprocess.run(
            ["birdc", "-s", self.sock(r), command], capture_output=True, text=True, timeout=10
        )
        return proc.stdout

    def destroy(self) -> None:
        self.stop_birds()
        for name in reversed(self.netns):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.netns.clear()

    # reading the state
    def kernel_nexthops(self, r: str, prefix: str) -> int:
        out = self.ip(r, "-6", "route", "show", prefix)
        if not out.strip() or out.startswith("unreachable"):
            return 0
        return max(1, out.count("nexthop via"))

    def babel_ways(self, r: str, prefix: str) -> int:
        """Finite routes to `prefix` that r's Babel has learned (one per neighbour)."""
        n = 0
        for line in self.birdc(r, "show babel routes").splitlines():
            cols = line.split()
            if len(cols) >= 4 and cols[0] == prefix and cols[3].isdigit():
                n += int(cols[3]) < BABEL_INFINITY
        return n

    def neighbours(self, r: str) -> list[tuple[str, int, int]]:
        """(interface, metric, hellos heard of the last 16) per Babel neighbour."""
        out = []
        for line in self.birdc(r, "show babel neighbors").splitlines():
            cols = line.split()
            if len(cols) >= 5 and cols[0].startswith("fe80") and cols[2].isdigit():
                out.append((cols[1], int(cols[2]), int(cols[4])))
        return out

    def routes_ready(self) -> bool:
        """Both LANs reachable, and the other way round the ring known too."""
        for r, prefix in (("r1", DMZ), ("r3", HOME)):
            if self.row.protocol == "babel":
                if self.kernel_nexthops(r, prefix) < 1 or self.babel_ways(r, prefix) < 2:
                    return False
            elif self.kernel_nexthops(r, prefix) < 2:  # RIPng: ECMP over both ways
                return False
        return True

    def history_full(self) -> bool:
        """Every Babel neighbour has heard 16 of the last 16 hellos, at nominal cost."""
        nominal = 96 if self.row.kind == "wired" else 256
        for r in ROUTERS:
            nbrs = self.neighbours(r)
            if len(nbrs) != 2 or any(m != nominal or h != 16 for _i, m, h in nbrs):
                return False
        return True

    def wait(self, history: str) -> float:
        """Wait (poll, with a deadline) for the state a trial starts from; seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + 60 + 24 * self.row.period
        need_history = history == "full" and self.row.protocol == "babel"
        stable_since = None
        while time.monotonic() < deadline:
            ok = self.routes_ready() and (not need_history or self.history_full())
            if not ok:
                stable_since = None
            elif stable_since is None:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= 3:
                return time.monotonic() - t0
            time.sleep(0.5)  # poll: routing tables and neighbour tables, with a deadline
        raise RuntimeError(f"not ready after {deadline - t0:.0f} s ({history})")

    def tx(self, node: str) -> dict[str, int]:
        data = json.loads(self.ip(node, "-s", "-j", "link", "show"))
        return {d["ifname"]: int(d["stats64"]["tx"]["packets"]) for d in data}

    # failing a link
    def _drop_text(self, ifaces: list[str]) -> str:
        lines = [f"add table netdev {NFT_TABLE}"]
        for i in ifaces:
            lines += [
                f"add chain netdev {NFT_TABLE} in_{i} "
                f'{{ type filter hook ingress device "{i}" priority -500; policy accept; }}',
                f"add rule netdev {NFT_TABLE} in_{i} counter drop",
            ]
        return "\n".join(lines) + "\n"

    def ends(self, link: tuple[str, str, str, str]) -> list[tuple[str, list[str]]]:
        """(namespace node, interfaces) where the drop goes for a link."""
        a, ia, b, ib = link
        if self.fail_on == "switch":
            return [("sw", [self.outer(a, ia), self.outer(b, ib)])]
        return [(a, [ia]), (b, [ib])]

    def fail(self, link: tuple[str, str, str, str]) -> None:
        for node, ifaces in self.ends(link):
            self.sh(node, "nft", "-f", "-", stdin=self._drop_text(ifaces))

    def restore(self, link: tuple[str, str, str, str]) -> None:
        for node, _ifaces in self.ends(link):
            self.sh(node, "nft", "delete", "table", "netdev", NFT_TABLE, check=False)


def stop(proc: subprocess.Popen[Any], grace: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


# -- probes ---------------------------------------------------------------------------
REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)")


class Pinger:
    """iputils ping from h1 to h3, replies (seq, unix time) read as they come."""

    def __init__(self, lab: Lab, interval: float) -> None:
        self.interval = interval
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("h1"), "ping", "-6nD", "-i", f"{interval:g}", H3],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.replies: list[tuple[int, float]] = []
        self.events: queue.Queue[tuple[int, float]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = REPLY.match(line)
            if m:
                item = (int(m.group(2)), float(m.group(1)))
                self.replies.append(item)
                self.events.put(item)

    def next_reply(self, until: float) -> tuple[int, float] | None:
        """The next reply, or None at monotonic time `until`."""
        left = until - time.monotonic()
        if left <= 0:
            return None
        try:
            return self.events.get(timeout=left)
        except queue.Empty:
            return None

    def stop(self) -> None:
        stop(self.proc)


# -- one trial --------------------------------------------------------------------------
def _link_of(router: str, iface: str) -> tuple[str, str, str, str]:
    for link in LINKS:
        a, ia, b, ib = link
        if (router, iface) in ((a, ia), (b, ib)):
            return link
    raise KeyError(f"{router} {iface} is on no ring link")


def _peer(link: tuple[str, str, str, str], router: str) -> str:
    return link[2] if link[0] == router else link[0]


def _busiest(before: dict[str, int], after: dict[str, int]) -> tuple[str, int]:
    sent = {i: after.get(i, 0) - before.get(i, 0) for i in ("eth0", "eth1")}
    iface = max(sent, key=lambda i: sent[i])
    return iface, sent[iface]


BIRD_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")


def _log_events(path: Path, since: float, pattern: str) -> list[float]:
    """Unix times of BIRD log lines matching `pattern`, at or after `since`."""
    out = []
    rx = re.compile(pattern)
    for line in path.read_text(errors="replace").splitlines():
        m = BIRD_TIME.match(line)
        if m and rx.search(line):
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if t >= since - 0.001:
                out.append(t)
    return out


def trial(lab: Lab, interval: float, quiet: float, max_watch: float) -> dict[str, Any]:
    row = lab.row
    pinger = Pinger(lab, interval)
    link = None
    try:
        if pinger.next_reply(time.monotonic() + 10) is None:
            raise RuntimeError("no reply from h3 before the failure")
        tx = {n: lab.tx(n) for n in ROUTERS}
        # the baseline: a fixed time, plus a random phase of the protocol's period
        threading.Event().wait(2 + random.uniform(0, row.period))
        tx2 = {n: lab.tx(n) for n in ROUTERS}
        out1, n1 = _busiest(tx["r1"], tx2["r1"])
        link = _link_of("r1", out1)
        first = _peer(link, "r1")
        out3, _ = _busiest(tx["r3"], tx2["r3"])
        back = _peer(_link_of("r3", out3), "r3")  # the router the replies take to r1
        replies_cross = back == first
        ecmp = lab.kernel_nexthops("r1", DMZ)
        while not pinger.events.empty():
            pinger.events.get_nowait()
        t_fail0 = time.time()
        lab.fail(link)
        t_fail = time.time()
        # watch: gaps in the replies that end after the failure; stop once the
        # replies have flowed for `quiet` s after the last gap (or at max_watch)
        prev = max((r for r in pinger.replies if r[1] <= t_fail0), default=None)
        gaps: list[tuple[float, float]] = []
        end = time.monotonic() + max_watch
        quiet_end: float | None = None
        no_loss = False
        while True:
            item = pinger.next_reply(end if quiet_end is None else min(end, quiet_end))
            if item is None:
                break
            if prev is not None and item[0] > prev[0] + 1 and item[1] > t_fail0:
                gaps.append((prev[1], item[1]))
                quiet_end = time.monotonic() + quiet
            elif not gaps and item[1] - t_fail > 10 * row.period + 10:
                no_loss = True
                break
            prev = item
    finally:
        if link is not None:
            lab.restore(link)
        pinger.stop()
    outage = round(gaps[0][1] - gaps[0][0], 3) if gaps else (0.0 if no_loss else None)
    result: dict[str, Any] = {
        "link": f"{link[0]}:{link[2]}",
        "failed": f"r1 {out1} -> {first}",
        "probes_per_s_on_link": round(n1 / (2 + row.period), 1),
        "r1_nexthops": ecmp,
        "replies_via": f"r3 -> {back} -> r1",
        "replies_cross": replies_cross,
        "failed_at": t_fail,
        "fail_took": round(t_fail - t_fail0, 4),
        "outage": outage,
        "gaps": [[round(a - t_fail, 3), round(b - t_fail, 3)] for a, b in gaps],
        "lost": sum(b - a - 1 for (a, _), (b, _) in itertools.pairwise(pinger.replies) if b > a),
    }
    if row.protocol == "babel":
        for who in ("r1", first):
            dead = _log_events(lab.log(who), t_fail, r"Cost of nbr .* to 65535")
            result[f"{who}_link_dead"] = round(dead[0] - t_fail, 3) if dead else None
        for who, prefix in (("r1", DMZ), ("r3", HOME)):
            picked = _log_events(lab.log(who), t_fail, rf"Picked new route for prefix {prefix}")
            result[f"{who}_new_route"] = round(picked[0] - t_fail, 3) if picked else None
    return result


# -- rows, table ----------------------------------------------------------------------
def run_row(row: Row, args: argparse.Namespace, prefix: str, top: Path) -> dict[str, Any]:
    folder = top / row.name
    lab = Lab(row, args.config, args.fail_on, prefix, folder)
    say(f"== {row.name}: {row.title}")
    out: dict[str, Any] = {"row": row.name, "title": row.title, "trials": [], "errors": []}
    try:
        lab.build()
        for k in range(args.trials):
            try:
                if (args.fresh or args.age is not None) and k > 0:
                    lab.stop_birds()
                    lab.start_birds()
                waited = lab.wait(args.history)
                if args.age is not None:  # the experiment's design: fail at a fixed age
                    threading.Event().wait(max(0.0, lab.started["r1"] + args.age - time.time()))
                hist = {r: [h for _i, _m, h in lab.neighbours(r)] for r in ROUTERS}
                age = time.time() - lab.started["r1"]
                r = trial(lab, args.interval, args.quiet, args.max_watch)
                r.update(waited=round(waited, 1), hellos=hist, bird_age=round(age, 1))
                say(
                    f"  trial {k + 1}: outage {r['outage']} s, failed {r['failed']} "
                    f"(replies {'also' if r['replies_cross'] else 'not'} over it), "
                    f"hellos heard {hist}, BIRD up {age:.0f} s"
                    + (
                        f", r1 link dead +{r.get('r1_link_dead')} s, "
                        f"r1 new route +{r.get('r1_new_route')} s, "
                        f"r3 +{r.get('r3_new_route')} s"
                        if row.protocol == "babel"
                        else ""
                    )
                )
                out["trials"].append(r)
            except RuntimeError as exc:
                say(f"  trial {k + 1} FAILED: {exc}")
                out["errors"].append(str(exc))
    finally:
        lab.destroy()
    return out


def _s(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    o = [t["outage"] for t in res["trials"] if t["outage"] is not None]
    links = sorted({t["failed"] for t in res["trials"]})
    cross = sorted({t["replies_cross"] for t in res["trials"]})
    return {
        "n": len(res["trials"]),
        "median": statistics.median(o) if o else None,
        "min": min(o) if o else None,
        "max": max(o) if o else None,
        "unrecovered": sum(t["outage"] is None for t in res["trials"]),
        "failed": links,
        "direction": {(True,): "forward and return", (False,): "forward only"}.get(
            tuple(cross), "mixed"
        ),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| row | outage median (s) | min | max | trials | failed link (r1's next hop) | "
        "on the path |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for res in results:
        st = summarize(res)
        n = f"{st['n']}" + (f" ({len(res['errors'])} failed)" if res["errors"] else "")
        lines.append(
            f"| {res['title']} | {_s(st['median'])} | {_s(st['min'])} | {_s(st['max'])} | {n} "
            f"| {', '.join(st['failed']) or '–'} | {st['direction']} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(BY_NAME), help=f"from: {', '.join(BY_NAME)}")
    parser.add_argument("--trials", type=int, default=3, help="trials per row")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between pings")
    parser.add_argument("--quiet", type=float, default=3.0, help="s of replies that end a trial")
    parser.add_argument("--max-watch", type=float, default=120.0, help="s to wait for recovery")
    parser.add_argument("--history", choices=("full", "routes"), default="full")
    parser.add_argument("--fresh", action="store_true", help="restart BIRD before each trial")
    parser.add_argument(
        "--age",
        type=float,
        default=None,
        help="restart BIRD before each trial and start it this many s after BIRD started "
        "(with --history routes: the neighbours have heard about age/hello hellos)",
    )
    parser.add_argument("--config", choices=("minimal", "palmnet"), default="minimal")
    parser.add_argument("--fail-on", choices=("routers", "switch"), default="routers")
    parser.add_argument("--json", type=Path, help="write every trial here")
    args = parser.parse_args()
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    bad = [n for n in names if n not in BY_NAME]
    if bad or args.trials < 1 or args.interval < 0.01:
        parser.error(f"unknown rows {bad}" if bad else "--trials >= 1, --interval >= 0.01")
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    for tool in ("bird", "birdc", "nft", "ip", "ping"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    prefix = f"bref{os.getpid()}-"
    top = Path(tempfile.mkdtemp(prefix="babel-reference-"))
    version = subprocess.run(["bird", "--version"], capture_output=True, text=True)
    bird = version.stderr or version.stdout
    meta = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "bird": bird.strip(),
        "load": os.getloadavg()[0],
        "args": {k: str(v) for k, v in vars(args).items()},
        "prefix": prefix,
    }
    say(f"namespaces {prefix}*, files in {top}; load {meta['load']:.2f}")
    results: list[dict[str, Any]] = []
    try:
        with _signals_interrupt():
            for name in names:
                results.append(run_row(BY_NAME[name], args, prefix, top))
    except KeyboardInterrupt as exc:
        say(f"interrupted ({str(exc) or 'SIGINT'}): cleaned up")
        return 130
    finally:
        shutil.rmtree(top, ignore_errors=True)
    meta["load_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": results}, indent=2) + "\n")
    print(
        f"Reference without palmnet ({meta['bird']}; history {args.history}"
        f"{', fresh BIRD per trial' if args.fresh else ''}"
        f"{f', failing {args.age:g} s + baseline after BIRD start' if args.age else ''}; "
        f"config {args.config}; "
        f"drop on {args.fail_on}; ping every {args.interval:g} s; "
        f"load {meta['load']:.2f} -> {meta['load_end']:.2f})"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
