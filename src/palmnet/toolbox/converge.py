"""`palmnet converge`: fail a link under a running ping and measure the healing.

The field notes' experiment (ping across the ring, pull a cable, watch a
stopwatch), made exact:

1. the path from --from to --to's first global address is traced through
   every router's FIB (fib.py); no route there is exit 1;
2. a netlink socket per router subscribes to IPv6 route changes
   (routewatch.py) and ICMPv6 echo probes leave --from every --interval
   seconds (probe.py), each with its send and reply time;
3. after --fail-after seconds of answered probes the link fails at a known
   time: carrier loss (`down`, both ends NO-CARRIER) or silently (`silent`,
   nftables drops everything, interfaces stay up; with --loss N only N % of
   the frames, to watch a lossy link's route churn rather than an outage);
4. probing goes on for --duration seconds, or by default until routing has
   reacted, then stayed quiet for QUIET seconds while every probe is
   answered (at most MAX_WATCH seconds); the path is traced again;
5. the link is restored in every case (finally; SIGTERM and SIGHUP are
   turned into an interrupt, and a second Ctrl-C waits for the restore).

Times in the result are seconds relative to the moment the failure was in
effect (0; negative before). The outage runs from the first probe lost
after the failure to the first probe answered after it, by send time, so
its resolution is the interval. With ECMP the probes take one of the ways
(the kernel hashes the flow); which one is read from the routers' transmit
counters during the baseline (`path_before.used`). Route changes are counted
from the failure until the restore (the restore's own changes are not).
`analyze`, `churn` and `settled` are pure and unit-tested.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palmnet.errors import CheckFailed, InputError, LabError, PalmnetError
from palmnet.plan.model import NodePlan, Plan
from palmnet.toolbox.probe import Probe
from palmnet.toolbox.routewatch import RouteEvent

if TYPE_CHECKING:
    from palmnet.lab import LabSession

MODES = ("down", "silent")
QUIET = 5.0  # default stop: routes unchanged and probes answered for this long
MAX_WATCH = 300.0  # default stop gives up this long after the failure
FIRST_ANSWER = 10.0  # seconds to wait for the first answer before the failure
GUA = ipaddress.IPv6Network("2000::/3")
ULA = ipaddress.IPv6Network("fc00::/7")

Report = Callable[[str], None]


class Interrupted(PalmnetError):
    """Ctrl-C or SIGTERM during a run; the link was restored."""

    exit_code = 130


@dataclass(frozen=True)
class ConvergeRequest:
    source: str
    target: str
    fail: str
    mode: str = "down"
    loss: int | None = None  # silent mode: drop this percent of frames, not all of them
    interval: float = 0.05
    duration: float | None = None  # None: stop when settled (at most MAX_WATCH)
    fail_after: float = 2.0
    lab: str | None = None
    quiet: float = QUIET
    # for scripts: choose the link after the baseline, from the chain the probes
    # took (`fail` is then ignored), e.g. `lambda used: f"{used[1]}:{used[2]}"`
    pick: Callable[[Sequence[str]], str] | None = None


# -- pure parts ----------------------------------------------------------------------
def destination_of(node: NodePlan) -> ipaddress.IPv6Address | None:
    """The node's first global unicast address (2000::/3), else its first ULA."""
    addresses = [a.ip for i in node.interfaces for a in (*i.ipv6_static, *i.ipv6_slaac)]
    for net in (GUA, ULA):
        for a in addresses:
            if a in net:
                return a
    return None


def check_request(plan: Plan, req: ConvergeRequest) -> None:
    """Bad input is exit 2, before anything is touched."""
    if req.interval <= 0:
        raise InputError(f"--interval must be > 0 seconds, not {req.interval}")
    if req.interval < 0.001:
        raise InputError("--interval below 1 ms would flood the lab: use 0.001 or more")
    if req.fail_after < 0:
        raise InputError(f"--fail-after must be >= 0 seconds, not {req.fail_after}")
    if req.duration is not None and req.duration <= 0:
        raise InputError(f"--duration must be > 0 seconds, not {req.duration}")
    if req.mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}, not '{req.mode}'")
    if req.loss is not None:
        if req.mode != "silent":
            raise InputError("--loss goes with --mode silent (carrier loss drops everything)")
        if not 1 <= req.loss <= 100:
            raise InputError(f"--loss must be 1..100 percent, not {req.loss}")
    names = [n.name for n in plan.nodes]
    for option, name in (("--from", req.source), ("--to", req.target)):
        if name not in names:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise InputError(f"{option}: no node '{name}' in lab {plan.lab} (nodes: {shown})")
    if req.source == req.target:
        raise InputError("--from and --to name the same node")


def _rel(t: float | None, zero: float) -> float | None:
    return None if t is None else round(t - zero, 4)


def analyze(probes: Sequence[Probe], fail_start: float, fail_at: float, interval: float) -> dict:
    """Outage, losses and loss periods of a run (times relative to `fail_at`).

    Probes sent from one interval before the failure began count as "after
    the failure": one in flight when the link went is lost by the failure.
    """
    after = [p for p in probes if p.sent >= fail_start - interval]
    periods: list[tuple[Probe, Probe | None]] = []
    first_lost: Probe | None = None
    for p in after:
        if not p.answered:
            if first_lost is None:
                first_lost = p
        elif first_lost is not None:
            periods.append((first_lost, p))
            first_lost = None
    if first_lost is not None:
        periods.append((first_lost, None))
    outage: float | None = 0.0
    recovered = True
    if periods:
        lost, back = periods[0]
        recovered = back is not None
        outage = round(back.sent - lost.sent, 4) if back is not None else None
    answered = sum(p.answered for p in probes)
    return {
        "outage": outage,
        "recovered": recovered,
        "outage_from": _rel(periods[0][0].sent, fail_at) if periods else None,
        "outage_to": _rel(periods[0][1].sent, fail_at) if periods and periods[0][1] else None,
        "loss_periods": [
            [_rel(a.sent, fail_at), _rel(b.sent, fail_at) if b else None] for a, b in periods
        ],
        "probes": {
            "sent": len(probes),
            "answered": answered,
            "lost": len(probes) - answered,
            "lost_after_failure": sum(not p.answered for p in after),
            "not_sent": sum(bool(p.error) for p in probes),
        },
    }


def churn(
    events: Sequence[RouteEvent],
    routers: Sequence[str],
    fail_at: float,
    initial: Mapping[tuple[str, str], tuple[str, ...]] | None = None,
) -> dict:
    """Route changes per router after the failure, with their times.

    `count` is every RTM_NEWROUTE/DELROUTE; `moves` only those that changed a
    prefix's next hops (from `initial`, the tables when the watch began), so a
    daemon rewriting a route with a new metric is churn but not a move.
    """
    from palmnet.toolbox.routewatch import moves as moved

    after = [e for e in events if e.at >= fail_at]
    moving = {id(e) for e in moved(events, initial or {})}
    per_router = {
        r: {
            "count": sum(e.node == r for e in after),
            "moves": sum(e.node == r and id(e) in moving for e in after),
            "first": next((_rel(e.at, fail_at) for e in after if e.node == r), None),
            "times": [_rel(e.at, fail_at) for e in after if e.node == r],
        }
        for r in routers
    }
    return {
        "count": len(after),
        "moves": sum(id(e) in moving for e in after),
        "before_failure": len(events) - len(after),
        "per_router": per_router,
        "events": [
            {
                "t": _rel(e.at, fail_at),
                "router": e.node,
                "op": e.op,
                "dst": e.dst,
                "via": list(e.via),
                "moved": id(e) in moving,
            }
            for e in events
        ],
    }


def settled(
    now: float,
    fail_at: float,
    last_change: float | None,
    probes: Sequence[Probe],
    quiet: float,
    interval: float,
) -> bool:
    """The default stop rule: routing reacted to the failure, then nothing changed
    for `quiet` seconds, and every probe of that time (but those still in flight) was
    answered."""
    if last_change is None or last_change < fail_at or now - last_change < quiet:
        return False
    in_flight = max(1.0, 4 * interval)
    window = [p for p in probes if now - quiet <= p.sent <= now - in_flight]
    return bool(window) and all(p.answered for p in window)


# -- the run -------------------------------------------------------------------------
@contextlib.contextmanager
def _terminate_is_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _shielded() -> Iterator[list[int]]:
    """Hold off Ctrl-C / SIGTERM while the link is restored; they count, and the
    caller re-raises afterwards."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, lambda signum, _f: pending.append(signum)) for s in signals}
    try:
        yield pending
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _counters(paths: Mapping[str, str]) -> dict[str, dict[str, int]]:
    from palmnet.toolbox.fib import tx_packets

    out = {}
    for node, path in paths.items():
        try:
            out[node] = tx_packets(path)
        except OSError:
            out[node] = {}
    return out


def _delta(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]]) -> dict:
    return {
        node: {dev: n - a.get(node, {}).get(dev, 0) for dev, n in devs.items()}
        for node, devs in b.items()
    }


def _path_json(path: Any, used: Sequence[str]) -> dict[str, object]:
    out = path.to_json()
    out["used"] = list(used)
    return out


@dataclass
class _Setup:
    """What the experiment knows before anything is probed."""

    session: LabSession
    dest: ipaddress.IPv6Address  # the target's address the probes go to
    back: ipaddress.IPv6Address | None  # the source's address the replies go to
    control: Any  # links.control.LinkControl
    link: Any  # links.names.Link, or None until `pick` chooses it
    routers: dict[str, str]  # router -> its network namespace
    prober: Any  # probe.EchoProber
    watch: Any  # routewatch.RouteWatch


@dataclass
class _Timeline:
    start: float = 0.0
    fail_start: float = 0.0
    fail_at: float = 0.0  # time 0: when the failure starts (the call that makes it)
    fail_done: float = 0.0  # when that call returned
    end: float = 0.0


@dataclass
class _Paths:
    """Where the probes went (forward) and where the replies came back, traced and
    read from the routers' transmit counters."""

    before: Any = None  # fib.Path
    used_before: tuple[str, ...] = ()
    back: Any = None  # fib.Path, target -> source
    used_back: tuple[str, ...] = ()
    after: Any = None
    used_after: tuple[str, ...] = ()


class ConvergeRun:
    """One experiment; `run()` returns the result dict (see module doc). Passes:
    setup (resolve, trace, subscribe), baseline (probes answered; the path traced
    again at its end, both ways, from the counters), fail, watch, restore, result."""

    def __init__(self, req: ConvergeRequest, report: Report | None = None) -> None:
        self.req = req
        self.report = report or (lambda _m: None)

    def run(self) -> dict[str, Any]:
        from palmnet.lab import LabAPI

        with LabAPI().session(self.req.lab) as session:
            if os.geteuid() != 0:  # root of the machine, or of a rootless lab once entered
                raise LabError("palmnet converge needs root (network namespaces): use sudo")
            setup = self._setup(session)
            paths, t = _Paths(), _Timeline()
            failed: Any = None  # the link, once its failure was attempted
            interrupted, restored, restore_error = "", False, ""
            with _terminate_is_interrupt():
                try:
                    try:
                        setup.watch.start()
                        self._first_answers(setup, t)
                        self._baseline(setup, paths)
                        failed = self._fail(setup, t, paths)
                        self._watch(setup.prober, setup.watch, t.fail_at)
                        self._after(setup, paths)
                    except KeyboardInterrupt as exc:
                        interrupted = str(exc) or "SIGINT"
                finally:
                    t.end = time.monotonic()
                    restored, restore_error, interrupted = self._restore(setup, failed, interrupted)
            self._check_ending(failed, restored, restore_error, interrupted)
            return self._result(setup, failed, paths, t)

    # -- passes ----------------------------------------------------------------------
    def _setup(self, session: LabSession) -> _Setup:
        from palmnet.links.control import LinkControl
        from palmnet.links.names import resolve_link
        from palmnet.toolbox import fib
        from palmnet.toolbox.probe import EchoProber
        from palmnet.toolbox.routewatch import RouteWatch

        req, plan = self.req, session.plan
        check_request(plan, req)
        link = resolve_link(plan, req.fail) if req.pick is None else None
        dest = destination_of(plan.node(req.target))
        if dest is None:
            raise InputError(f"--to: node {req.target} has no global or ULA address to probe")
        control = LinkControl(plan, session.switch())
        if link is not None:
            self._check_whole(control, link)
        src = session.running_node(req.source).netns
        before = fib.trace_live(session, req.source, dest)
        if not before.complete:
            raise CheckFailed(
                f"no route from {req.source} to {req.target} ({dest}): {before.problem}"
            )
        routers = {
            n.name: session.node(n.name).netns
            for n in plan.nodes
            if n.kind != "host" and session.node(n.name).running()
        }
        self.report(
            f"probing {req.target} ({dest}) from {req.source} every {req.interval} s; "
            f"path {' | '.join(' '.join(c) for c in before.chains)}"
        )
        return _Setup(
            session,
            dest,
            destination_of(plan.node(req.source)),
            control,
            link,
            routers,
            EchoProber(src, str(dest), req.interval),
            RouteWatch(routers),
        )

    def _first_answers(self, setup: _Setup, t: _Timeline) -> None:
        t.start = time.monotonic()
        setup.prober.start()
        if not setup.prober.wait_answers(t.start, FIRST_ANSWER):
            raise CheckFailed(
                f"no answer from {self.req.target} ({setup.dest}) to {self.req.source}'s "
                f"probes in {FIRST_ANSWER:g} s, before any failure"
            )

    def _baseline(self, setup: _Setup, paths: _Paths) -> None:
        """Probes answered for --fail-after seconds; the path traced at the end of it,
        both ways (the link to fail is chosen from this, not from a trace made before
        the routes had settled: a Babel cost that kept moving once picked a link off
        the path). If the way changed during the baseline, one more baseline."""
        from palmnet.toolbox import fib

        session, req = setup.session, self.req
        first = fib.trace_live(session, req.source, setup.dest)
        for _ in range(2):
            tx_a = _counters(setup.routers)
            threading.Event().wait(req.fail_after)  # the baseline: a fixed time, no event
            sent = _delta(tx_a, _counters(setup.routers))
            paths.before = fib.trace_live(session, req.source, setup.dest)
            paths.used_before = fib.used_chain(paths.before, session.plan, sent)
            if setup.back is not None:
                paths.back = fib.trace_live(session, req.target, setup.back)
                paths.used_back = fib.used_chain(paths.back, session.plan, sent)
            if paths.before.chains == first.chains:
                return
            self.report("the path changed during the baseline: one more baseline")
            first = paths.before

    def _fail(self, setup: _Setup, t: _Timeline, paths: _Paths) -> Any:
        from palmnet.links.names import resolve_link

        req = self.req
        link = setup.link
        if link is None and req.pick is not None:
            link = resolve_link(setup.session.plan, req.pick(paths.used_before))
            self._check_whole(setup.control, link)
        assert link is not None
        how = f"{req.mode}, {req.loss}% loss" if req.loss is not None else req.mode
        self.report(f"failing {link.describe()} ({how})")
        # Time 0 is when the failure starts: the kernel may act on it (carrier loss)
        # before the call that makes it returns.
        t.fail_start = t.fail_at = time.monotonic()
        if req.mode == "down":
            setup.control.set_carrier(link, False)
        else:
            setup.control.impair(link, req.loss)
        t.fail_done = time.monotonic()
        return link

    def _after(self, setup: _Setup, paths: _Paths) -> None:
        from palmnet.toolbox import fib

        session, req = setup.session, self.req
        paths.after = fib.trace_live(session, req.source, setup.dest)
        tx_c = _counters(setup.routers)
        window = time.monotonic()
        setup.prober.wait_answers(window, 3.0, count=max(10, int(1 / req.interval)))
        sent = _delta(tx_c, _counters(setup.routers))
        paths.used_after = fib.used_chain(paths.after, session.plan, sent)

    def _restore(self, setup: _Setup, failed: Any, interrupted: str) -> tuple[bool, str, str]:
        """The link whole again in every case; then the probes and the watch stop.
        (restored, why not, the interruption)."""
        restored, restore_error = False, ""
        with _shielded() as pending:
            if failed is not None:
                try:
                    setup.control.clear(failed)
                    restored = not setup.control.status_of(failed).failed
                except PalmnetError as exc:
                    restore_error = str(exc)
            setup.prober.stop(grace=1.0)
            setup.watch.stop()
        if pending and not interrupted:
            interrupted = signal.Signals(pending[0]).name
        if failed is not None:
            self.report(
                f"link {failed.name} restored"
                if restored
                else f"link {failed.name} NOT restored: {restore_error}; "
                f"run `palmnet link clear {failed.name}`"
            )
        return restored, restore_error, interrupted

    @staticmethod
    def _check_ending(failed: Any, restored: bool, restore_error: str, interrupted: str) -> None:
        if interrupted:
            raise Interrupted(
                f"interrupted ({interrupted})"
                + (f"; link {failed.name} restored" if failed is not None and restored else "")
            )
        if failed is None:
            raise LabError("the link was never failed")  # not reached: an error came first
        if not restored:
            raise LabError(f"link {failed.name} could not be restored: {restore_error}")

    def _result(self, setup: _Setup, link: Any, paths: _Paths, t: _Timeline) -> dict[str, Any]:
        req = self.req
        zero = t.fail_at
        probes = setup.prober.snapshot()
        result: dict[str, Any] = {
            "lab": setup.session.plan.lab,
            "from": req.source,
            "to": req.target,
            "destination": str(setup.dest),
            "link": link.name,
            "network": link.network,
            "mode": req.mode,
            "loss": req.loss if req.mode == "silent" and req.loss is not None else 100,
            "interval": req.interval,
            "started": datetime.datetime.now(datetime.timezone.utc)
            .replace(microsecond=0)
            .isoformat(),
            "failure": {
                "at": 0.0,
                "took": round(t.fail_done - t.fail_start, 4),
                "probing_from": _rel(t.start, zero),
                "watched_until": _rel(t.end, zero),
            },
        }
        result.update(analyze(probes, t.fail_start, zero, req.interval))
        events = [e for e in setup.watch.snapshot() if e.at <= t.end]  # not the restore's
        changes = churn(events, list(setup.routers), zero, setup.watch.initial)
        result["path_before"] = _path_json(paths.before, paths.used_before)
        result["path_after"] = _path_json(paths.after, paths.used_after)
        if paths.back is not None:
            result["path_back"] = _path_json(paths.back, paths.used_back)
        result["replies_cross_the_link"] = _crosses(paths.used_back, link)
        result["route_changes"] = changes
        times = [e["t"] for e in changes["events"] if e["t"] >= 0]
        result["settled_at"] = max(times) if times else None
        result["restored"] = True
        if setup.watch.overruns:
            result["route_changes"]["overruns"] = sorted(set(setup.watch.overruns))
        result["samples"] = [
            [_rel(p.sent, zero), round((p.replied - p.sent) * 1000, 3) if p.replied else None]
            for p in probes
        ]
        return result

    @staticmethod
    def _check_whole(control: Any, link: Any) -> None:
        state = control.status_of(link)
        if state.failed:
            raise LabError(
                f"link {link.name} is already {state.state()}: "
                f"`palmnet link clear {link.name}` first"
            )

    def _watch(self, prober: Any, watch: Any, fail_at: float) -> None:
        req = self.req
        limit = req.duration if req.duration is not None else MAX_WATCH
        end = fail_at + limit
        tick = threading.Event()
        # poll: the stop rule is checked ten times a second (probes and route
        # events arrive on their own threads)
        while True:
            now = time.monotonic()
            if now >= end:
                if req.duration is None:
                    self.report(f"not settled {MAX_WATCH:g} s after the failure: stopping")
                return
            if req.duration is None and settled(
                now, fail_at, watch.last_at(), prober.snapshot(), req.quiet, req.interval
            ):
                return
            tick.wait(min(0.1, end - now))


def _crosses(chain: Sequence[str], link: Any) -> bool:
    """Whether a chain of nodes goes across the link (two of its nodes in a row)."""
    nodes = set(link.nodes)
    return any(a in nodes and b in nodes for a, b in itertools.pairwise(chain))


def converge(req: ConvergeRequest, report: Report | None = None) -> dict[str, Any]:
    return ConvergeRun(req, report).run()


# -- output --------------------------------------------------------------------------
def _chains(path: Mapping[str, Any]) -> str:
    chains = [" ".join(c) for c in path.get("chains", [])]
    text = " | ".join(chains) or "none"
    used = path.get("used")
    if len(chains) > 1 and used:
        text += f"  (probes: {' '.join(used)})"
    return text


def _how(result: Mapping[str, Any]) -> str:
    loss = result.get("loss", 100)
    return f"silent, {loss}% loss" if result["mode"] == "silent" and loss < 100 else result["mode"]


def summary(result: Mapping[str, Any]) -> str:
    """A few lines for people."""
    p = result["probes"]
    rc = result["route_changes"]
    outage = "NOT recovered" if result["outage"] is None else f"{result['outage']:.3f} s"
    per = ", ".join(f"{r} {v['count']}" for r, v in rc["per_router"].items())
    settled_at = result.get("settled_at")
    lines = [
        f"{result['from']} -> {result['to']} ({result['destination']}), "
        f"link {result['link']} failed ({_how(result)}), probes every {result['interval']} s",
        f"path before: {_chains(result['path_before'])}",
        f"path after:  {_chains(result['path_after'])}",
        f"outage: {outage}; lost {p['lost_after_failure']} of {p['sent']} probes"
        + (f" in {len(result['loss_periods'])} periods" if len(result["loss_periods"]) > 1 else ""),
        f"route changes: {rc['count']} ({per}), {rc.get('moves', 0)} of next hops"
        + (f"; settled {settled_at:.3f} s after the failure" if settled_at is not None else ""),
        f"link {result['link']} restored" if result.get("restored") else "link NOT restored",
    ]
    files = result.get("files")
    if files:
        lines.append("wrote " + ", ".join(files.values()))
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out: Path, report: Report | None = None) -> None:
    """result.json and timeline.png in `out` (the plot is skipped without matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "result.json")}
    try:
        from palmnet.toolbox.timeline_plot import plot_timeline

        plot_timeline(result, out / "timeline.png")
        files["png"] = str(out / "timeline.png")
    except ImportError:
        if report:
            report("matplotlib is not installed: no timeline.png (pip install matplotlib)")
    result["files"] = files
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
