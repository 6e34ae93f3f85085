"""Docker inside an LXD node: what the container needs, and the node's containers.

A node with a `docker:` key starts from `palmnet-docker` (Debian's docker.io,
busybox init whose only service is dockerd; images.py) with these LXD keys:

- `security.nesting=true`: LXD lets the container mount its own proc and sysfs
  (it adds unobstructed /dev/.lxc/proc and /dev/.lxc/sys so the kernel's
  "mount too revealing" check passes) and, on AppArmor hosts, loads the nesting
  profile that allows the mounts runc makes for every container. Measured here:
  this kernel has no AppArmor and `docker run` also worked without it; on
  Ubuntu/Debian hosts with AppArmor it does not.
- `security.syscalls.intercept.mknod=true`: overlay2 whiteouts (a deleted file in
  a layer is a 0/0 character device) need mknod, which an unprivileged
  container may not do on kernels before 5.8; LXD makes the device for it.
- `security.syscalls.intercept.setxattr=true`: overlay2 marks opaque directories
  with `trusted.overlay.*` xattrs, which a user namespace may not set on kernels
  without unprivileged overlayfs (before 5.11); LXD sets them for it. Measured
  here (kernel 6.18, dir pool): dockerd picks overlay2 ("running in a user
  namespace", native diff off) and `docker build` with a `RUN rm` layer works
  without either interception; they cost nothing where they are not needed.

What this LXD does NOT do for Docker, said instead of hidden: with cgroup v1 on
the host, `lxc.mount.auto = cgroup:mixed` leaves /sys/fs/cgroup empty in an
unprivileged container, and every `docker run` then fails with "runc create
failed: no cgroup mount found in mountinfo". The image's rcS mounts the
hierarchies itself (its cgroup namespace allows it).

The containers: when the node starts, palmnet waits for dockerd's socket, gives
dockerd the node's daemon.json (restarting it if that changed), makes the
images the node needs from palmnet's cache (mounted read-only at
/srv/palmnet/images: `docker import`, or `docker build` for a Dockerfile), runs
every container afresh (`docker rm -f` then `docker run -d`, so the file's
settings always win, also in a copy made from a published node), and waits
until each published TCP port listens in its container.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import time
from pathlib import Path, PurePosixPath
from typing import Any

from palmnet.backends.lxd import dockerimages, images, inside
from palmnet.backends.lxd.client import Lxd
from palmnet.backends.lxd.dockerd import api_get, ping
from palmnet.errors import LabError
from palmnet.plan.model import DockerPlan, DockerRun, NodePlan

LXD_KEYS = {
    "security.nesting": "true",
    "security.syscalls.intercept.mknod": "true",
    "security.syscalls.intercept.setxattr": "true",
}
IMAGES = "/srv/palmnet/images"  # palmnet's built images, read-only, in the node
VOLUMES = "/srv/palmnet/volumes"  # the lab file's folders, read-only, in the node
SOCKET = "/run/docker.sock"
READY_TIMEOUT = 60.0
POLL = 0.05
# The node's own IPv6 network for containers (docker_real_source): a ULA /64,
# private to the node (reached only through its DNAT), the same in every node.
REAL_SOURCE_V6 = "fd00:d0c::/64"


def daemon_json(docker: DockerPlan) -> str:
    """dockerd's config. Default: Docker's own (userland proxy): a client's connection
    to a published port over IPv6 is accepted by docker-proxy in the node and made
    again from the node to the container, so the application logs docker0's address.
    `real_source`: no proxy, ip6tables DNAT (experimental in 20.10), an IPv6 bridge
    network: the packet reaches the container with the client's own address."""
    config = dict(images.DOCKER_DAEMON)
    if docker.real_source:
        config.update(
            {
                "userland-proxy": False,
                "ipv6": True,
                "fixed-cidr-v6": REAL_SOURCE_V6,
                "ip6tables": True,
                "experimental": True,
            }
        )
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def volume_dir(source: str) -> str:
    return f"{VOLUMES}/{hashlib.sha256(source.encode()).hexdigest()[:12]}"


def devices(node: NodePlan) -> dict[str, dict[str, str]]:
    """LXD disk devices: palmnet's image cache and every volume folder, read-only."""
    if node.docker is None:
        return {}
    out = {
        "palmnet-images": {
            "type": "disk",
            "source": str(dockerimages.CACHE),
            "path": IMAGES,
            "readonly": "true",
        }
    }
    for run in node.docker.containers:
        for vol in run.volumes:
            key = "dkvol-" + volume_dir(vol.source).rsplit("/", 1)[-1]
            out[key] = {"type": "disk", "source": vol.source, "path": volume_dir(vol.source)}
            out[key]["readonly"] = "true"
    return out


def prepare_cache() -> None:
    dockerimages.CACHE.mkdir(parents=True, exist_ok=True)
    dockerimages.CACHE.chmod(0o755)  # read by the nodes' unprivileged root


def config(node: NodePlan) -> dict[str, str]:
    """The LXD keys above; with `real_source`, dockerd turns IPv6 forwarding on in the
    node, so its NICs keep taking RAs (accept_ra 2) and its SLAAC address stays."""
    if node.docker is None:
        return {}
    out = dict(LXD_KEYS)
    if node.docker.real_source:
        for iface in node.veths:
            out[f"linux.sysctl.net.ipv6.conf.{iface.name}.accept_ra"] = "2"
    return out


# -- in the running node -----------------------------------------------------------------
def _wait(what: str, test: Any, timeout: float, tail: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            detail = tail() if tail else ""
            raise LabError(f"{what} not after {timeout:g} s{': ' + detail if detail else ''}")
        time.sleep(POLL)  # poll: dockerd and a container's listener give no notification


RUN_TRIES = 3
NAME_IN_USE = "is already in use by container"


class NodeDocker:
    """A running docker node's dockerd, reached through LXD's exec."""

    def __init__(self, lxd: Lxd, node: NodePlan, instance: str, init: int) -> None:
        self.lxd = lxd
        self.node = node
        self.instance = instance
        self.init = init

    def docker(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        try:
            proc = inside.run(self.lxd, self.instance, ["docker", *argv], timeout=timeout)
        except LabError as exc:
            if "command not found" not in str(exc):
                raise
            # LXD reports an exit code of 127 as "Command not found": here it is the
            # container's command that docker could not find in its image.
            raise LabError(
                f"node {self.node.name}: `docker {shlex.join(argv)}` exited 127 (the "
                f"container's command is not in its image?): {exc}"
            ) from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise LabError(
                f"node {self.node.name}: `docker {shlex.join(argv)}` exited "
                f"{proc.returncode}: {' | '.join(detail)}"
            )
        return proc.stdout

    def log_tail(self) -> str:
        path = f"/proc/{self.init}/root/var/log/dockerd.log"
        with contextlib.suppress(OSError):
            lines = Path(path).read_text().splitlines()
            return " | ".join(ln[-200:] for ln in lines[-3:])
        return ""

    def wait_daemon(self) -> None:
        _wait(
            f"node {self.node.name}: dockerd answering on {SOCKET}",
            lambda: ping(self.init, SOCKET),
            READY_TIMEOUT,
            self.log_tail,
        )

    def configure(self) -> None:
        """daemon.json as the plan wants it; dockerd restarted (init respawns it) if it
        had another."""
        assert self.node.docker is not None
        wanted = daemon_json(self.node.docker)
        current = ""
        with contextlib.suppress(OSError):
            current = Path(f"/proc/{self.init}/root/etc/docker/daemon.json").read_text()
        self.wait_daemon()
        if current == wanted:
            return
        config = PurePosixPath("/etc/docker/daemon.json")
        inside.push_files(self.lxd, self.instance, {config: (wanted, 0o644)})
        old = Path(f"/proc/{self.init}/root/run/docker.pid").read_text().strip()
        inside.check(self.lxd, self.instance, ["kill", old])
        _wait(
            f"node {self.node.name}: dockerd gone after SIGTERM",
            lambda: inside.host_pid(self.init, int(old)) is None,
            READY_TIMEOUT,
        )
        self.wait_daemon()

    def ensure_image(self, name: str) -> None:
        image = dockerimages.lookup(name)
        if image is None:
            raise LabError(f"node {self.node.name}: no docker image {name} built on this machine")
        found = api_get(self.init, SOCKET, f"/images/{_tagged(name)}/json")
        label = ((found or {}).get("Config") or {}).get("Labels") or {}
        if label.get("palmnet.recipe") == image.recipe:
            return
        folder = f"{IMAGES}/{image.folder.name}"
        if image.kind == "dockerfile":
            assert image.base is not None
            self.ensure_image(image.base)
            self.docker(
                "build", "-q", "--label", f"palmnet.recipe={image.recipe}", "-t", _tagged(name),
                f"{folder}/context",
                timeout=300,
            )  # fmt: skip
            return
        changes = [f"LABEL palmnet.recipe={image.recipe}"]
        if image.cmd:
            changes.append("CMD " + json.dumps(image.cmd))
        if image.workdir:
            changes.append(f"WORKDIR {image.workdir}")
        args = [a for c in changes for a in ("--change", c)]
        self.docker("import", *args, f"{folder}/rootfs.tar.gz", _tagged(name), timeout=300)

    def run(self, run: DockerRun) -> None:
        """The container afresh: removed (whatever a published image or a restart left),
        then run with the plan's settings."""
        # unless-stopped: dockerd itself runs it again when the node boots outside palmnet
        # (`lxc restart`, a copy launched by hand from a published image)
        argv = ["run", "-d", "--name", run.name, "--restart", "unless-stopped"]
        argv += ["--label", "palmnet.node=" + self.node.name]
        for port in run.ports:
            argv += ["-p", port.docker_arg()]
        for vol in run.volumes:
            argv += ["-v", f"{volume_dir(vol.source)}:{vol.target}:ro"]
        argv += [_tagged(run.image), *run.command]
        for attempt in range(RUN_TRIES):
            self.docker("rm", "-f", run.name, check=False)
            try:
                self.docker(*argv)
                return
            except LabError as exc:
                # dockerd may still hold the name right after `rm -f` returned (moby
                # issue 37698, open: "Possible race in docker rm leads to spurious
                # name conflict"; seen once in CI on a copy booted from a published
                # node): the name is removed again and the run tried again.
                if NAME_IN_USE not in str(exc) or attempt == RUN_TRIES - 1:
                    raise

    def wait_listening(self, run: DockerRun) -> None:
        """Each published TCP port listens inside the container (its own netns, read
        from the host: /proc/PID/net/tcp and tcp6 of the container's process)."""
        ports = {p.port for p in run.ports if p.proto == "tcp"}
        if not ports:
            return
        found = api_get(self.init, SOCKET, f"/containers/{run.name}/json") or {}
        inner = int((found.get("State") or {}).get("Pid") or 0)
        # The container's process as the node's own procfs shows it (its pid there),
        # read from the host through the node's root.
        proc = f"/proc/{self.init}/root/proc/{inner}"
        if not inner or not os.path.exists(proc):
            logs = self.docker("logs", "--tail", "5", run.name, check=False)
            raise LabError(f"node {self.node.name}: container {run.name} exited: {logs.strip()}")

        def listening() -> bool:
            return ports <= _listening(proc)

        _wait(
            f"node {self.node.name}: container {run.name} listening on {sorted(ports)}",
            listening,
            READY_TIMEOUT,
            lambda: self.docker("logs", "--tail", "3", run.name, check=False).strip(),
        )

    def start(self) -> None:
        assert self.node.docker is not None
        self.configure()
        for image in dict.fromkeys(r.image for r in self.node.docker.containers):
            self.ensure_image(image)
        for run in self.node.docker.containers:
            self.run(run)
        for run in self.node.docker.containers:
            self.wait_listening(run)

    def containers(self) -> list[dict[str, Any]]:
        """What `docker ps -a` says of the node's containers (for `ls`)."""
        try:
            listed = api_get(self.init, SOCKET, "/containers/json?all=1") or []
        except (OSError, LabError, ValueError):
            return []  # dockerd not answering (starting, restarting): none to show
        rows = []
        for row in listed:
            ports = [
                (f"{p['IP']}:{p['PublicPort']}->" if p.get("PublicPort") else "")
                + f"{p['PrivatePort']}/{p['Type']}"
                for p in row.get("Ports") or ()
            ]
            rows.append(
                {
                    "name": (row.get("Names") or ["?"])[0].lstrip("/"),
                    "image": row.get("Image", ""),
                    "state": row.get("State", ""),
                    "status": row.get("Status", ""),
                    "ports": ", ".join(sorted(set(ports))),
                }
            )
        return rows


def _tagged(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _listening(proc: str) -> set[int]:
    """TCP ports in LISTEN (state 0A) in the network namespace of process `proc`
    (a /proc/PID path)."""
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"{proc}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "0A":
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
