"""A "home LAN" the external-network tests build for themselves (issue 16).

Never the machine's real interfaces: a bridge in the host namespace with a name the
test owns (`pnext...`), and a namespace on it running a home router: radvd with
2001:db8:ebbd:2080::/64 and dnsmasq as DHCPv4 server for 192.0.2.0/24. The bridge
has IPv6 off (it is a switch: the host takes no address or default route from the
home router's RA), and so has the home router's port on it. `close()` removes all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOME_PREFIX = "2001:db8:ebbd:2080::/64"
HOME_GUA = "2001:db8:ebbd:2080::1"
HOME_MAC = "02:00:5e:0e:00:01"
HOME_NS = "pnext-home"


def sh(*argv: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    proc = subprocess.run(full, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(full)}: {proc.returncode}\n{proc.stderr}")
    return proc


def write_sysctl(key: str, value: int, ns: str | None = None) -> None:
    sh("sysctl", "-qw", f"{key}={value}", ns=ns)


RADVD_CONF = """interface eth0 {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
{prefixes}}};
"""
RADVD_PREFIX = """    prefix {prefix} {{
        AdvOnLink on;
        AdvAutonomous on;
        AdvValidLifetime {valid};
        AdvPreferredLifetime {preferred};
    }};
"""


@dataclass
class HomeLan:
    """The test's home LAN: `bridge` in the host namespace, the home router in `ns`.

    `parent` is how the lab joins it: the bridge itself, or (macvlan) the host end
    of a veth pair whose other end is a port of the bridge... for macvlan tests the
    home router hangs a macvlan of its own on `parent` instead."""

    bridge: str = "pnextbr0"
    ns: str = HOME_NS
    prefix: str = HOME_PREFIX
    macvlan_parent: str | None = None  # home router on a macvlan of this veth end
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pnext-home.")))
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def open(self) -> HomeLan:
        sh("ip", "netns", "add", self.ns)
        write_sysctl("net.ipv6.conf.all.forwarding", 1, self.ns)
        write_sysctl("net.ipv6.conf.default.accept_dad", 0, self.ns)
        if self.macvlan_parent is None:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            write_sysctl(f"net.ipv6.conf.{self.bridge}.disable_ipv6", 1)
            sh("ip", "link", "set", self.bridge, "up")
            sh("ip", "link", "add", "pnexth0", "type", "veth", "peer", "name", "eth0",
               "netns", self.ns)  # fmt: skip
            write_sysctl("net.ipv6.conf.pnexth0.disable_ipv6", 1)
            sh("ip", "link", "set", "pnexth0", "master", self.bridge, "up")
        else:
            # A veth pair the test owns as the "NIC" (this kernel may lack dummy);
            # the home router is a macvlan of it, like the lab's nodes.
            sh("ip", "link", "add", self.macvlan_parent, "type", "veth", "peer", "name",
               self.macvlan_parent + "p")  # fmt: skip
            for end in (self.macvlan_parent, self.macvlan_parent + "p"):
                write_sysctl(f"net.ipv6.conf.{end}.disable_ipv6", 1)
                sh("ip", "link", "set", end, "up")
            sh("ip", "link", "add", "link", self.macvlan_parent, "name", "eth0", "netns",
               self.ns, "type", "macvlan", "mode", "bridge")  # fmt: skip
        sh("ip", "link", "set", "eth0", "address", HOME_MAC, ns=self.ns)
        sh("ip", "addr", "add", f"{HOME_GUA}/64", "dev", "eth0", ns=self.ns)
        sh("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0", ns=self.ns)
        sh("ip", "link", "set", "lo", "up", ns=self.ns)
        sh("ip", "link", "set", "eth0", "up", ns=self.ns)
        self.start_radvd(self.prefix)
        self.start_dnsmasq()
        return self

    # -- the home router's daemons -------------------------------------------------
    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[str]:
        out = open(self.workdir / log, "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv], stdout=out, stderr=out, text=True
        )
        self.procs.append(proc)
        return proc

    def start_radvd(self, prefix: str, old: str | None = None) -> None:
        """radvd announcing `prefix` (and `old` deprecated, for a renumbering)."""
        prefixes = RADVD_PREFIX.format(prefix=prefix, valid=600, preferred=300)
        if old is not None:
            prefixes += RADVD_PREFIX.format(prefix=old, valid=120, preferred=0)
        text = RADVD_CONF.format(prefixes=prefixes)
        conf = self.workdir / "radvd.conf"
        conf.write_text(text)
        self.stop("radvd")
        self.radvd = self._spawn(
            ["radvd", "-n", "-C", str(conf), "-p", str(self.workdir / "radvd.pid"), "-m",
             "stderr"], "radvd.log")  # fmt: skip

    def start_dnsmasq(self) -> None:
        self.dnsmasq = self._spawn(
            [
                "dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
                "--bind-interfaces", "--dhcp-range=192.0.2.100,192.0.2.200,255.255.255.0,1h",
                f"--dhcp-leasefile={self.workdir}/leases", f"--pid-file={self.workdir}/dm.pid",
                "--log-facility=-", "--log-dhcp", "--user=root",
            ],
            "dnsmasq.log",
        )  # fmt: skip

    def stop(self, which: str) -> None:
        proc = getattr(self, which, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            if proc.poll() is None:
                proc.kill()
        sh("ip", "netns", "del", self.ns, check=False)
        if self.macvlan_parent is None:
            sh("ip", "link", "del", "pnexth0", check=False)
            sh("ip", "link", "del", self.bridge, check=False)
        else:
            sh("ip", "link", "del", self.macvlan_parent, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- looking ------------------------------------------------------------------
    def ping(self, address: str, count: int = 1, deadline: float = 10.0) -> bool:
        """A ping from the home router answered within `deadline` seconds."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            proc = sh("ping", "-c", str(count), "-W", "1", address, ns=self.ns, check=False)
            if proc.returncode == 0:
                return True
        return False


def bridge_state(bridge: str) -> dict[str, object]:
    """What `down` must leave as it found it: ports, addresses, the bridge's sysctls."""
    base = Path("/sys/class/net") / bridge
    ports = sorted(os.listdir(base / "brif"))
    addrs = sh("ip", "-j", "addr", "show", "dev", bridge).stdout
    sysctls = {}
    for root in (f"/proc/sys/net/ipv6/conf/{bridge}", f"/proc/sys/net/ipv4/conf/{bridge}"):
        for name in sorted(os.listdir(root)):
            with contextlib.suppress(OSError):
                sysctls[f"{root}/{name}"] = Path(root, name).read_text().strip()
    bridge_attrs = {}
    for name in sorted(os.listdir(base / "bridge")):
        if name.endswith("_timer"):  # counting down, not a setting
            continue
        with contextlib.suppress(OSError):  # write-only: flush
            bridge_attrs[name] = (base / "bridge" / name).read_text().strip()
    return {
        "ports": ports,
        "addresses": addrs,
        "mtu": (base / "mtu").read_text().strip(),
        "sysctls": sysctls,
        "bridge": bridge_attrs,
    }
