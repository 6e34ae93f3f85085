#!/usr/bin/env python3
"""Convergence of RIPng, Babel, OSPFv3 and BFD with BIRD 2: the field notes' ring, measured.

    sudo .venv/bin/python benchmarks/convergence.py            # every profile, both modes
    sudo .venv/bin/python benchmarks/convergence.py --profiles ripng-tuned,bfd --trials 5
    sudo .venv/bin/python benchmarks/convergence.py --modes silent --slow-trials 3

For each routing profile, examples/ring.yaml is written to a temp dir with every
router's `routing:` set to the profile (lab `cvbench`), brought up, and
`palmnet converge` (toolbox/converge.py, in process) runs from the laptop to the
dns server, failing the r1 link the probes really take (r1:r2 or r1:r4: RIPng
splits flows over both ways round the ring; the transmit counters tell which),
once per trial and failure mode:

- down:   carrier loss on both ends (`palmnet link down`): NO-CARRIER;
- silent: nftables drops every frame on the link, interfaces up (`--blackhole`).

Probes every --interval s (0.05); converge stops once routing has reacted, then
stayed quiet for 5 s with every probe answered (at most 300 s). Between trials the
link is whole again and the script waits (on the routing tables, with a deadline)
until the path is back to what it was after `up`. RIPng with BIRD's default
timers takes ~3 minutes per silent trial: such slow cases run --slow-trials
times (default 1), the others --trials times (default 3).

Writes docs/convergence.md (--doc): the table (outage median/min/max, probes
lost, route changes) and a paragraph per row on which timer bounds it, compared
with the field notes' 11 s / 93 s / 317 s. Every run's result.json (and with
--plots, timeline.png) goes to --runs (default: a temp dir, printed).

Root; nothing else should run on the machine; one lab at a time, always taken down.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

RING = ROOT / "examples" / "ring.yaml"
DOC = ROOT / "docs" / "convergence.md"
LAB = "cvbench"
SOURCE, TARGET = "laptop", "dns"
RING_IFACES = {"eth0": {}, "eth1": {}}  # the ring links of every router (ring.yaml)
READY_DEADLINE = 240.0  # s: routing converged after `up` / a trial
FIELD_NOTES = {"ripng": 11, "babel-wireless": 93, "babel-wired-5s": 317}


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    routing: dict[str, Any]
    period: float = 1.0  # s: the hello/update period whose phase the failure falls in
    slow_modes: tuple[str, ...] = ()  # modes that take minutes per trial
    default: bool = True  # in the default set


def _rip(**timers: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"protocol": "ripng", "interfaces": RING_IFACES}
    if timers:
        spec["defaults"] = timers
    return spec


def _babel(kind: str, hello: float | None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"type": kind}
    if hello is not None:
        defaults["hello"] = hello
    return {"protocol": "babel", "interfaces": RING_IFACES, "defaults": defaults}


PROFILES = [
    Profile(
        "ripng",
        "RIPng, BIRD defaults (update 30 s, timeout 180 s)",
        _rip(),
        period=30,
        slow_modes=("silent",),
    ),
    Profile(
        "ripng-tuned",
        "RIPng, update 1 s, timeout 3 s, garbage 2 s",
        _rip(update=1, timeout=3, garbage=2),
    ),
    Profile("babel-wired-1s", "Babel wired, hello 1 s", _babel("wired", 1)),
    Profile(
        "babel-wired-4s",
        "Babel wired, hello 4 s (BIRD's default)",
        _babel("wired", 4),
        period=4,
    ),
    Profile("babel-wired-5s", "Babel wired, hello 5 s", _babel("wired", 5), period=5),
    Profile("babel-wireless", "Babel wireless, hello 1 s", _babel("wireless", 1)),
    Profile(
        "ospf3",
        "OSPFv3, BIRD defaults (hello 10 s, dead 40 s)",
        {"protocol": "ospf3", "interfaces": RING_IFACES},
        period=10,
    ),
    Profile(
        "bfd",
        "RIPng tuned + BFD 20 ms x 3 (the fastest)",
        {**_rip(update=1, timeout=3, garbage=2), "bfd": {"interval": 0.02, "multiplier": 3}},
    ),
    # not in the default set
    Profile(
        "babel-wired-200ms",
        "Babel wired, hello 0.2 s",
        _babel("wired", 0.2),
        period=0.2,
        default=False,
    ),
    Profile(
        "ospf3-tuned",
        "OSPFv3, hello 1 s, dead 3 s",
        {"protocol": "ospf3", "interfaces": RING_IFACES, "defaults": {"hello": 1, "dead": 3}},
        default=False,
    ),
    Profile(
        "ospf3-bfd",
        "OSPFv3 defaults + BFD 20 ms x 3",
        {
            "protocol": "ospf3",
            "interfaces": RING_IFACES,
            "bfd": {"interval": 0.02, "multiplier": 3},
        },
        default=False,
    ),
]
BY_NAME = {p.name: p for p in PROFILES}
MODES = ("down", "silent")


# -- the lab -------------------------------------------------------------------------
def ring_variant(profile: Profile) -> str:
    """examples/ring.yaml with lab `cvbench` and every router's routing set to the profile."""
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(RING.read_text())
    data["name"] = LAB
    for node in data["nodes"].values():
        if node.get("kind") == "router":
            node.pop("profiles", None)
            node["routing"] = json.loads(json.dumps(profile.routing))
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def chains_now() -> list[list[str]]:
    from palmnet.lab import LabAPI
    from palmnet.toolbox.converge import destination_of
    from palmnet.toolbox.fib import trace_live

    with LabAPI().session(LAB) as session:
        dest = destination_of(session.plan.node(TARGET))
        assert dest is not None
        path = trace_live(session, SOURCE, dest)
    return sorted(list(c) for c in path.chains) if path.complete else []


def _bird(router: str, command: str) -> list[tuple[str, str]] | None:
    """A reply of the router's BIRD (over its control socket, through the Lab API's
    node handle), None when it does not answer."""
    from palmnet.lab import LabAPI
    from palmnet.services.bird import BirdControlError, control

    with LabAPI().session(LAB) as session:
        svc = session.node(router).service("bird")
    try:
        return control(svc.host(svc.socket), command)  # type: ignore[attr-defined]
    except BirdControlError:
        return None


NOMINAL = {"wired": 96, "wireless": 256}  # BIRD's Babel rxcost of a clean link


def _babel_full_windows(profile: Profile) -> bool:
    """Every router hears both ring neighbours at the nominal cost with all 16 hellos
    of its window: BIRD's wired k-out-of-j rule (12 of 16) then needs 5 missed hellos
    to declare a link down, whatever happened to the link before. Trials that start
    with a younger history fail over faster (after n/3 + 1 misses with n heard)
    and would make the rows depend on when a trial started."""
    kind = profile.routing.get("defaults", {}).get("type", "wired")
    for router in ("r1", "r2", "r3", "r4"):
        reply = _bird(router, "show babel neighbors")
        if reply is None:
            return False
        full = 0
        for _code, text in reply:
            cols = text.split()  # address interface metric routes hellos expires
            if len(cols) >= 5 and cols[0].startswith("fe80:") and cols[4].isdigit():
                full += cols[2] == str(NOMINAL[kind]) and int(cols[4]) == 16
        if full < 2:
            return False
    return True


def _babel_alternatives() -> bool:
    """Babel keeps one route in the kernel, but learns the other way round the ring
    too: ready when r1 has a finite route to the dmz prefix from both its ring
    neighbours, and r3 to the home prefix (`birdc show babel routes`)."""
    from palmnet.lab import LabAPI

    plan = LabAPI().plan_of(LAB)
    for router, far_router in (("r1", "r3"), ("r3", "r1")):
        prefix = str(plan.node(far_router).interface("eth2").ipv6_static[0].network)
        reply = _bird(router, "show babel routes")
        if reply is None:
            return False
        finite = 0
        for _code, text in reply:
            cols = text.split()
            if len(cols) >= 4 and cols[0] == prefix and cols[3].isdigit():
                finite += int(cols[3]) < 0xFFFF
        if finite < 2:
            return False
    return True


def _ospf_full() -> bool:
    """Every router has its two ring neighbours in state Full (`show ospf neighbors`)."""
    for router in ("r1", "r2", "r3", "r4"):
        reply = _bird(router, "show ospf neighbors")
        if reply is None:
            return False
        if sum("Full" in text for _code, text in reply) < 2:
            return False
    return True


def wait_ready(profile: Profile, want: list[list[str]] | None, deadline: float) -> list[list[str]]:
    """Wait until the path is complete and has stayed so for 3 s, and the other way
    round the ring is known too: where the path after `up` used both ways (ECMP:
    RIPng, OSPF) it must be that again; Babel's tables are asked for the other way,
    OSPF's for its adjacencies."""
    protocol = profile.routing["protocol"]
    ecmp = want is not None and len(want) > 1
    end = time.monotonic() + deadline
    stable_since = None
    last: list[list[str]] = []
    other_way = None
    while time.monotonic() < end:
        now = chains_now()
        good = bool(now) and (not ecmp or now == want)
        if good and protocol in ("babel", "ospf3"):
            good = other_way = _babel_alternatives() if protocol == "babel" else _ospf_full()
        if good and protocol == "babel":
            good = _babel_full_windows(profile)
        if not good:
            stable_since = None
        elif now != last or stable_since is None:
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= 3:
            return now
        last = now
        time.sleep(0.5)  # poll: routing tables, until stable or the deadline
    raise RuntimeError(
        f"routing did not settle in {deadline:g} s (path now {last}, want {want}"
        + (f", other way known: {other_way}" if other_way is not None else "")
        + ")"
    )


# -- runs and statistics -------------------------------------------------------------
@dataclass
class Cell:
    profile: Profile
    mode: str
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def values(self, key: Callable[[dict[str, Any]], float | None]) -> list[float]:
        return [v for v in (key(r) for r in self.results) if v is not None]

    @property
    def outages(self) -> list[float]:
        return self.values(lambda r: r["outage"])

    @property
    def unrecovered(self) -> int:
        return sum(r["outage"] is None for r in self.results)


def run_trial(profile: Profile, mode: str, interval: float, out: Path, plots: bool) -> dict:
    """One converge run. The link fails 2 s in plus a random part of the protocol's
    hello/update period: the trials sample where in that period a failure falls
    (they would otherwise all start in step with the timers, right after a
    `wait_ready` that ends on a hello)."""
    from palmnet.toolbox.converge import ConvergeRequest, converge, write_outputs

    req = ConvergeRequest(
        source=SOURCE,
        target=TARGET,
        fail="",
        mode=mode,
        interval=interval,
        fail_after=2.0 + random.uniform(0, profile.period),
        lab=LAB,
        pick=lambda used: f"{used[1]}:{used[2]}",  # r1 and its next router on the way
    )
    result = converge(req, report=lambda m: say(f"    {m}"))
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        write_outputs(result, out)
    else:
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_profile(
    profile: Profile,
    modes: Sequence[str],
    trials: int,
    slow_trials: int,
    interval: float,
    runs: Path,
    plots: bool,
) -> list[Cell]:
    from palmnet.lab import LabAPI

    api = LabAPI(report=lambda m: say(f"  {m}"))
    folder = Path(tempfile.mkdtemp(prefix=f"cv-{profile.name}-"))
    lab_file = folder / "ring.yaml"
    lab_file.write_text(ring_variant(profile))
    cells = [Cell(profile, m) for m in modes]
    say(f"== {profile.name}: {profile.title}")
    try:
        api.up(lab_file)
        try:
            baseline = wait_ready(profile, None, READY_DEADLINE)
        except RuntimeError as exc:
            say(f"  FAILED: {exc}")
            for cell in cells:
                cell.errors.append(f"after up: {exc}")
            return cells
        say(f"  path after up: {' | '.join(' '.join(c) for c in baseline)}")
        for cell in cells:
            n = slow_trials if cell.mode in profile.slow_modes else trials
            for k in range(n):
                say(f"  {cell.mode} trial {k + 1}/{n}")
                try:
                    wait_ready(profile, baseline, READY_DEADLINE)
                    r = run_trial(
                        profile,
                        cell.mode,
                        interval,
                        runs / profile.name / f"{cell.mode}-{k + 1}",
                        plots,
                    )
                except Exception as exc:  # a failed run is reported, the next one goes on
                    cell.errors.append(f"{type(exc).__name__}: {exc}")
                    say(f"    FAILED: {exc}")
                    continue
                cell.results.append(r)
                say(
                    f"    outage {r['outage']} s, lost {r['probes']['lost_after_failure']}, "
                    f"churn {r['route_changes']['count']}, link {r['link']}"
                )
    finally:
        try:
            api.down(LAB)
        except Exception as exc:
            say(f"  down failed: {exc}")
    return cells


# -- the reproduction without palmnet (benchmarks/babel_reference.py) ------------------
REFERENCE = ROOT / "benchmarks" / "babel_reference.py"
REFERENCE_ROWS = ("babel-wired-1s", "babel-wired-4s", "babel-wired-5s", "babel-wireless")
REFERENCE_ROWS += ("ripng-tuned", "bfd")  # its row names are this script's profile names


def run_reference(names: list[str], trials: int, interval: float, runs: Path) -> None:
    """babel_reference.py on the same machine in the same run: its rows for `names`,
    pinging as often as the probes here, results in runs/reference.json (read back by
    --render-only)."""
    rows = [n for n in names if n in REFERENCE_ROWS]
    if not rows:
        return
    say(f"== reference without palmnet: {', '.join(rows)}")
    out = runs / "reference.json"
    cmd = [sys.executable, str(REFERENCE), "--rows", ",".join(rows), "--trials", str(trials)]
    cmd += ["--interval", f"{interval:g}"]
    proc = subprocess.run([*cmd, "--json", str(out)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out.exists():
        say(f"  reference FAILED (exit {proc.returncode})")


def reply_gap(result: dict[str, Any]) -> float | None:
    """The outage as the reference measures it: from the last reply before the first
    lost probe to the first reply after the outage (one interval more than ours)."""
    if not result["loss_periods"] or result["outage_to"] is None:
        return 0.0 if result["outage"] == 0 else None
    lost, back = result["loss_periods"][0]
    replies = [(t, t + rtt / 1000) for t, rtt in result["samples"] if rtt is not None]
    before = [at for t, at in replies if t < lost]
    after = [at for t, at in replies if t >= back]
    return round(min(after) - max(before), 4) if before and after else None


def reference_section(cells: list[Cell], runs: Path | None) -> list[str]:
    """Silent failures, palmnet's table beside the reproduction without palmnet."""
    path = runs / "reference.json" if runs else None
    if path is None or not path.exists():
        return []
    ref = json.loads(path.read_text())
    by_row = {r["row"]: r for r in ref["rows"]}
    lines = [
        "## Against a reproduction without palmnet",
        "",
        "`benchmarks/babel_reference.py`, run in the same run on the same machine: four "
        "namespaces in a ring with veths, bird.conf by hand, a ping every "
        f"{ref['meta']['args'].get('interval', '0.1')} s, the link "
        "of r1's forward path (its transmit counters) dropped by nftables on the routers' "
        "own interfaces, outage from the last reply before to the first reply after. It "
        "fails a link only once every Babel neighbour has heard 16 of the last 16 hellos "
        "(a full k-out-of-j window, as on a link that has been up a while). BIRD 2.0.12 "
        "judges a wired link over the hellos it has counted so far (dead when received x "
        "16 < 12 x counted, counted at most 16), so a neighbour that has heard n < 16 "
        "hellos is dropped after n/3 + 1 missed ones (integer division), not 5: the "
        "independent reproduction's 3.1-3.4 hello intervals at hello 4-5 s match such young "
        "neighbours, 6-8 hellos old (`babel_reference.py --history routes --age 30` "
        "repeats it); at hello 1 s, 30 s is already a full window. "
        "palmnet's trials above start the same way: for Babel, `wait_ready` waits until "
        "every router hears both ring neighbours at the nominal cost with 16 of 16 hellos "
        "(without that wait, a trial that followed another within 16 hellos failed over "
        "sooner). "
        f"Load {ref['meta']['load']:.2f} -> {ref['meta'].get('load_end', 0):.2f}.",
        "",
        "Both columns measure from the last reply before the failure to the first reply "
        "after it (palmnet's from its probes' send and reply times; its own outage, in the "
        "table above, starts at the first lost probe and is one probe interval shorter).",
        "",
        "| silent failure | palmnet median (s) | min-max | reference median (s) | min-max "
        "| palmnet / reference | link failed (palmnet) | link failed (reference) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for cell in cells:
        res = by_row.get(cell.profile.name)
        if cell.mode != "silent" or res is None:
            continue
        st = stats(cell)
        gaps = [g for g in (reply_gap(r) for r in cell.results) if g is not None]
        med = statistics.median(gaps) if gaps else None
        o = [t["outage"] for t in res["trials"] if t["outage"] is not None]
        rmed = statistics.median(o) if o else None
        ratio = f"{med / rmed:.2f}" if med and rmed else "–"
        used = sorted({" ".join(r["path_before"]["used"]) for r in cell.results})
        ways = sorted(
            {
                f"{t['failed']}, replies {'also' if t['replies_cross'] else 'not'} over it"
                for t in res["trials"]
            }
        )
        lines.append(
            f"| {cell.profile.title} | {_s(med)} "
            f"| {_s(min(gaps) if gaps else None)}-{_s(max(gaps) if gaps else None)} "
            f"| {_s(rmed)} | {_s(min(o) if o else None)}-{_s(max(o) if o else None)} "
            f"| {ratio} | {' and '.join(st['links'])} (forward path {'; '.join(used)}) "
            f"| {'; '.join(ways)} |"
        )
    return [*lines, ""]


# -- the document --------------------------------------------------------------------
def _s(x: float | None) -> str:
    if x is None:
        return "–"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def stats(cell: Cell) -> dict[str, Any]:
    o = cell.outages
    lost = cell.values(lambda r: r["probes"]["lost_after_failure"])
    churn = cell.values(lambda r: r["route_changes"]["count"])
    settle = cell.values(lambda r: r["settled_at"])
    moves = cell.values(lambda r: r["route_changes"].get("moves"))
    return {
        "n": len(cell.results),
        "median": statistics.median(o) if o else None,
        "min": min(o) if o else None,
        "max": max(o) if o else None,
        "lost": statistics.median(lost) if lost else None,
        "churn": statistics.median(churn) if churn else None,
        "settled": statistics.median(settle) if settle else None,
        "unrecovered": cell.unrecovered,
        "links": sorted({r["link"] for r in cell.results}),
        "moves": statistics.median(moves) if moves else None,
        "first": {router: _first_move(cell.results, router) for router in ("r1", "r2", "r3", "r4")},
    }


def _first_move(results: list[dict[str, Any]], router: str) -> float | None:
    """Median over the runs of the first change of next hops at `router` after the failure."""
    firsts = []
    for r in results:
        times = [
            e["t"]
            for e in r["route_changes"]["events"]
            if e["router"] == router and e["t"] >= 0 and e.get("moved", True)
        ]
        if times:
            firsts.append(min(times))
    return statistics.median(firsts) if firsts else None


def _first(st: dict[str, Any], router: str) -> str:
    t = st["first"].get(router)
    return "never" if t is None else f"{_s(t)} s"


def why(cell: Cell, st: dict[str, Any]) -> str:
    """Which timer bounds the outage, with the numbers measured."""
    p, mode = cell.profile, cell.mode
    med, lo, hi = _s(st["median"]), _s(st["min"]), _s(st["max"])
    protocol = p.routing["protocol"]
    moved = (
        f"r1's route moved after {_first(st, 'r1')}, "
        f"r3's (which carries the replies) after {_first(st, 'r3')}"
    )
    if mode == "down":
        common = (
            "Carrier loss is news at once: the kernel tells BIRD over netlink that the "
            "interface lost its carrier, and no timer is involved. "
        )
        if protocol == "ospf3":
            return (
                common + "OSPF drops the adjacency on that interface, originates a new "
                "router LSA and floods it; BIRD runs SPF on its next tick (`tick`, 1 s), so "
                f"the outage is about a second at most, whatever the 40 s dead interval: {med} s "
                f"median ({moved})."
            )
        if protocol == "babel":
            return (
                common + "Babel drops the neighbours on that interface and retracts the "
                "routes through them. The other way round the ring has the same metric as the "
                "lost route, so it only becomes feasible once r3 answers a seqno request with a "
                "new sequence number; with the retractions reaching r3 for the replies "
                f"that takes a few tenths of a second: {med} s median ({lo}-{hi} s; {moved})."
            )
        return (
            common + "RIP drops the neighbour behind it and every route through it (BIRD "
            "acts on it on its next timer kick, about 0.1 s later) and sends triggered "
            "updates. With RIPng's ECMP r1 already has the other next hop, so the "
            "forward path is whole as soon as r1 drops the dead one; the replies wait for r3, "
            "which hears (a triggered update with metric 16) that home is gone that way, "
            f"about 0.1 s later: {med} s median ({moved}), whatever the update and "
            "timeout timers."
        )
    # silent: only the protocol's own timers can tell
    if p.name == "ripng":
        return (
            "Nothing tells r1 that its neighbour is gone: the routes through it stay until no "
            "update has refreshed them for `timeout` (180 s), and updates come every 30 s, so the "
            "outage is 180 s minus the age of the last update when the link failed: "
            f"150-180 s. Measured {med} s ({moved}). RIPng's ECMP does not help: r1 keeps "
            "sending half the flows (and all of this one) to the dead next hop until the "
            "timeout. The field notes' 11 s with RIPng was a failure BIRD could see (a "
            "radio switched off): that is the `down` row."
        )
    if p.name == "ripng-tuned":
        return (
            "The same route timeout, set to 3 s with updates every second: 3 s minus the "
            "age of the last update, 2-3 s; r3's return route moves when r2's own route to "
            f"home times out and r2 says so (metric 16): {med} s median ({lo}-{hi} s; "
            f"{moved}). Tuned RIPng meets the < 3 s target for an everyday profile on "
            "timers alone, at the price of an update per second per link."
        )
    if p.routing.get("bfd"):
        bfd = p.routing["bfd"]
        detect = bfd["interval"] * bfd["multiplier"]
        return (
            f"BFD sends a packet every {bfd['interval'] * 1000:g} ms and declares the "
            f"session down after {bfd['multiplier']} missed ({detect * 1000:g} ms); BIRD "
            "then drops the neighbour as it does on carrier loss, and the rest is the same "
            f"reaction as in the `down` row: {med} s median ({moved}). The routing "
            "protocol's own timers play no part; the < 0.3 s target holds with about "
            "0.1 s of BIRD's reaction per router on the way."
        )
    if protocol == "babel" and p.routing["defaults"]["type"] == "wired":
        hello = p.routing["defaults"]["hello"]
        return (
            "A wired Babel link is all or nothing: BIRD keeps its nominal cost (96) until "
            "fewer than 12 of the last 16 expected hellos arrived (`limit 12`). A hello "
            "counts as missing 1.5 intervals after the last one arrived, then one more "
            "per interval, and BIRD looks at its neighbours once a second (its Babel "
            "timer), so the link dies 5.5 hello intervals after the last hello, plus up to "
            f"1 s: with hello {hello:g} s that is {_s(hello * 4.5)}-{_s(hello * 5.5 + 1)} s "
            "after the failure (the last hello came up to one interval before it). r2 "
            "does the same for the return path, and the other way is taken once feasible. "
            f"Measured: {med} s median ({lo}-{hi} s; {moved})."
            + (
                " The field notes' 317 s with hello 5 s was bird6 1.6, which "
                "reference/routing-notes.md also saw keep a dead route for about a minute."
                if hello == 5
                else ""
            )
        )
    if protocol == "babel":
        return (
            "On a wireless link the cost is graded (ETX): from 1.5 hello intervals after "
            "the last hello, every missed hello raises the link's cost by 16/received "
            "(checked once a second), and BIRD rewrites the kernel route at each step "
            "(route changes, mostly without a change of next hop). The route leaves the link "
            "once its metric exceeds the other way's and that way is feasible (a seqno "
            "request), long before the neighbour is dropped after 16 missed hellos; "
            f"{moved}. Measured: {med} s median "
            f"({lo}-{hi} s). The field notes' 93 s was bird6 1.6 with the radio switched "
            "off, and its route flapping is the churn column here."
        )
    if p.name == "ospf3":
        return (
            "OSPF hears nothing more across the link and waits for the dead interval (40 s, four "
            "hellos of 10 s) before it drops the adjacency, floods a new LSA and runs SPF "
            "(next 1 s tick): the dead interval minus the age of the last hello, 30-40 s. "
            f"Measured {med} s median ({lo}-{hi} s; {moved})."
        )
    if protocol == "ospf3":
        return (
            "The same dead-interval wait, with the profile's timers, plus the SPF tick "
            f"(1 s): {med} s median ({lo}-{hi} s; {moved})."
        )
    return f"Measured {med} s median ({lo}-{hi} s; {moved})."


def render_doc(cells: list[Cell], meta: dict[str, Any], runs: Path) -> str:
    started, took, interval = meta["started"], meta["took"], meta["interval"]
    lines = [
        "# Convergence after a link failure: RIPng, Babel, OSPFv3, BFD (BIRD 2)",
        "",
        "Generated by `benchmarks/convergence.py`; do not edit by hand. "
        f"Run {started} on {meta['machine']} ({meta['system']}), "
        f"{took / 60:.0f} min: `{meta['command']}`.",
        "",
        "The experiment of the field notes, on `examples/ring.yaml`: four routers in a "
        "ring, probes from `laptop` (behind r1) to `dns` (behind r3, its first global "
        f"address) every {interval} s with `palmnet converge`, and the r1 link the "
        "probes take (r1:r2 or r1:r4; RIPng and OSPF split flows over both ways, the "
        "routers' transmit counters tell which one the probes use) fails 2 s in, plus a "
        "random part of the protocol's hello or update period, so that the trials "
        "sample where in that period a failure falls. `down` is carrier loss on "
        "both ends (NO-CARRIER, `palmnet link down`); `silent` drops every frame with "
        "nftables while both interfaces stay up (`palmnet link impair --blackhole`), "
        "as when a radio link fades or a switch in between dies. The outage runs from "
        "the first lost probe to the first answered one after it (resolution: the "
        "interval). Lost probes, route changes (every RTM_NEWROUTE/DELROUTE in the four "
        "routers from the failure until the link was restored) and those of them that "
        "changed a route's next hops are medians over the trials; BIRD rewrites a "
        "kernel route whenever its metric changes, so the two counts differ where costs "
        "move (Babel wireless). Settled: the last route change, after the failure.",
        "",
        "| protocol / profile | mode | outage median (s) | min | max | lost probes "
        "| route changes | of next hops | settled (s) | trials |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    table_stats = []
    for cell in cells:
        st = stats(cell)
        table_stats.append((cell, st))
        n = f"{st['n']}" + (f" ({len(cell.errors)} failed)" if cell.errors else "")
        if st["unrecovered"]:
            n += f", {st['unrecovered']} not recovered"
        lost = "–" if st["lost"] is None else f"{st['lost']:g}"
        churn = "–" if st["churn"] is None else f"{st['churn']:g}"
        moves = "–" if st["moves"] is None else f"{st['moves']:g}"
        lines.append(
            f"| {cell.profile.title} | {cell.mode} | {_s(st['median'])} | {_s(st['min'])} "
            f"| {_s(st['max'])} | {lost} | {churn} | {moves} | {_s(st['settled'])} | {n} |"
        )
    lines += ["", "## Why each number is what it is", ""]
    for cell, st in table_stats:
        others = ", ".join(
            f"{router} after {_first(st, router)}"
            if st["first"].get(router) is not None
            else f"{router} never"
            for router in ("r2", "r4")
        )
        links = " and ".join(st["links"])
        lines += [
            f"**{cell.profile.title}, {cell.mode}.** {why(cell, st)} "
            f"(Failed: {links}; next hops first changed at {others}.)",
            "",
        ]
        for err in cell.errors:
            lines += [f"(a trial failed: {err})", ""]
    lines += reference_section(cells, runs)
    lines += ["## Against the field notes and the targets", ""]
    by = {(c.profile.name, c.mode): st for c, st in table_stats}

    def med(name: str, mode: str) -> str:
        st = by.get((name, mode))
        return f"{_s(st['median'])} s" if st and st["median"] is not None else "not measured"

    lines += [
        "The field notes measured 11 s with RIPng, 93 s with Babel (wireless, hello "
        "1 s) and 317 s with Babel (wired, hello 5 s), with bird6 1.6 on LEDE routers, "
        "by switching a radio off while pinging once a second. Here, with BIRD 2: "
        f"RIPng {med('ripng', 'down')} on carrier loss and {med('ripng', 'silent')} "
        f"silent; Babel wireless hello 1 s {med('babel-wireless', 'down')} / "
        f"{med('babel-wireless', 'silent')}; Babel wired hello 5 s "
        f"{med('babel-wired-5s', 'down')} / {med('babel-wired-5s', 'silent')} "
        "(down / silent). A radio switched off is closest to `down` for the router "
        "whose radio it is, and `silent` for the one across the link.",
        "",
        f"Targets (silent failure): a tuned everyday profile under 3 s: RIPng tuned "
        f"{med('ripng-tuned', 'silent')}, Babel wired hello 1 s "
        f"{med('babel-wired-1s', 'silent')}; the fastest profile under 0.3 s: "
        f"BFD {med('bfd', 'silent')}.",
        "",
        "Raw results (result.json per run, with every probe and route change): "
        f"`{runs}` on the machine that ran it (`--render-only --runs DIR` rewrites "
        "this page from them).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profiles",
        default=",".join(p.name for p in PROFILES if p.default),
        help=f"comma-separated, from: {', '.join(BY_NAME)}",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="down,silent")
    parser.add_argument("--trials", type=int, default=3, help="trials per profile and mode")
    parser.add_argument(
        "--slow-trials",
        type=int,
        default=1,
        help="trials for the cases that take minutes each (RIPng defaults, silent)",
    )
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between probes")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file to write")
    parser.add_argument("--runs", type=Path, default=None, help="folder for every run's JSON")
    parser.add_argument("--plots", action="store_true", help="a timeline.png per run too")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also run benchmarks/babel_reference.py (no palmnet) for the same rows",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite --doc from the results saved in --runs",
    )
    args = parser.parse_args()

    names = [n.strip() for n in args.profiles.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad_modes = [m for m in modes if m not in MODES]
    if unknown or bad_modes or args.trials < 1 or args.slow_trials < 1 or args.interval <= 0:
        parser.error(
            f"unknown profiles {unknown} (valid: {', '.join(BY_NAME)})"
            if unknown
            else f"unknown modes {bad_modes}"
            if bad_modes
            else "--trials, --slow-trials and --interval must be > 0"
        )
    if args.render_only:
        if args.runs is None:
            parser.error("--render-only needs --runs DIR")
        meta = json.loads((args.runs / "meta.json").read_text())
        cells = load_cells(args.runs, names, modes, meta)
    else:
        meta, cells = measure(parser, args, names, modes)
    text = render_doc(cells, meta, args.runs)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(text)
    say(f"wrote {args.doc}")
    print(re.sub(r"\n## Why.*", "", text, flags=re.S))
    return 0


def measure(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: list[str], modes: list[str]
) -> tuple[dict[str, Any], list[Cell]]:
    import os

    if os.geteuid() != 0:
        parser.error("needs root (network namespaces): sudo .venv/bin/python ...")
    if not RING.exists() or not (ROOT / "src/palmnet/services/bird.py").exists():
        parser.error("needs examples/ring.yaml and BIRD routing (services/bird.py)")
    from palmnet.state.paths import running_labs

    if LAB in running_labs():
        parser.error(f"lab {LAB} is running: `palmnet down {LAB}` first")
    args.runs = args.runs or Path(tempfile.mkdtemp(prefix="palmnet-convergence-"))
    args.runs.mkdir(parents=True, exist_ok=True)
    say(f"runs in {args.runs}")
    bird = subprocess.run(["bird", "--version"], capture_output=True, text=True)
    meta: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.node(),
        "system": f"Linux {platform.release()}, {(bird.stderr or bird.stdout).strip()}",
        "command": " ".join(["benchmarks/convergence.py", *sys.argv[1:]]),
        "interval": args.interval,
    }
    t0 = time.monotonic()
    cells: list[Cell] = []
    for name in names:
        cells += run_profile(
            BY_NAME[name],
            modes,
            args.trials,
            args.slow_trials,
            args.interval,
            args.runs,
            args.plots,
        )
    if args.reference:
        run_reference(names, args.trials, args.interval, args.runs)
    meta["took"] = time.monotonic() - t0
    meta["errors"] = {f"{c.profile.name}/{c.mode}": c.errors for c in cells if c.errors}
    (args.runs / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    say(f"took {meta['took'] / 60:.1f} min")
    return meta, cells


def load_cells(runs: Path, names: list[str], modes: list[str], meta: dict[str, Any]) -> list[Cell]:
    """The cells of an earlier run, from its result.json files (PROFILE/MODE-K/)."""
    cells = []
    for name in names:
        for mode in modes:
            cell = Cell(BY_NAME[name], mode)
            files = sorted(
                (runs / name).glob(f"{mode}-*/result.json"),
                key=lambda f: int(f.parent.name.rsplit("-", 1)[1]),
            )
            cell.results = [json.loads(f.read_text()) for f in files]
            cell.errors = list(meta.get("errors", {}).get(f"{name}/{mode}", []))
            if cell.results or cell.errors:
                cells.append(cell)
    return cells


if __name__ == "__main__":
    sys.exit(main())
