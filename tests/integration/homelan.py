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

    @property
    def port(self) -> str:
        """The home router's port on the bridge (host side of its veth)."""
        return f"{self.bridge}h"

    def open(self) -> HomeLan:
        sh("ip", "netns", "add", self.ns)
        write_sysctl("net.ipv6.conf.all.forwarding", 1, self.ns)
        write_sysctl("net.ipv6.conf.default.accept_dad", 0, self.ns)
        if self.macvlan_parent is None:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            write_sysctl(f"net.ipv6.conf.{self.bridge}.disable_ipv6", 1)
            sh("ip", "link", "set", self.bridge, "up")
            sh("ip", "link", "add", self.port, "type", "veth", "peer", "name", "eth0",
               "netns", self.ns)  # fmt: skip
            write_sysctl(f"net.ipv6.conf.{self.port}.disable_ipv6", 1)
            sh("ip", "link", "set", self.port, "master", self.bridge, "up")
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
            sh("ip", "link", "del", self.port, check=False)
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
    """What `down` must leave as it found it: ports, addresses, the bridge's sysctls
    (of a bridge, or of the interface macvlans hang on)."""
    base = Path("/sys/class/net") / bridge
    ports = sorted(os.listdir(base / "brif")) if (base / "brif").is_dir() else []
    addrs = sh("ip", "-j", "addr", "show", "dev", bridge).stdout
    sysctls = {}
    for root in (f"/proc/sys/net/ipv6/conf/{bridge}", f"/proc/sys/net/ipv4/conf/{bridge}"):
        for name in sorted(os.listdir(root)):
            with contextlib.suppress(OSError):
                sysctls[f"{root}/{name}"] = Path(root, name).read_text().strip()
    bridge_attrs = {}
    for name in sorted(os.listdir(base / "bridge")) if (base / "bridge").is_dir() else []:
        if name.endswith("_timer"):  # counting down, not a setting
            continue
        with contextlib.suppress(OSError):  # write-only: flush
            bridge_attrs[name] = (base / "bridge" / name).read_text().strip()
    return {
        "ports": ports,
        "addresses": addrs,
        "mtu": (base / "mtu").read_text().strip(),
        "flags": (base / "flags").read_text().strip(),
        "address": (base / "address").read_text().strip(),
        "sysctls": sysctls,
        "bridge": bridge_attrs,
    }


# -- a capture in the home namespace ----------------------------------------------------
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
IPV6_EXTENSIONS = {0, 43, 44, 60}  # hop-by-hop, routing, fragment, destination options


def classify(frame: bytes) -> str | None:
    """What a frame is, among what the guards must keep off the LAN: ra, redirect,
    dhcpv6-reply, dhcpv4-reply, ripng, rip, babel, ospf; None for anything else."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x86DD and len(frame) >= 54:
        proto, offset = frame[20], 54
        while proto in IPV6_EXTENSIONS and len(frame) >= offset + 8:
            proto, offset = (
                frame[offset],
                offset + (8 if proto == 44 else 8 + 8 * frame[offset + 1]),
            )
        l4 = frame[offset:]
    elif ethertype == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        proto, l4 = frame[23], frame[14 + ihl :]
    else:
        return None
    if proto == 89:
        return "ospf"
    if proto == 58 and l4:
        return {134: "ra", 137: "redirect"}.get(l4[0])
    if proto == 17 and len(l4) >= 4:
        sport, dport = int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
        if sport == 547:
            return "dhcpv6-reply"
        if sport == 67:
            return "dhcpv4-reply"
        for port, name in ((521, "ripng"), (520, "rip"), (6696, "babel")):
            if port in (sport, dport):
                return name
    return None


@dataclass
class Capture:
    """Every frame that reaches the home router's eth0 from elsewhere, classified:
    (source MAC, kind) for what the guards are about. A raw packet socket opened in
    the home namespace, read by a thread until `stop()`."""

    ns: str = HOME_NS
    seen: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0

    def start(self) -> Capture:
        import socket
        import threading

        from palmnet.kernel import nsfs

        with nsfs.netns(f"/run/netns/{self.ns}"):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("eth0", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] == PACKET_OUTGOING:
                continue
            self.frames += 1
            kind = classify(frame)
            if kind is not None:
                self.seen.append((frame[6:12].hex(":"), kind))

    def stop(self) -> list[tuple[str, str]]:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
        return self.seen


def dhcp_probes(ns: str = HOME_NS) -> None:
    """A DHCPv4 DISCOVER and a DHCPv6 SOLICIT (IA_NA and IA_PD) from the home LAN, so
    that every DHCP server that hears them answers (the lab's must not be heard)."""
    import socket
    import struct

    from palmnet.kernel import nsfs

    mac = bytes.fromhex(HOME_MAC.replace(":", ""))
    with nsfs.netns(f"/run/netns/{ns}"):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with v4, v6:
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        v4.bind(("0.0.0.0", 68))
        discover = (
            struct.pack("!BBBBIHH", 1, 1, 6, 0, 0x0E0E0E0E, 0, 0x8000)
            + bytes(16)
            + mac
            + bytes(10 + 64 + 128)
            + bytes.fromhex("63825363")
            + bytes((53, 1, 1, 255))
        )
        v4.sendto(discover, ("255.255.255.255", 67))
        duid = struct.pack("!HH", 3, 1) + mac
        options = (
            struct.pack("!HH", 1, len(duid))
            + duid
            + struct.pack("!HHH", 8, 2, 0)
            + struct.pack("!HHIII", 3, 12, 1, 0, 0)
            + struct.pack("!HHIII", 25, 12, 1, 0, 0)
        )
        solicit = bytes((1, 0x0E, 0x0E, 0x0E)) + options
        v6.bind(("::", 546))
        with nsfs.netns(f"/run/netns/{ns}"):
            index = socket.if_nametoindex("eth0")
        v6.sendto(solicit, ("ff02::1:2", 547, 0, index))
