"""The lab's daemons are supervised as procd does it (lab/supervisor.py), on both backends.

A cascade (examples/cascade.yaml: an ISP with kea and dnsmasq, two openwrt
routers with radvd, dnsmasq, kea and dhcpcd, hosts with rdnssd and dhcpcd)
gets a RIPng process on r1 as well, so every kind of daemon palmnet runs is
there. Each test kills a daemon with SIGKILL, as a crash would, and asserts on
what the lab really does afterwards: the daemon is back (a new pid, `ls` says
how many restarts), names resolve again from the host behind it, `launch`
works. A daemon that keeps dying is given up on and shown as failed; `up` on
the lab starts it again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from palmnet.lab.supervisor import UNKNOWN_EXIT, log_path
from tests.integration.labs import node_exec, run, traces, up

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEADLINE = 20.0
RIP = """\
    routing:
      protocol: ripng
      interfaces: {eth1: {}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[str]:
    work = tmp_path_factory.mktemp("sup")
    for folder in ("cascade-r1", "cascade-r2"):
        shutil.copytree(EXAMPLES / folder, work / folder)
    name = f"sv{backend[0]}{os.getpid() % 10000}"
    text = (EXAMPLES / "cascade.yaml").read_text().replace("name: cascade", f"name: {name}", 1)
    text = text.replace("    uci: cascade-r1\n", "    uci: cascade-r1\n" + RIP, 1)
    assert RIP in text
    path = work / "lab.yaml"
    path.write_text(text)
    up(path, backend, timeout=240)
    try:
        yield name
    finally:
        run("down", name, check=False)
    assert traces(name, backend) == []


def services(lab: str) -> dict[tuple[str, str], dict]:
    nodes = json.loads(run("ls", lab, "--format", "json").stdout)
    return {(n["name"], s["name"]): {**s, "node": n["state"]} for n in nodes for s in n["services"]}


def wait_until(what: str, check, deadline: float = DEADLINE):  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline:g} s: {what}")
        time.sleep(0.1)  # poll: the supervisor's restart shows in `ls`, no event reaches us


def kill(lab: str, node: str, service: str) -> int:
    pid = services(lab)[(node, service)]["pid"]
    assert pid, f"{node}/{service} does not run"
    os.kill(pid, signal.SIGKILL)
    return int(pid)


def back(lab: str, node: str, service: str, old: int) -> dict:
    def restarted() -> dict | None:
        s = services(lab)[(node, service)]
        return s if s["state"] == "running" and s["pid"] not in (None, old) else None

    return wait_until(f"{node}/{service} restarted", restarted)


def test_every_daemon_has_a_state_in_ls(lab: str) -> None:
    states = services(lab)
    for key in [
        ("isp", "kea"),
        ("isp", "dnsmasq"),
        ("isp", "radvd"),
        ("r1", "bird"),
        ("r1", "dhcpcd"),
        ("r1", "radvd"),
        ("r1", "dnsmasq"),
        ("r1", "kea"),
        ("h2", "rdnssd"),
        ("h2", "dhcpcd"),
    ]:
        assert states[key]["state"] == "running", (key, states.get(key))
        assert states[key]["node"] == "RUNNING"


@pytest.mark.parametrize(
    ("node", "service"),
    [("r2", "dnsmasq"), ("r1", "radvd"), ("isp", "kea"), ("r1", "bird"), ("r2", "dhcpcd")],
)
def test_a_killed_daemon_comes_back(lab: str, node: str, service: str) -> None:
    before = services(lab)[(node, service)]["restarts"]
    old = kill(lab, node, service)
    now = back(lab, node, service, old)
    assert now["restarts"] == before + 1
    # the kernel's word; a kernel before 6.15 keeps nothing once init reaped `up`'s child
    assert now["last_exit"] in ("killed by signal 9", UNKNOWN_EXIT), now["last_exit"]
    # what the daemon is for works again: names from h2's resolver, behind r2
    wait_until(
        f"h2 resolves a name after {node}/{service} came back",
        lambda: node_exec(
            lab, "h2", "dig", "+short", "+tries=3", "AAAA", "web.cascade.example", check=False
        ).stdout.strip(),
    )


def test_launch_works_after_dnsmasq_came_back(lab: str) -> None:
    old = kill(lab, "r2", "dnsmasq")
    back(lab, "r2", "dnsmasq", old)
    nodes = json.loads(run("launch", "--lab", lab, "h2", "h3", "--format", "json").stdout)
    h3 = next(n for n in nodes if n["name"] == "h3")
    assert h3["state"] in ("RUNNING", "DEGRADED")
    assert any(a.startswith("2001:db8:ebbd:c610:") for i in h3["interfaces"] for a in i["ipv6"])
    answer = node_exec(lab, "h2", "dig", "+short", "AAAA", "h3.cascade.example").stdout
    assert answer.strip()


def test_a_daemon_that_keeps_dying_is_given_up_then_up_repairs_it(lab: str) -> None:
    node, service = "r1", "dnsmasq"
    for _ in range(10):
        s = services(lab)[(node, service)]
        if s["state"] == "failed":
            break
        if s["state"] == "running":
            old = kill(lab, node, service)
            wait_until(
                "dnsmasq back or given up",
                lambda old=old: (
                    services(lab)[(node, service)]["pid"] not in (None, old)
                    or services(lab)[(node, service)]["state"] == "failed"
                ),
            )
        else:
            wait_until("dnsmasq restarted", lambda: services(lab)[(node, service)]["pid"])
    s = services(lab)[(node, service)]
    assert s["state"] == "failed", s
    assert s["node"] == "DEGRADED"
    # given up at the fifth crash in a row (four restarts), as the kernel said it died,
    # and counted once: the journal naming the dead pid afterwards is no new death
    assert (s["restarts"], s["last_exit"]) == (4, "killed by signal 9"), s
    said = [line for line in log_path(lab).read_text().splitlines() if f"{node}/{service}" in line]
    assert sum("given up" in line for line in said) == 1, said
    assert "5 crashes in a row, given up" in said[-1], said
    assert not any("gone before" in line for line in said), said
    table = run("ls", lab).stdout
    assert "DEGRADED" in table and "dnsmasq failed" in table
    # `up` on the running lab repairs it (and says so)
    proc = run("up", str(_lab_file(lab)))
    assert "repaired r1/dnsmasq" in proc.stderr, proc.stderr
    s = services(lab)[(node, service)]
    assert s["state"] == "running" and s["node"] == "RUNNING"
    # and the supervisor watches the repaired daemon: killed, it comes back
    back(lab, node, service, kill(lab, node, service))


def _lab_file(lab: str) -> Path:
    from palmnet.lab import LabAPI

    with LabAPI().session(lab) as s:
        return Path(s.journal.meta("source"))
