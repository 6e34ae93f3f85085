"""The real daemons run the adapters' configs: RA options, DNS, DHCP, resolv.conf, HTTP.

Each test makes two namespaces of its own, `pnsvc-TOKEN-r` (the router) and
`pnsvc-TOKEN-h` (the host), joined by one veth (`lan0` <-> `eth0`) that carries
the MACs and addresses of the plan in tests/unit/test_services.py. Daemons are
started the way the backend starts them: render() written (parent directories
made, `#!` files without a suffix made executable), argv() run in the node's
network namespace in its own session, stopped by that pid. dhcpcd additionally
goes through `unshare -m` with its private_mounts() bound over its compiled-in
directories, the confinement recipe of reference/pd-notes.md (the backend
binds them when it makes the node's mount namespace).

DAD is off in both namespaces: these tests are about the daemons, and a
tentative link-local would only delay the first RA and the DHCPv6 exchange.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from palmnet.kernel import processes
from palmnet.kernel.watch import AddressWatch
from palmnet.plan.model import DnsRecord, NodePlan, Plan
from palmnet.services import runner
from palmnet.services.base import Service
from palmnet.services.dhcpcd import Dhcpcd
from palmnet.services.dnsmasq import Dnsmasq
from palmnet.services.httpd import Httpd
from palmnet.services.radvd import Radvd
from palmnet.services.rdnssd import Rdnssd
from palmnet.state.journal import Journal
from tests.unit.test_services import (
    H_DHCP4,
    H_DHCP6,
    H_GUA,
    H_MAC,
    R_GUA,
    R_MAC,
    host_node,
    lab_plan,
    lan_service,
    router_node,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]

DEADLINE = 20.0
H_LL = "fe80::216:3eff:fe00:2"
R_LL = "fe80::216:3eff:fe00:1"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g} s")
        time.sleep(0.02)  # poll: these daemons signal readiness to nobody


@dataclass
class Pair:
    """A router and a host namespace on one veth; what the test starts is stopped."""

    token: str
    state: Path
    plan: Plan
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def router(self) -> str:
        return f"pnsvc-{self.token}-r"

    @property
    def host(self) -> str:
        return f"pnsvc-{self.token}-h"

    @staticmethod
    def netns_path(ns: str) -> str:
        return f"/run/netns/{ns}"

    def create(self) -> None:
        for ns in (self.router, self.host):
            _ip("netns", "add", ns)
            self.run(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0")
            self.run(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0")
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip(
            "-n", self.router, "link", "add", "lan0", "address", R_MAC, "type", "veth",
            "peer", "name", "eth0", "address", H_MAC, "netns", self.host,
        )  # fmt: skip
        _ip("-n", self.router, "addr", "add", f"{R_GUA}/64", "dev", "lan0")
        _ip("-n", self.router, "addr", "add", "192.0.2.1/24", "dev", "lan0")
        _ip("-n", self.router, "link", "set", "lan0", "up")

    def host_up(self) -> None:
        """The host's link comes up last, as in a lab: its RS then meets a running radvd.

        Returns once its link-local is there: before that it cannot send (rdisc6:
        `Network is unreachable`).
        """
        _ip("-n", self.host, "link", "set", "eth0", "up")
        self.wait_addresses(self.host, [H_LL])

    def run(self, ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net={self.netns_path(ns)}", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def dig(self, ns: str, *query: str) -> str:
        """dig +short at the router's LAN address, from `ns`."""
        out = self.run(ns, "dig", "+time=2", "+tries=1", "+short", f"@{R_GUA}", *query)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip()

    def service(self, cls: type[Service], node: NodePlan) -> Service:
        """The adapter, its files written as the backend writes them."""
        svc = cls(self.plan, node, self.state / node.name)
        svc.dir.mkdir(parents=True, exist_ok=True)
        for path, content in svc.render().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            if path.suffix in (".sh", "") and content.startswith("#!"):
                path.chmod(0o755)
        return svc

    def start(self, svc: Service, ns: str, argv: list[str] | None = None) -> int:
        """argv (default: the adapter's) in the node's netns; private dirs bound if any."""
        command = argv or svc.argv()
        mounts = svc.private_mounts()
        if mounts:
            binds = []
            for target, source in mounts.items():
                source.mkdir(parents=True, exist_ok=True)
                # The mount point must exist on the machine; dhcpcd-base does
                # not create /run/dhcpcd. It is left there, empty.
                Path(target).mkdir(parents=True, exist_ok=True)
                binds.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
            script = " && ".join(binds) + ' && exec "$@"'
            command = [
                "unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "sh", *command,
            ]  # fmt: skip
        with open(svc.log, "ab") as log:
            proc = subprocess.Popen(
                ["nsenter", f"--net={self.netns_path(ns)}", "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc.pid

    def wait_ready(self, svc: Service, pid: int) -> None:
        def ready() -> bool:
            proc = next(p for p in self.procs if p.pid == pid)
            if proc.poll() is not None:
                raise AssertionError(f"{svc.name} exited: {svc.log.read_text()[-2000:]}")
            return svc.ready(pid)

        wait_for(ready, f"{svc.name} ready")

    def wait_addresses(self, ns: str, addresses: list[str]) -> None:
        """On netlink events: every address usable on the node."""
        watch = AddressWatch()
        try:
            watch.watch(ns, self.netns_path(ns), addresses)
            watch.dump()
            watch.wait(DEADLINE)
        finally:
            watch.close()

    def stop_all(self) -> None:
        """SIGTERM each session we started (dhcpcd's privsep helpers too), then SIGKILL.

        SIGTERM is sent twice: dhcpcd 9.4.1 loses one that arrives in the
        ~0.3 s after it binds a lease (seen 4 times out of 4; nothing logged),
        and exits at once on the second.
        """
        for proc in reversed(self.procs):
            for sig, wait in ((signal.SIGTERM, 1), (signal.SIGTERM, 4), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.procs.clear()

    def destroy(self) -> None:
        self.stop_all()
        for ns in (self.router, self.host):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", ns)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(secrets.token_hex(3), tmp_path, lab_plan())
    try:
        p.create()
        yield p
    finally:
        p.destroy()


def start_radvd(pair: Pair) -> Service:
    radvd = pair.service(Radvd, router_node())
    pid = pair.start(radvd, pair.router)
    pair.host_up()
    pair.wait_ready(radvd, pid)
    return radvd


def start_dnsmasq(pair: Pair) -> Service:
    dnsmasq = pair.service(Dnsmasq, router_node())
    pair.wait_ready(dnsmasq, pair.start(dnsmasq, pair.router))
    return dnsmasq


def test_configs_pass_the_daemons_own_checks(pair: Pair) -> None:
    radvd = pair.service(Radvd, router_node())
    dnsmasq = pair.service(Dnsmasq, router_node())
    checked = pair.run(pair.router, radvd.executable, "--configtest", "--config", str(radvd.conf))
    assert checked.returncode == 0, checked.stderr
    checked = pair.run(pair.router, dnsmasq.executable, "--test", f"--conf-file={dnsmasq.conf}")
    assert checked.returncode == 0, checked.stderr


def test_radvd_ra_carries_flags_rdnss_and_dnssl(pair: Pair) -> None:
    start_radvd(pair)
    solicited = pair.run(pair.host, "rdisc6", "-1", "eth0")
    out = solicited.stdout + solicited.stderr
    assert re.search(r"Stateful address conf\.\s*:\s*Yes", out), out
    assert re.search(r"Stateful other conf\.\s*:\s*Yes", out), out
    assert re.search(rf"Recursive DNS server\s*:\s*{R_GUA}\n", out), out
    assert re.search(r"DNS server lifetime\s*:\s*30 ", out), out
    assert re.search(r"DNS search list\s*:\s*svc\.example", out), out
    assert re.search(r"DNS search list lifetime\s*:\s*30 ", out), out
    assert re.search(r"Valid time\s*:\s*86400 ", out), out


def test_dnsmasq_answers_the_lab_names_over_the_link(pair: Pair) -> None:
    start_radvd(pair)
    start_dnsmasq(pair)
    pair.wait_addresses(pair.host, [str(H_GUA)])  # SLAAC from radvd: the LAN is on-link

    assert pair.dig(pair.host, "AAAA", "h1.svc.example") == str(H_GUA)
    assert pair.dig(pair.host, "A", "h1.svc.example") == str(H_DHCP4)
    assert pair.dig(pair.host, "AAAA", "r1.svc.example") == str(R_GUA)
    assert pair.dig(pair.host, "-x", str(H_GUA)) == "h1.svc.example."
    # local=/svc.example/: an unknown lab name is NXDOMAIN at once, never forwarded.
    status = pair.run(
        pair.host, "dig", "+time=2", "+tries=1", f"@{R_GUA}", "AAAA", "nope.svc.example"
    ).stdout
    assert "status: NXDOMAIN" in status, status


class _FileSpawner:
    """runner.reload's door into a namespace node: its files are the host's."""

    def write(self, files: dict[Path, str]) -> None:
        for path, content in files.items():
            path.write_text(content)


def test_dnsmasq_takes_new_names_and_reservations_on_sighup(pair: Pair) -> None:
    """What the backend's refresh does for a launched node: rewrite render(), SIGHUP,
    and wait until dnsmasq has read both files. A node launched right after asks for
    its lease at once (CI: a launched host got a pool address, not its reservation)."""
    full = router_node()
    assert full.dns is not None
    h2 = DnsRecord("h2.svc.example", ipaddress.ip_address("2001:db8:5::2"))
    before = replace(full, lans=(lan_service(hosts=()),))  # h1 not reserved yet, no h2
    dnsmasq = pair.service(Dnsmasq, before)
    pid = pair.start(dnsmasq, pair.router)
    pair.wait_ready(dnsmasq, pid)
    assert pair.dig(pair.router, "AAAA", "h2.svc.example") == ""
    journal = Journal.open(pair.state / "journal.sqlite")
    journal.record("process", "r1/dnsmasq", "r1", pid=pid, start=processes.start_time(pid))

    after = replace(full, dns=replace(full.dns, records=(*full.dns.records, h2)))
    svc = Dnsmasq(pair.plan, after, pair.state / "r1")
    told = runner.reload(journal, after, svc, _FileSpawner())
    journal.close()
    assert told is not None and told.pid == pid
    runner.wait_reloaded([told])
    log = dnsmasq.log.read_text()[told.log_offset :]
    assert f"read {dnsmasq.dir / 'dhcp-hosts'}\n" in log, log
    # no wait: once wait_reloaded returns, the name is served
    assert pair.dig(pair.router, "AAAA", "h2.svc.example") == "2001:db8:5::2"
    # The reservation came with the same SIGHUP: h1 gets .42, outside the dynamic pool.
    pair.host_up()
    dhcpcd = pair.service(Dhcpcd, host_node(dad=False))
    pair.start(dhcpcd, pair.host, [*dhcpcd.argv()[:-1], "-4", "eth0"])
    pair.wait_addresses(pair.host, [str(H_DHCP4)])


def test_dhcpcd_confined_gets_the_reserved_leases(pair: Pair) -> None:
    start_radvd(pair)
    dnsmasq = start_dnsmasq(pair)
    dhcpcd = pair.service(Dhcpcd, host_node(dad=False))
    assert isinstance(dhcpcd, Dhcpcd)
    pid = pair.start(dhcpcd, pair.host)
    pair.wait_ready(dhcpcd, pid)

    pair.wait_addresses(pair.host, [str(H_DHCP4), str(H_DHCP6), str(H_GUA)])

    lease_file = dnsmasq.dir / "dnsmasq.leases"
    # dnsmasq writes its lease file after it answered: the address may come first.
    wait_for(lambda: f"{H_DHCP6} " in lease_file.read_text(), "dnsmasq wrote the leases")
    leases = lease_file.read_text()
    assert f"{H_MAC} {H_DHCP4} h1 " in leases, leases
    assert f"{H_DHCP6} " in leases and "00:03:00:01:00:16:3e:00:00:02" in leases, leases
    run_dir = dhcpcd.private_mounts()["/run/dhcpcd"]
    db_dir = dhcpcd.private_mounts()["/var/lib/dhcpcd"]
    assert (run_dir / "eth0.pid").read_text().strip() == str(pid)  # its /run/dhcpcd is ours
    assert (db_dir / "eth0.lease").exists()
    assert (db_dir / "duid").read_text() == "00:03:00:01:00:16:3e:00:00:02\n"
    # The hook runs after the address is set: wait for its lines.
    hook_log = dhcpcd.dir / "hook.log"
    wait_for(lambda: {"BOUND", "BOUND6"} <= _reasons(hook_log), "hook logged BOUND and BOUND6")
    # noipv6rs: the kernel still takes the RAs (SLAAC above, default route)
    accept_ra = pair.run(pair.host, "sysctl", "-n", "net.ipv6.conf.eth0.accept_ra").stdout
    assert accept_ra.strip() == "1"
    routes = pair.run(pair.host, "ip", "-6", "route", "show", "default").stdout
    assert f"via {R_LL}" in routes and "proto ra" in routes, routes


def test_rdnssd_writes_the_resolver_from_the_ra(pair: Pair) -> None:
    radvd = pair.service(Radvd, router_node())
    radvd_pid = pair.start(radvd, pair.router)
    rdnssd = pair.service(Rdnssd, host_node())
    resolv = pair.state / "resolv.conf"  # never the real /etc/resolv.conf
    argv = rdnssd.argv()
    argv[argv.index("-r") + 1] = str(resolv)
    pid = pair.start(rdnssd, pair.host, argv)
    pair.wait_ready(rdnssd, pid)
    pair.host_up()  # after rdnssd: it only learns from RAs that come later
    pair.wait_ready(radvd, radvd_pid)

    wanted = {"search svc.example", f"nameserver {R_GUA}"}
    wait_for(lambda: wanted <= set(_read(resolv).splitlines()), "resolv.conf from the RA")
    assert (rdnssd.dir / "rdnssd.pid").read_text().strip() == str(pid)


def test_httpd_answers_over_ipv6_and_ipv4(pair: Pair) -> None:
    pair.host_up()
    _ip("-n", pair.host, "addr", "add", f"{H_DHCP4}/24", "dev", "eth0")
    httpd = pair.service(Httpd, host_node())
    pair.wait_ready(httpd, pair.start(httpd, pair.host))

    for url in (f"http://[{H_LL}%25lan0]/", f"http://{H_DHCP4}/"):
        page = pair.run(pair.router, "curl", "-sS", "--max-time", "5", url)
        assert page.returncode == 0, page.stderr
        assert "This is node <b>h1</b>" in page.stdout
    node_txt = pair.run(pair.router, "curl", "-sS", f"http://{H_DHCP4}/node.txt").stdout
    assert node_txt.splitlines()[0] == "node h1"
    wait_for(lambda: "node.txt" in _read(httpd.dir / "access.log"), "access log line")


def _reasons(hook_log: Path) -> set[str]:
    return {line.split()[1] for line in _read(hook_log).splitlines() if len(line.split()) > 1}


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
