"""Local LXD images without an image server: built here, or imported from a rootfs tarball.

An LXD image in split format is two files: a metadata tarball with
`metadata.yaml` at its root (`architecture`, `creation_date` in epoch
seconds, optional `properties`), and a rootfs tarball with the filesystem at
its root, made with `--numeric-owner` and without device nodes (LXD makes
/dev). `palmnet image import` writes the metadata for a user's rootfs, as
users do by hand, and imports both through the API.

Images palmnet builds (cached under /var/cache/palmnet/images and in LXD,
by alias; `--force` rebuilds):
- busybox: busybox-static and an inittab running an rcS that mounts /run and
  brings up lo (1 MB; LXD brings eth0 up and the kernel does SLAAC, no DHCP
  client inside). The host nodes' default.
- debian: debootstrap minbase of the configured Debian mirror, with systemd.
- router: debootstrap minbase plus radvd, dnsmasq, kea-dhcp6, dhcpcd, BIRD 2,
  nftables, rdnssd and iproute2, booted by busybox init (no systemd, so none of
  those packages' own services ever starts: palmnet starts them with the lab's
  configuration). The routers' default.
- docker: debootstrap minbase plus Debian's docker.io, booted by busybox init
  whose only service is dockerd (respawned if it dies): the base of nodes with a
  `docker:` key (backends/lxd/docker.py says which LXD keys it needs and why).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from palmnet.backends.lxd import tags
from palmnet.backends.lxd.client import Lxd
from palmnet.errors import InputError, LabError

CACHE = Path(os.environ.get("PALMNET_IMAGE_CACHE", "/var/cache/palmnet/images"))
BUILDS = ("busybox", "debian", "router", "docker")
SUITE = os.environ.get("PALMNET_DEBIAN_SUITE", "bookworm")
ROUTER_PACKAGES = (
    "busybox",
    "iproute2",
    "radvd",
    "dnsmasq-base",
    "kea-dhcp6-server",
    "dhcpcd-base",
    "bird2",
    "nftables",
    "rdnssd",
    "iputils-ping",
    "procps",
    # palmnet's own hooks (the PD client's, kea's route hook) and the web server run
    # inside the node with the image's Python and palmnet's few pure modules
    "python3",
    # what a user (and a test) reaches for inside a node: names and web pages
    "bind9-dnsutils",
    "curl",
)
DEBIAN_PACKAGES = ("systemd-sysv", "iproute2", "iputils-ping")
# dockerd and what it runs containers with (containerd, runc, iptables are docker.io's
# own dependencies); no Recommends (no apparmor: this kernel has none).
DOCKER_PACKAGES = ("busybox", "iproute2", "docker.io", "iputils-ping", "procps")
# What a rootfs does not need at run time (keeps launch fast: the dir pool
# copies and shifts every file of the image into each container).
PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)

Report = Callable[[str], None]


def alias_of(build: str) -> str:
    return f"palmnet-{build}"


def recipe(name: str) -> str:
    """What an image palmnet builds is made of, hashed: a changed recipe (packages,
    init scripts, suite) rebuilds the image instead of reusing a stale one."""
    parts = {
        "busybox": (INITTAB, RCS),
        "debian": (SUITE, *DEBIAN_PACKAGES),
        "router": (SUITE, INITTAB, RCS, *ROUTER_PACKAGES),
        "docker": (SUITE, DOCKER_INITTAB, RCS, CGROUPS, DOCKERD_RUN, DAEMON_JSON, *DOCKER_PACKAGES),
    }[name]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def cached_rootfs(name: str) -> Path:
    """Where the rootfs of an image palmnet builds is kept (per recipe)."""
    return CACHE / f"{name}-{recipe(name)}" / "rootfs.tar.gz"


def recipe_of(lxd: Lxd, alias: str) -> str | None:
    """The recipe an image in LXD was built from (None: not one of palmnet's builds)."""
    target = alias_target(lxd, alias)
    if target is None:
        return None
    return (lxd.get(f"images/{target}").get("properties") or {}).get(tags.RECIPE)


DEFAULT_HOST_IMAGE = alias_of("busybox")
DEFAULT_ROUTER_IMAGE = alias_of("router")
DEFAULT_DOCKER_IMAGE = alias_of("docker")


def lxd_architecture(machine: str | None = None) -> str:
    """LXD takes the kernel's names (x86_64, aarch64, armv7l, ...) and Debian's."""
    return machine or platform.machine()


def metadata_yaml(architecture: str, properties: dict[str, str], created: int | None = None) -> str:
    lines = [
        f"architecture: {architecture}",
        f"creation_date: {int(time.time()) if created is None else created}",
        "properties:",
    ]
    lines += [f"  {k}: {_yaml_str(v)}" for k, v in sorted(properties.items())]
    return "\n".join(lines) + "\n"


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def metadata_tarball(yaml_text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = yaml_text.encode()
        info = tarfile.TarInfo("metadata.yaml")
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- what LXD holds ------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageRow:
    aliases: tuple[str, ...]
    fingerprint: str
    description: str
    architecture: str
    size: int
    uploaded: str
    lab: str | None


def list_images(lxd: Lxd) -> list[ImageRow]:
    rows = []
    for img in lxd.get("images", recursion=1):
        props = img.get("properties") or {}
        rows.append(
            ImageRow(
                aliases=tuple(a["name"] for a in img.get("aliases") or ()),
                fingerprint=img["fingerprint"],
                description=props.get("description", ""),
                architecture=img.get("architecture", ""),
                size=int(img.get("size") or 0),
                uploaded=str(img.get("uploaded_at", ""))[:19],
                lab=props.get(tags.LAB) or None,
            )
        )
    return rows


def alias_target(lxd: Lxd, alias: str) -> str | None:
    try:
        return str(lxd.get(f"images/aliases/{alias}")["target"])
    except lxd.NotFound:
        return None


def set_alias(lxd: Lxd, alias: str, fingerprint: str, description: str = "") -> None:
    """Point `alias` at the image (moving it from an older one)."""
    if alias_target(lxd, alias) is not None:
        lxd.call("put", f"images/aliases/{alias}", alias, json={"target": fingerprint})
    else:
        lxd.call(
            "post",
            "images/aliases",
            alias,
            json={"name": alias, "target": fingerprint, "description": description},
        )


def import_split(lxd: Lxd, meta: bytes, rootfs: Path, alias: str, description: str = "") -> str:
    """Upload a split image (metadata tarball + rootfs tarball) and alias it."""
    import requests_toolbelt.multipart.encoder as enc

    with open(rootfs, "rb") as f:
        form = enc.MultipartEncoder(
            fields={
                "metadata": ("metadata", meta, "application/octet-stream"),
                "rootfs": ("rootfs", f, "application/octet-stream"),
            }
        )
        try:
            response = lxd.api.images.post(data=form, headers={"Content-Type": form.content_type})
        except lxd.APIError as exc:
            raise LabError(f"LXD refused the image {rootfs}: {exc}") from None
    from palmnet.backends.lxd.client import Pending

    result = lxd.wait(Pending(f"import {rootfs.name}", response.json()["operation"]))
    fingerprint = str(result["fingerprint"])
    set_alias(lxd, alias, fingerprint, description)
    return fingerprint


OPENWRT = "OpenWrt"
# Device nodes OpenWrt's procd and daemons open and LXD does not make by itself
# (what the community init.sh mknod's by hand): made by LXD before init runs.
OPENWRT_DEVICES = {
    "ppp": {"type": "unix-char", "path": "/dev/ppp", "major": "108", "minor": "0"},
    "tun": {"type": "unix-char", "path": "/dev/net/tun", "major": "10", "minor": "200"},
}


def is_openwrt_rootfs(rootfs: Path) -> bool:
    """Whether a rootfs tarball is OpenWrt's (it has /etc/openwrt_release)."""
    with tarfile.open(rootfs) as tar:
        for member in tar:
            if member.name.lstrip("./") == "etc/openwrt_release":
                return True
    return False


def image_os(lxd: Lxd, alias: str) -> str:
    target = alias_target(lxd, alias)
    if target is None:
        return ""
    return str((lxd.get(f"images/{target}").get("properties") or {}).get("os", ""))


def import_rootfs(
    lxd: Lxd,
    rootfs: Path,
    alias: str,
    architecture: str | None = None,
    description: str | None = None,
    properties: dict[str, str] | None = None,
) -> str:
    """`palmnet image import`: metadata.yaml (architecture, creation_date now) + rootfs."""
    if not rootfs.is_file():
        raise InputError(f"{rootfs}: no such file")
    if not tarfile.is_tarfile(rootfs):
        raise InputError(f"{rootfs}: not a tar archive (a rootfs tarball is needed)")
    props = {"description": description or f"{rootfs.name} (palmnet image import)"}
    if is_openwrt_rootfs(rootfs):
        props["os"] = OPENWRT
    props.update(properties or {})
    meta = metadata_tarball(metadata_yaml(lxd_architecture(architecture), props))
    return import_split(lxd, meta, rootfs, alias, props["description"])


# -- building ----------------------------------------------------------------------------
INITTAB = """\
::sysinit:/etc/init.d/rcS
::shutdown:/bin/umount -a -r
"""

RCS = """\
#!/bin/sh
# palmnet image: what LXC does not set up. LXD brings eth0 up; the kernel does SLAAC.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run 2>/dev/null
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp 2>/dev/null
mkdir -p /run/palmnet /var/run /var/log
ip link set lo up
"""


DOCKER_INITTAB = """\
::sysinit:/etc/init.d/rcS
::respawn:/usr/local/sbin/palmnet-dockerd
::shutdown:/bin/umount -a -r
"""

# LXD 5.0 mounts no cgroup hierarchy in an unprivileged container on this cgroup v1
# host (`lxc.mount.auto = cgroup:mixed` leaves /sys/fs/cgroup empty), and runc then
# refuses every container: "runc create failed: no cgroup mount found in mountinfo".
# The container's own cgroup namespace lets its root mount them: one per hierarchy
# /proc/self/cgroup lists (cgroup2 alone on a pure v2 host).
CGROUPS = """\
#!/bin/sh
grep -q ' /sys/fs/cgroup' /proc/mounts && exit 0
if [ "$(grep -vc '^0::' /proc/self/cgroup)" = 0 ]; then
  exec mount -t cgroup2 cgroup2 /sys/fs/cgroup
fi
mount -t tmpfs -o mode=0755,nosuid,nodev,noexec cgroup /sys/fs/cgroup
for h in $(grep -v '^0::' /proc/self/cgroup | cut -d: -f2); do
  dir=${h#name=}
  mkdir -p "/sys/fs/cgroup/$dir"
  case $h in
    name=*) mount -t cgroup -o "none,$h" cgroup "/sys/fs/cgroup/$dir" ;;
    *) mount -t cgroup -o "$h" cgroup "/sys/fs/cgroup/$dir" ;;
  esac
done
"""

DOCKERD_RUN = """\
#!/bin/sh
# palmnet docker image: dockerd is the one service this node's init starts (respawned).
exec /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1
"""

# The image's daemon.json: Docker's defaults (userland proxy on, no ip6tables), but
# docker0 and user networks on documentation prefixes instead of 172.17.0.0/16 (they
# stay inside the node), and overlay2 whatever the LXD pool is: on a btrfs pool dockerd
# picks its btrfs driver, whose layers are subvolumes; a node published and copied
# (`publish`, `launch`) gets them back as plain folders, and every `docker run` there
# failed ("Failed to create btrfs snapshot: invalid argument"). overlay2 layers are
# plain folders anyway. backends/lxd/docker.py writes a node's own from the same.
DOCKER_DAEMON: dict[str, object] = {
    "bip": "198.51.100.1/24",
    "default-address-pools": [{"base": "203.0.113.0/24", "size": 28}],
    "log-driver": "json-file",
    "storage-driver": "overlay2",
    "userland-proxy": True,
}
DAEMON_JSON = json.dumps(DOCKER_DAEMON, indent=2, sort_keys=True) + "\n"


def _add_dockerd(root: Path) -> None:
    """busybox init's inittab and dockerd's wrapper and config into a docker rootfs."""
    (root / "etc/inittab").write_text(DOCKER_INITTAB)
    with (root / "etc/init.d/rcS").open("a") as rcs:
        rcs.write("/usr/local/sbin/palmnet-cgroups\n")
    cgroups = root / "usr/local/sbin/palmnet-cgroups"
    cgroups.parent.mkdir(parents=True, exist_ok=True)
    cgroups.write_text(CGROUPS)
    cgroups.chmod(0o755)
    run_script = root / "usr/local/sbin/palmnet-dockerd"
    run_script.parent.mkdir(parents=True, exist_ok=True)
    run_script.write_text(DOCKERD_RUN)
    run_script.chmod(0o755)
    (root / "etc/docker").mkdir(parents=True, exist_ok=True)
    (root / "etc/docker/daemon.json").write_text(DAEMON_JSON)


def _is_static_elf(path: Path) -> bool:
    """No PT_INTERP program header: needs no dynamic loader in the rootfs."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only; else fetch the package
        return False
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[32:40], order)
    phentsize = int.from_bytes(data[54:56], order)
    phnum = int.from_bytes(data[56:58], order)
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off : off + 4], order) == 3:
            return False
    return True


def static_busybox(work: Path) -> Path:
    """A static busybox: the host's if it is one, else from Debian's busybox-static
    package, downloaded and unpacked here (not installed on the host)."""
    host = Path("/bin/busybox")
    if _is_static_elf(host):
        return host
    work.mkdir(parents=True, exist_ok=True)
    run(["apt-get", "download", "busybox-static"], cwd=work)
    deb = next(work.glob("busybox-static_*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(work / "pkg")])
    return work / "pkg" / "bin" / "busybox"


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise LabError(f"{' '.join(argv[:3])} failed: " + " | ".join(tail))
    return proc


def _common_files(root: Path, init: bool) -> None:
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/init.d",
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "root",
        "var/log",
        "var/run",
        "var/lib",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    if init:
        (root / "etc/inittab").write_text(INITTAB)
        rcs = root / "etc/init.d/rcS"
        rcs.write_text(RCS)
        rcs.chmod(0o755)
    for name in ("hostname", "machine-id"):
        with contextlib.suppress(FileNotFoundError):
            (root / "etc" / name).unlink()
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")


def build_busybox_root(root: Path, work: Path) -> None:
    busybox = static_busybox(work)
    _common_files(root, init=True)
    shutil.copy2(busybox, root / "bin/busybox")
    run(["chroot", str(root), "/bin/busybox", "--install", "-s"])
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/shadow").chmod(0o600)


def debian_mirror() -> str:
    """The Debian mirror apt uses here (PALMNET_DEBIAN_MIRROR overrides it)."""
    if os.environ.get("PALMNET_DEBIAN_MIRROR"):
        return os.environ["PALMNET_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for src in sources:
        with contextlib.suppress(OSError):
            for line in src.read_text().splitlines():
                words = line.split()
                if not words or words[0].startswith("#"):
                    continue
                urls = [w for w in words if w.startswith(("http://", "https://"))]
                if words[0] in ("URIs:", "deb") and urls and "security" not in urls[0]:
                    return urls[0]
    return "http://deb.debian.org/debian"


def ensure_debootstrap(report: Report) -> str:
    exe = shutil.which("debootstrap")
    if exe:
        return exe
    report("installing debootstrap (apt-get, --no-install-recommends)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-o",
            "DPkg::Lock::Timeout=300",
            "debootstrap",
        ],
        env=env,
    )
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def build_debian_root(
    root: Path, packages: tuple[str, ...], busybox_init: bool, report: Report
) -> None:
    exe = ensure_debootstrap(report)
    mirror = debian_mirror()
    report(f"debootstrap --variant=minbase {SUITE} from {mirror} (+ {', '.join(packages)})")
    run([exe, "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(root), mirror])
    for rel in PRUNE:
        target = root / rel
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
    _common_files(root, init=busybox_init)
    if busybox_init:
        init = root / "sbin/init"
        init.unlink(missing_ok=True)
        init.symlink_to("/bin/busybox")
    # Nothing of the host's: no machine id (systemd makes one at first boot), no hostname.
    (root / "etc/machine-id").touch()


def pack_rootfs(root: Path, out: Path) -> None:
    """Filesystem at the tarball's root, numeric owners, no device nodes."""
    run(["tar", "--numeric-owner", "--exclude=./dev/*", "-czf", str(out), "-C", str(root), "."])


def build(lxd: Lxd, name: str, report: Report, force: bool = False) -> str:
    """Build (or take from the cache) image `name` and import it as palmnet-NAME, one
    build of an image at a time on this machine (`up` and `image build` alike)."""
    if name not in BUILDS:
        raise InputError(f"unknown image '{name}' (buildable: {', '.join(BUILDS)})")
    with build_lock(name, report):
        return _build(lxd, name, report, force)


def _build(lxd: Lxd, name: str, report: Report, force: bool) -> str:
    alias = alias_of(name)
    if not force and recipe_of(lxd, alias) == recipe(name):
        report(f"image {alias} is already in LXD (--force rebuilds it)")
        return alias
    rootfs = cached_rootfs(name)
    cache = rootfs.parent
    if force or not rootfs.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
            root = Path(tmp) / "rootfs"
            root.mkdir()
            started = time.monotonic()
            if name == "busybox":
                build_busybox_root(root, Path(tmp) / "pkg")
            elif name == "debian":
                build_debian_root(root, DEBIAN_PACKAGES, busybox_init=False, report=report)
            elif name == "docker":
                build_debian_root(root, DOCKER_PACKAGES, busybox_init=True, report=report)
                _add_dockerd(root)
            else:
                build_debian_root(root, ROUTER_PACKAGES, busybox_init=True, report=report)
            partial = cache / "rootfs.tar.gz.partial"
            pack_rootfs(root, partial)
            partial.replace(rootfs)
            report(f"built {name} rootfs in {time.monotonic() - started:.1f} s: {rootfs}")
    description = {
        "busybox": "busybox-static (palmnet)",
        "debian": f"Debian {SUITE} minbase with systemd (palmnet)",
        "router": f"Debian {SUITE} minbase + radvd dnsmasq kea dhcpcd bird2 nftables (palmnet)",
        "docker": f"Debian {SUITE} minbase + docker.io, init starts dockerd only (palmnet)",
    }[name]
    props = {
        "description": description,
        "os": "busybox" if name == "busybox" else "debian",
        tags.BUILT: name,
        tags.RECIPE: recipe(name),
    }
    meta = metadata_tarball(metadata_yaml(lxd_architecture(), props))
    old = alias_target(lxd, alias)
    fingerprint = import_split(lxd, meta, rootfs, alias, description)
    if old and old != fingerprint:
        with contextlib.suppress(Exception):
            lxd.wait(lxd.call("delete", f"images/{old}", f"image {old[:12]}"))
    report(f"image {alias} ({fingerprint[:12]}) imported")
    return alias


@contextlib.contextmanager
def build_lock(name: str, report: Report) -> Iterator[None]:
    """Two labs brought up at once on a fresh machine would otherwise both debootstrap
    the image and import it twice; the second waits, then finds it built (`_build`
    looks at LXD's recipe first)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(f"waiting for another palmnet that is building the {name} image")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(lxd: Lxd, alias: str, report: Report) -> None:
    """Make sure the image a node needs is there: palmnet's own are built on demand,
    anything else must exist already."""
    for name in BUILDS:
        if alias == alias_of(name):
            if recipe_of(lxd, alias) != recipe(name):
                build(lxd, name, report)  # under its lock, which looks again
            return
    if alias_target(lxd, alias) is not None:
        return
    raise InputError(
        f"no LXD image with alias '{alias}' (import one with `palmnet image import "
        f"ROOTFS.tar.gz --alias {alias}` or build one with `palmnet image build`)"
    )


def delete_image(lxd: Lxd, fingerprint: str) -> None:
    lxd.wait(lxd.call("delete", f"images/{fingerprint}", f"image {fingerprint[:12]}"))
