"""Start LXD without systemd, and give it a first configuration (`palmnet lxd init`).

Measured on Debian 12 with LXD 5.0.2 (reference/lxd-notes.md):
1. lxcfs on /var/lib/lxcfs first (without it containers see the host's
   /proc/meminfo), then `lxd --group lxd --logfile=...`, each in its own
   session in the background, logs under /var/log/lxd/;
   `lxd waitready` says when the daemon answers.
2. `lxd init --auto` fails on hosts whose IPv4 subnets it cannot probe (after
   ~97 s); a preseed works in 0.65 s: a pool named `default`, a bridge
   `lxdbr0` with no address at all (so no NAT, no LXD dnsmasq, and LXD sets
   disable_ipv6 on it: the host never takes an RA from it), and a default
   profile with a root disk and eth0 on that bridge, for plain `lxc launch`.
   palmnet's labs use neither the bridge nor the default profile: they bring
   their own, tagged with the lab.
   The pool is btrfs on a loop file (as interactive `lxd init` proposes) where the
   LXD can make one: a new instance is then a snapshot of its image, 0.2-0.3 s,
   where a `dir` pool unpacks the image's tarball for each one (3-4.5 s for the
   router image, measured here, a CPU-bound gzip and tar per node). Elsewhere
   (an LXD without btrfs-progs, or nested where no loop device can be had) the
   pool is `dir`.
3. An LXD that already has a storage pool or a managed network is never
   initialised again: `init` then only starts what is not running.
Installing the packages is not done here (scripts/lxd-setup.sh does it, with
the packages' own services kept from starting).
"""

from __future__ import annotations

import errno
import grp
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from palmnet.backends.lxd import client as lxdclient
from palmnet.errors import InputError, LabError

LXCFS_MOUNT = Path("/var/lib/lxcfs")
LOOP_CONTROL = Path("/dev/loop-control")  # a btrfs pool lives on a loop file
LOG_DIR = Path("/var/log/lxd")
START_TIMEOUT = 60.0

PRESEED = """\
config: {}
storage_pools:
- name: default
  driver: DRIVER
networks:
- name: lxdbr0
  type: bridge
  description: no address, no NAT, no DHCP (palmnet lxd init)
  config:
    ipv4.address: none
    ipv4.nat: "false"
    ipv6.address: none
    ipv6.nat: "false"
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
    eth0:
      name: eth0
      network: lxdbr0
      type: nic
"""

Report = Callable[[str], None]


@dataclass
class Status:
    installed: bool
    lxcfs: bool
    running: bool
    version: str = ""
    pools: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    instances: int = 0
    labs: list[str] = field(default_factory=list)


def _wait_mount(path: Path, timeout: float) -> bool:
    """Wait until `path` is a mount point, woken by mount table changes (POLLPRI on
    /proc/self/mountinfo), never by sleeping."""
    deadline = time.monotonic() + timeout
    with open("/proc/self/mountinfo", "rb") as f:
        poller = select.poll()
        poller.register(f.fileno(), select.POLLPRI | select.POLLERR)
        while not os.path.ismount(path):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
            f.seek(0)
            f.read()
    return True


def _spawn(argv: list[str], log: Path) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def _clear_dead_mount(path: Path, report: Report) -> None:
    """A FUSE mount whose daemon died (lxcfs killed with its session) answers every
    access with ENOTCONN, so nothing can use it and a new lxcfs cannot mount there;
    detach it (lazily: a process may still hold it open)."""
    try:
        os.lstat(path)
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            raise
        proc = subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"{path}: dead lxcfs mount, umount -l failed: {proc.stderr}") from e
        report(f"detached {path}: its lxcfs had died (ENOTCONN)")


def start_lxcfs(report: Report) -> None:
    _clear_dead_mount(LXCFS_MOUNT, report)
    if os.path.ismount(LXCFS_MOUNT):
        return
    exe = shutil.which("lxcfs")
    if exe is None:
        report("lxcfs not installed: containers will see the host's /proc/meminfo")
        return
    LXCFS_MOUNT.mkdir(parents=True, exist_ok=True)
    pid = _spawn([exe, str(LXCFS_MOUNT)], LOG_DIR / "lxcfs.log")
    if not _wait_mount(LXCFS_MOUNT, START_TIMEOUT):
        raise LabError(f"lxcfs (pid {pid}) did not mount {LXCFS_MOUNT}: see {LOG_DIR}/lxcfs.log")
    report(f"started lxcfs (pid {pid}) on {LXCFS_MOUNT}")


def _answers() -> bool:
    try:
        lxdclient.connect(require_pool=False)
    except InputError:
        return False
    return True


def start_lxd(report: Report) -> None:
    if _answers():
        return
    exe = shutil.which("lxd")
    if exe is None:
        raise InputError(
            "LXD is not installed: run scripts/lxd-setup.sh, or `apt-get install "
            "--no-install-recommends lxd lxd-client` with its services kept from starting"
        )
    argv = [exe, f"--logfile={LOG_DIR / 'lxd.log'}"]
    try:
        grp.getgrnam("lxd")
        argv[1:1] = ["--group", "lxd"]
    except KeyError:
        pass
    pid = _spawn(argv, LOG_DIR / "lxd.stderr.log")
    ready = subprocess.run(
        [exe, "waitready", f"--timeout={int(START_TIMEOUT)}"], capture_output=True, text=True
    )
    if ready.returncode != 0:
        raise LabError(
            f"lxd (pid {pid}) did not answer within {START_TIMEOUT:g} s: "
            f"{ready.stderr.strip()} (see {LOG_DIR}/lxd.log)"
        )
    report(f"started lxd (pid {pid}), log {LOG_DIR / 'lxd.log'}")


def managed_networks(lxd: lxdclient.Lxd) -> list[str]:
    return [n["name"] for n in lxd.get("networks", recursion=1) if n.get("managed")]


def init(report: Report) -> str:
    """Start lxcfs and lxd if they are not running; preseed a fresh LXD. Returns what
    was done, in one line."""
    start_lxcfs(report)
    start_lxd(report)
    lxd = lxdclient.connect(require_pool=False)
    pools, networks = lxd.pools(), managed_networks(lxd)
    if pools or networks:
        if not pools:
            raise InputError(
                f"LXD has networks ({', '.join(networks)}) but no storage pool: palmnet does "
                "not re-initialise it; add a pool yourself (`lxc storage create default dir`)"
            )
        return (
            f"LXD is already initialised (storage pools: {', '.join(pools)}; managed "
            f"networks: {', '.join(networks) or 'none'}): left as it is"
        )
    driver = pool_driver(lxd)
    proc = _preseed(driver)
    if proc.returncode != 0 and driver != "dir":
        report(f"a {driver} pool could not be made ({proc.stderr.strip()}): a dir pool instead")
        driver, proc = "dir", _preseed("dir")
    if proc.returncode != 0:
        raise LabError(f"lxd init --preseed failed: {proc.stderr.strip()}")
    return f"LXD initialised: {driver} pool `default`, bridge lxdbr0 without addresses, NAT or DHCP"


def pool_driver(lxd: lxdclient.Lxd) -> str:
    """btrfs where the daemon supports it and this machine has loop devices (LXD puts
    the pool on a loop file it sizes itself), else dir."""
    env = lxd.client.host_info.get("environment", {})
    names = {str(d.get("Name")) for d in env.get("storage_supported_drivers") or ()}
    return "btrfs" if "btrfs" in names and LOOP_CONTROL.exists() else "dir"


def _preseed(driver: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lxd") or "lxd"
    text = PRESEED.replace("DRIVER", driver)
    return subprocess.run([exe, "init", "--preseed"], input=text, capture_output=True, text=True)


def status() -> Status:
    from palmnet.backends.lxd import tags

    st = Status(
        installed=shutil.which("lxd") is not None,
        lxcfs=os.path.ismount(LXCFS_MOUNT),
        running=False,
    )
    try:
        lxd = lxdclient.connect(require_pool=False)
    except InputError:
        return st
    st.running = True
    st.version = str(lxd.client.host_info.get("environment", {}).get("server_version", ""))
    st.pools = lxd.pools()
    st.networks = managed_networks(lxd)
    instances = lxd.instances()
    st.instances = len(instances)
    st.labs = sorted({lab for i in instances if (lab := tags.lab_of(i))})
    return st
