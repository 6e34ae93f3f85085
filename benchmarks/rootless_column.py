"""The rootless column of benchmarks/bringup.py (`--rootless`): the same lab, brought up
by a plain user in its own user namespace, in the same run as the root rows.

A temporary user is made for the run (useradd, with the subordinate ids useradd
gives it; removed at the end, with anything of its left), with its own runtime
directory (XDG_RUNTIME_DIR, mode 0700). Its `palmnet up` and `palmnet down` are
timed as the root rows are (wall time around the process, through runuser: the
runuser start is a few ms), and `palmnet ls --format json` as the user checks
that every host holds its planned global address.

The neighbour table is the machine's (a user namespace has no copy to raise):
where the root row raised gc_thresh with --raise-neigh-limit, this column
raises it the same way for its run (as root, restored afterwards) and says so;
a plain user would ask root for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from palmnet.kernel import neigh_limit

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RootlessRun:
    n: int
    up_s: float | None = None
    down_s: float | None = None
    ready: int = 0
    stragglers: list[str] = field(default_factory=list)
    raised: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class BenchUser:
    name: str
    uid: int
    base: Path
    src: Path
    python: str

    def argv(self, *args: str) -> list[str]:
        env = [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            f"HOME={self.base}",
            f"XDG_RUNTIME_DIR={self.base / 'xdg'}",
            f"PYTHONPATH={self.src}",
        ]
        return ["runuser", "-u", self.name, "--", "env", "-i", *env, self.python, "-m", "palmnet"]

    def palmnet(self, *args: str, timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
        t0 = time.monotonic()
        p = subprocess.run(
            [*self.argv(), *args], capture_output=True, text=True, timeout=timeout, cwd=self.base
        )
        return time.monotonic() - t0, p

    def pids(self) -> list[int]:
        """Live processes of the user (zombies left their namespaces; init reaps them)."""
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(entry.path).st_uid != self.uid:
                        continue
                    if Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry.name))
        return found


@contextlib.contextmanager
def bench_user(src: Path | None) -> Iterator[BenchUser]:
    """A plain user for the column, removed afterwards (its processes first)."""
    name = f"rlbench{os.getpid() % 10000}"
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name], check=True)
    base = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    try:
        uid = pwd.getpwnam(name).pw_uid
        base.chmod(0o755)
        (base / "xdg").mkdir(mode=0o700)
        os.chown(base / "xdg", uid, -1)
        tree = src or ROOT / "src"
        probe = ["runuser", "-u", name, "--", "test", "-r", str(tree / "palmnet" / "__init__.py")]
        if subprocess.run(probe).returncode != 0:
            shutil.copytree(tree, base / "src", ignore=shutil.ignore_patterns("__pycache__"))
            tree = base / "src"
        yield BenchUser(name, uid, base, tree, sys.executable)
    finally:
        with contextlib.suppress(KeyError):
            user = BenchUser(name, pwd.getpwnam(name).pw_uid, base, ROOT, sys.executable)
            for pid in user.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def neigh_room(need: int | None) -> Iterator[str]:
    """gc_thresh raised as `up --raise-neigh-limit` would, for one run (root's doing);
    `need`: the lab's entries (None: no raise)."""
    if need is None:
        yield ""
        return
    old = {k: neigh_limit.read(k) for k in neigh_limit.KEYS}
    new = neigh_limit.values_for(neigh_limit.current_entries() + need)
    try:
        for k, v in new.items():
            if v > old[k]:
                neigh_limit.write(k, v)
        yield f"gc_thresh3 {old['gc_thresh3']} -> {neigh_limit.read('gc_thresh3')} by root"
    finally:
        for k, v in old.items():
            neigh_limit.write(k, v)


def planned_guas(plan: list[dict]) -> dict[str, set[str]]:
    return {
        node["name"]: {
            a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"] if ":216:3eff:" in a
        }
        for node in plan
        if node["kind"] == "host"
    }


def run_rootless(user: BenchUser, n: int, topology: str, need: int | None) -> RootlessRun:
    """Up, verify and down of the lab as `user` (`need`: raise the neighbour limit)."""
    r = RootlessRun(n)
    lab = f"rlb{n}"
    path = user.base / f"{lab}.yaml"
    path.write_text(topology.replace(f"name: bench{n}", f"name: {lab}"))
    _, plan = user.palmnet("plan", str(path), "--format", "json", timeout=120)
    want = {
        h: {a for a in g if not a.startswith("fe80:")}
        for h, g in planned_guas(json.loads(plan.stdout)).items()
    }
    with neigh_room(need) as raised:
        r.raised = raised
        try:
            up_s, p = user.palmnet("up", str(path), "--format", "json", timeout=900)
            if p.returncode != 0:
                r.errors.append(f"up exit {p.returncode}: {p.stderr.strip()[-600:]}")
            else:
                r.up_s = up_s
                _, ls = user.palmnet("ls", lab, "--format", "json", timeout=120)
                held = {
                    node["name"]: {a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"]}
                    for node in json.loads(ls.stdout)
                }
                r.stragglers = sorted(h for h, g in want.items() if not g <= held.get(h, set()))
                r.ready = len(want) - len(r.stragglers)
        finally:
            down_s, p = user.palmnet("down", lab, timeout=300)
            if p.returncode == 0:
                r.down_s = down_s
            else:
                r.errors.append(f"down exit {p.returncode}: {p.stderr.strip()[-300:]}")
            left = user.pids()
            if left:
                r.errors.append(f"{len(left)} processes of the user left after down")
    return r


def _cell(values: list[float | None]) -> str:
    """median (min) of the runs that finished, as the root rows show them."""
    done = [v for v in values if v is not None]
    if not done:
        return "failed"
    if len(values) == 1:
        return f"{done[0]:.2f}"
    return f"{statistics.median(done):.2f} ({min(done):.2f})"


def print_column(
    root_up: dict[int, list[float | None]], runs: dict[int, list[RootlessRun]]
) -> None:
    """N, root's up (the rows above), rootless up and down, hosts ready, ratio of the
    medians; each run of a size is root then rootless, one after the other."""
    head = ("N", "root up s", "rootless up s", "rootless down s", "ready", "rootless/root up")
    rows = []
    for n, rl in runs.items():
        base = [v for v in root_up.get(n, []) if v is not None]
        ups = [r.up_s for r in rl if r.up_s is not None]
        ratio = f"{statistics.median(ups) / statistics.median(base):.2f}" if ups and base else "-"
        rows.append(
            (
                str(n),
                _cell(list(root_up.get(n, []))),
                _cell([r.up_s for r in rl]),
                _cell([r.down_s for r in rl]),
                " ".join(f"{r.ready}/{r.n}" for r in rl),
                ratio,
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("\nrootless column (a plain user, its own user namespace; same run):")
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for n, rl in runs.items():
        for r in rl:
            if r.raised:
                print(f"  N={n}: {r.raised} for the run (restored)")
            if r.stragglers:
                print(f"  N={n}: stragglers {', '.join(r.stragglers[:10])}")
            for e in r.errors:
                print(f"  N={n}: ERROR {e}")
