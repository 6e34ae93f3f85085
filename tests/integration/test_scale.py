"""Large labs and fast commands on real labs (issue 15).

- The quick lane (cli/quick.py) and the Typer app give the same output for the
  same lab: `ls` (table and JSON), `exec` exit codes, `down`.
- A lab the machine cannot hold is refused before anything is made, naming the
  limit: here the open-file limit, lowered for one `up` with prlimit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.labs import (
    PALMNET,
    lab_traces,
    restores_done,
    run,
    run_json,
    write_lab,
)

LAB = """\
name: {name}
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: ["2001:db8:5ca1::1/64"], ra: true}}
  h:
    count: {count}
    interfaces:
      eth0: {{network: lan}}
"""


def typer_door(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command through the Typer app (the quick lane skipped)."""
    code = (
        "import sys\nfrom palmnet.cli.app import build_app\n"
        f"build_app()(args={list(args)!r}, prog_name='palmnet')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.fixture
def lab(tmp_path: Path):
    name = f"sc{os.getpid() % 100000}"
    path = write_lab(tmp_path / "lab.yaml", LAB.format(name=name, count=3))
    yield name, path
    run("down", name, check=False)
    assert lab_traces(name) == []


def test_both_doors_answer_alike(lab) -> None:
    name, path = lab
    live = run_json("up", str(path))
    assert len(live) == 4
    for args in (["ls", name], ["ls", "--lab", name, "-f", "json"]):
        quick = run(*args)
        slow = typer_door(*args)
        assert slow.returncode == 0, slow.stderr
        assert quick.stdout == slow.stdout
    for code in ("0", "3"):
        argv = ["exec", "--lab", name, "h2", "--", "sh", "-c", f"exit {code}"]
        assert run(*argv, check=False).returncode == int(code)
        assert typer_door(*argv).returncode == int(code)
    missing = run("exec", "--lab", name, "h9", "--", "true", check=False)
    assert missing.returncode == 2
    assert missing.stderr == typer_door("exec", "--lab", name, "h9", "--", "true").stderr
    assert "h9" in missing.stderr


def test_exec_enters_a_node_by_its_name_alone(lab) -> None:
    """`exec` finds the node among the names the journal keeps beside the plan and
    goes in by the backend's door (lab/door.py): it never builds the plan's classes,
    which were half of its start-up."""
    from palmnet.lab.store import NODE_NAMES, journal

    name, path = lab
    run("up", str(path))
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "palmnet", "exec", "--lab", name, "h2",
         "--", "hostname"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (traced.returncode, traced.stdout) == (0, "h2\n"), traced.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()}
    assert "palmnet.lab.door" in imported
    assert not {"palmnet.plan.model", "palmnet.lab.api", "palmnet.backends.base"} & imported
    missing = run("exec", "--lab", name, "h9", "--", "true", check=False)
    assert missing.returncode == 2 and "no node 'h9' in lab" in missing.stderr, missing.stderr
    run("stop", "--lab", name, "h3")
    stopped = run("exec", "--lab", name, "h3", "--", "true", check=False)
    assert (stopped.returncode, stopped.stderr) == (1, "palmnet: node h3 is not running\n")
    with journal(name) as j:  # a lab stored by a palmnet that kept no names: its plan says
        j.set_meta(NODE_NAMES, None)
    assert run("exec", "--lab", name, "h2", "--", "hostname").stdout == "h2\n"
    assert run("exec", "--lab", name, "h9", "--", "true", check=False).stderr == missing.stderr


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is missing")
def test_up_refuses_a_lab_past_the_open_file_limit(tmp_path: Path) -> None:
    name = f"sf{os.getpid() % 100000}"
    path = write_lab(tmp_path / "big.yaml", LAB.format(name=name, count=400))
    proc = subprocess.run(
        ["prlimit", "--nofile=1024:1024", "--", *PALMNET, "up", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert proc.returncode == 2, proc.stderr
        assert "RLIMIT_NOFILE" in proc.stderr and "1,024" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert lab_traces(name) == []
        assert not Path(f"/run/palmnet/{name}").exists()
    finally:
        run("down", name, check=False)


@pytest.mark.serial  # sized from the machine's neighbour entries in use now
def test_up_refuses_a_lab_past_the_neighbour_table(tmp_path: Path) -> None:
    """A LAN whose hosts would fill the machine's IPv6 neighbour table is refused before
    anything is made (else their router solicitations fail and `up` times out)."""
    from palmnet.kernel import neigh_limit
    from palmnet.lab.host import ENTRIES_FLOOR

    have, cap = neigh_limit.current_entries(), neigh_limit.limit()
    count = (cap - have) // ENTRIES_FLOOR + 10
    if count > 1000:
        pytest.skip(f"gc_thresh3 is {cap} here: the lab to fill it would pass a bridge's ports")
    name = f"sn{os.getpid() % 100000}"
    path = write_lab(tmp_path / "big.yaml", LAB.format(name=name, count=count))
    try:
        proc = run("up", str(path), check=False)
        assert proc.returncode == 2, proc.stderr
        assert f"gc_thresh3={cap:,}" in proc.stderr and "--raise-neigh-limit" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert lab_traces(name) == []
        assert not Path(f"/run/palmnet/{name}").exists()
    finally:
        run("down", name, check=False)


def test_radvd_has_room_for_a_lan_of_solicitations(lab) -> None:
    """radvd's ICMPv6 socket gets a 4 MiB receive buffer (the kernel shows it doubled)
    before hosts come up, so a LAN's burst of router solicitations is not dropped."""
    name, path = lab
    run_json("up", str(path))
    from palmnet.kernel import sockbuf
    from palmnet.services.radvd import RS_BURST_BUFFER

    pid = int(Path(f"/run/palmnet/{name}/nodes/r/radvd/radvd.pid").read_text())
    buffers = [
        s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        for s in sockbuf.held_sockets(pid)
        if sockbuf.is_icmpv6_raw(s)
    ]
    assert buffers == [2 * RS_BURST_BUFFER], buffers


def _table_fulls() -> int:
    """The kernel's count of refused neighbour entries, all CPUs together."""
    head, *rows = Path("/proc/net/stat/ndisc_cache").read_text().splitlines()
    at = head.split().index("table_fulls")
    return sum(int(row.split()[at], 16) for row in rows)


def test_down_puts_the_neighbour_limit_back_once_the_table_has_room(tmp_path: Path) -> None:
    """A lab that raised the limit holds more entries than the old limit allows; `down`
    restores the old limit only after its dying namespaces have let go of them, so no
    neighbour on the machine is refused on the way (measured before: 1,900 entries
    still held when `down` returned at 1,000 hosts, "neighbor table overflow!").
    `down` returns first and a detached process does it (lab/host_restore.py): a
    thread samples the limit and the table from `down` until that process is done."""
    from palmnet.kernel import neigh_limit

    have, cap = neigh_limit.current_entries(), neigh_limit.limit()
    count = (cap - have) // 4 + 60  # about 4 entries per host: past the old limit
    if count > 1000:
        pytest.skip(f"gc_thresh3 is {cap} here: the lab to pass it would pass a bridge's ports")
    name = f"sr{os.getpid() % 100000}"
    path = write_lab(tmp_path / "raised.yaml", LAB.format(name=name, count=count))
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((neigh_limit.read("gc_thresh3"), neigh_limit.current_entries()))

    try:
        run("up", str(path), "--raise-neigh-limit")
        assert neigh_limit.limit() > cap
        held = neigh_limit.current_entries()
        assert held > cap, f"the lab holds {held} entries, not more than the old limit {cap}"
        fulls = _table_fulls()
        watcher = threading.Thread(target=sample)
        watcher.start()
        try:
            run("down", name)
            assert restores_done(), "the restore handed over by `down` did not finish"
        finally:
            done.set()
            watcher.join()
        assert neigh_limit.limit() == cap
        over = [entries for limit, entries in samples if limit <= cap and entries >= limit]
        assert not over, f"the old limit {cap} was back while the table held {max(over)}"
        assert _table_fulls() == fulls, "the kernel refused neighbour entries during `down`"
        assert len(samples) > 10, "too few samples to tell"
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []
