"""`palmnet ndp watch` on a real link: radvd, a host coming up, DAD, RS, RA.

The link is shaped like a lab's: a bridge in a hidden namespace
(`pnfwd-TOKEN-br`), a router node and a host node (`palmnet-LAB.router`,
`palmnet-LAB.host`) each with eth0 on that bridge. radvd runs in the router.
The host's eth0 stays down until the watch runs, so the host's first ND
messages (DAD for its link-local, then RS) are on the wire while we look.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PALMNET = str(Path(sys.executable).with_name("palmnet"))
DEADLINE = 30.0
PREFIX = "2001:db8:ebbd:2084::/64"
HOST_MAC = "00:16:3e:12:34:56"
HOST_LL = "fe80::216:3eff:fe12:3456"
HOST_GUA = "2001:db8:ebbd:2084:216:3eff:fe12:3456"
SOLICITED = "ff02::1:ff12:3456"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def _sysctl(ns: str, *settings: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *settings],
        check=True,
        capture_output=True,
    )


@dataclass
class Link:
    """One bridged link; nodes are added with `node()`."""

    token: str
    lab: str
    bridge_ns: str
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def ns(self, node: str) -> str:
        return f"palmnet-{self.lab}.{node}"

    def add_ns(self, name: str) -> str:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def node(self, name: str, mac: str, *, up: bool = True, router: bool = False) -> str:
        """A node with eth0 on the bridge; routers forward and skip DAD (ready at once)."""
        ns = self.add_ns(self.ns(name))
        port = f"p{len(self.namespaces)}"
        # Created inside our namespaces: nothing appears in the machine's.
        _ip(
            "-n", ns, "link", "add", "eth0", "address", mac, "type", "veth",
            "peer", "name", port, "netns", self.bridge_ns,
        )  # fmt: skip
        _ip("-n", self.bridge_ns, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "link", "set", "eth0", "addrgenmode", "eui64")
        if router:
            _sysctl(ns, "net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.eth0.accept_dad=0")
        if up:
            _ip("-n", ns, "link", "set", "eth0", "up")
        return ns

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, **kwargs)
        self.procs.append(proc)
        return proc


@pytest.fixture
def link() -> Iterator[Link]:
    token = secrets.token_hex(3)
    made = Link(token=token, lab=f"pnfwd{token}", bridge_ns=f"pnfwd-{token}-br")
    try:
        made.add_ns(made.bridge_ns)
        # The bridge namespace only switches frames: no IPv6 of its own.
        _sysctl(
            made.bridge_ns,
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        )
        _ip(
            "-n", made.bridge_ns, "link", "add", "br0", "type", "bridge",
            "mcast_snooping", "0", "stp_state", "0",
        )  # fmt: skip
        _ip("-n", made.bridge_ns, "link", "set", "br0", "up")
        yield made
    finally:
        for proc in made.procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for ns in reversed(made.namespaces):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def start_radvd(link: Link, tmp_path: Path, extra: str = "") -> subprocess.Popen:
    conf = tmp_path / "radvd.conf"
    conf.write_text(
        "interface eth0 {\n"
        "  AdvSendAdvert on;\n"
        "  MinRtrAdvInterval 3;\n"
        "  MaxRtrAdvInterval 10;\n"
        f"  prefix {PREFIX} {{ AdvOnLink on; AdvAutonomous on; }};\n"
        "  RDNSS 2001:db8:ebbd:2084::1 { };\n"
        "  DNSSL palm.example { };\n"
        f"{extra}"
        "};\n"
    )
    conf.chmod(0o644)
    return link.start(
        [
            "ip", "netns", "exec", link.ns("router"), "radvd", "-n", "-m", "stderr",
            "-C", str(conf), "-p", str(tmp_path / "radvd.pid"),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_watch(link: Link, node: str, *args: str) -> subprocess.Popen:
    """Run `palmnet ndp watch` and return once its sockets are open."""
    proc = link.start(
        [PALMNET, "ndp", "watch", "--lab", link.lab, node, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = next(_lines(proc.stderr, DEADLINE))
    assert status.startswith("watching eth0 in node"), status
    return proc


def _lines(stream, seconds: float) -> Iterator[str]:
    """Lines from a child's pipe as they come, until EOF or the deadline."""
    end = time.monotonic() + seconds
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while (left := end - time.monotonic()) > 0:
            if not sel.select(timeout=left):
                break
            line = stream.readline()
            if not line:
                return
            yield line
    raise TimeoutError(f"deadline of {seconds} s reached")


def wait_for_messages(
    proc: subprocess.Popen, wanted: dict[str, Callable[[dict], bool]]
) -> dict[str, dict]:
    """Read JSON lines until each predicate matched one message (in any order)."""
    found: dict[str, dict] = {}
    seen: list[dict] = []
    try:
        for line in _lines(proc.stdout, DEADLINE):
            message = json.loads(line)
            seen.append(message)
            for name, predicate in wanted.items():
                if name not in found and predicate(message):
                    found[name] = message
            if len(found) == len(wanted):
                return found
    except TimeoutError:
        pass
    summary = [(m["name"], m["source"], m["destination"], m["direction"]) for m in seen]
    pytest.fail(f"missing {sorted(set(wanted) - set(found))}; saw {summary}")


def has_prefix(message: dict) -> bool:
    return any(
        o["type"] == "prefix-info" and o["prefix"] == PREFIX and o["autonomous"]
        for o in message["options"]
    )


@pytest.mark.parametrize("watched", ["host", "router"])
def test_watch_sees_dad_rs_and_the_answering_ra(link, tmp_path, watched):
    link.node("router", "00:16:3e:00:00:01", router=True)
    _ip("-n", link.ns("router"), "addr", "add", "2001:db8:ebbd:2084::1/64", "dev", "eth0")
    start_radvd(link, tmp_path)
    host = link.node("host", HOST_MAC, up=False)

    watch = start_watch(link, watched, "eth0", "--format", "json")
    _ip("-n", host, "link", "set", "eth0", "up")

    out = "out" if watched == "host" else "in"
    found = wait_for_messages(
        watch,
        {
            "dad": lambda m: m["name"] == "NS" and m["dad"] and m["target"] == HOST_LL,
            "rs": lambda m: m["name"] == "RS" and m["source"] == HOST_LL,
            "ra": lambda m: m["name"] == "RA" and has_prefix(m),
            "slaac-dad": lambda m: m["name"] == "NS" and m["dad"] and m["target"] == HOST_GUA,
        },
    )
    dad = found["dad"]
    assert (dad["source"], dad["source_kind"]) == ("::", "unspecified")
    assert (dad["destination"], dad["destination_kind"]) == (SOLICITED, "solicited-node")
    assert dad["destination_mac"] == "33:33:ff:12:34:56"
    assert (dad["interface"], dad["direction"]) == ("eth0", out)
    rs = found["rs"]
    assert (rs["destination"], rs["destination_kind"]) == ("ff02::2", "all-routers")
    assert {"option": 1, "type": "source-lladdr", "lladdr": HOST_MAC} in rs["options"]
    ra = found["ra"]
    assert ra["source_kind"] == "link-local"
    assert ra["time"] >= rs["time"]  # the RA that answers the RS (or comes right after)
    assert ra["hop_limit"] == 255
    assert ra["flags"]["router_lifetime"] > 0
    types = {o["type"]: o for o in ra["options"]}
    assert types["rdnss"]["servers"] == ["2001:db8:ebbd:2084::1"]
    assert types["dnssl"]["domains"] == ["palm.example"]
    assert types["source-lladdr"]["lladdr"] == "00:16:3e:00:00:01"
    watch.terminate()
    assert watch.wait(timeout=DEADLINE) == 0


def test_table_format_and_count(link, tmp_path):
    link.node("router", "00:16:3e:00:00:01", router=True)
    start_radvd(link, tmp_path)
    link.node("host", HOST_MAC)
    watch = start_watch(link, "router", "--count", "1", "--timeout", str(DEADLINE))
    header, row = list(_lines(watch.stdout, DEADLINE))
    assert header.split() == [
        "TIME", "IFACE", "DIR", "TYPE", "SOURCE", "DESTINATION", "DETAILS",
    ]  # fmt: skip
    assert watch.wait(timeout=DEADLINE) == 0
    # The first ND message on the router's link: its RA, the host's DAD or RS.
    assert row.split()[1:3] in (["eth0", "out"], ["eth0", "in"])
    assert any(kind in row for kind in (" RA ", " NS ", " RS ", " NA "))


def test_too_few_messages_before_timeout_is_a_failed_check(link):
    link.node("host", HOST_MAC, up=False)
    result = subprocess.run(
        [PALMNET, "ndp", "watch", "--lab", link.lab, "host", "--count", "1", "--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 1, result.stderr
    assert "saw 0 of 1 ND messages in 0.5 s" in result.stderr


def test_unknown_interface_is_bad_input(link):
    link.node("host", HOST_MAC, up=False)
    result = subprocess.run(
        [PALMNET, "ndp", "watch", "--lab", link.lab, "host", "eth7"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 2
    assert "node host has no interface eth7" in result.stderr
    assert "Traceback" not in result.stderr


def test_watch_sees_a_redirect_to_the_better_first_hop(link):
    """Host -> router A (default) -> router B on the same link: A redirects the host to B."""
    a = link.node("a", "00:16:3e:00:00:01", router=True)
    b = link.node("b", "00:16:3e:00:00:02", router=True)
    host = link.node("host", HOST_MAC)
    a_ll, b_ll = "fe80::216:3eff:fe00:1", "fe80::216:3eff:fe00:2"
    _ip("-n", a, "addr", "add", "2001:db8:1::1/64", "dev", "eth0")
    _ip("-n", a, "route", "add", "2001:db8:9::/64", "via", b_ll, "dev", "eth0")
    _ip("-n", b, "addr", "add", "2001:db8:1::2/64", "dev", "eth0")
    _ip("-n", b, "addr", "add", "2001:db8:9::1/128", "dev", "lo")
    _ip("-n", host, "addr", "add", "2001:db8:1::10/64", "dev", "eth0", "nodad")
    _ip("-n", host, "-6", "route", "add", "default", "via", a_ll, "dev", "eth0")

    watch = start_watch(link, "host", "eth0", "--format", "json")
    ping = subprocess.run(
        ["ip", "netns", "exec", host, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "5",
         "2001:db8:9::1"],
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr
    found = wait_for_messages(watch, {"redirect": lambda m: m["name"] == "Redirect"})
    redirect = found["redirect"]
    assert redirect["type"] == 137
    assert (redirect["source"], redirect["destination"]) == (a_ll, "2001:db8:1::10")
    assert redirect["direction"] == "in"
    assert redirect["target"] == b_ll
    assert redirect["redirect_destination"] == "2001:db8:9::1"
    options = {o["type"]: o for o in redirect["options"]}
    assert options["redirected-header"]["source"] == "2001:db8:1::10"
    assert options["redirected-header"]["destination"] == "2001:db8:9::1"
    if "target-lladdr" in options:  # sent when A already knows B's MAC
        assert options["target-lladdr"]["lladdr"] == "00:16:3e:00:00:02"
    watch.terminate()
    assert watch.wait(timeout=DEADLINE) == 0
