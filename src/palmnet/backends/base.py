"""The interface every backend implements (netns, LXD), and what it hands out.

The Lab API is the only caller of a backend; the CLI, the web UI, links and
the toolbox see a running lab through the Lab API and the two objects a
backend hands out here:

- a `NodeHandle`: a running node as palmnet's own code reaches it. Its
  network namespace (`netns`, a path setns() takes: /run/netns/NAME for a
  namespace node, /proc/PID/ns/net of a container's init) is where the
  toolbox opens its sockets and runs the host's own tools (`tool`: ip,
  rdisc6, nft), so no verb needs anything inside a container's image (a
  busybox image is enough). `run`/`exec` use the node's own programs and
  files, as `lxc exec` or `ip netns exec` would.
- a `Switch`: where the lab's links plug in (the namespace of its bridges,
  the port of each node interface), for link failures and the audit's bounce.

A backend derives its own names (namespaces, bridges, ports, containers)
from the plan; the plan carries none of them. A backend never parses YAML,
never imports another backend, and never reaches a journal it did not get.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NoReturn

from palmnet.errors import LabError
from palmnet.kernel import nsfs
from palmnet.plan.model import NodePlan, Plan
from palmnet.state.journal import Journal

if TYPE_CHECKING:
    # The daemon adapters are loaded by the verbs that use them: `exec` and `ls`
    # start faster without them (cli/quick.py).
    from palmnet.services.base import Service
from palmnet.state.paths import lab_dir


@dataclass(frozen=True)
class LiveInterface:
    name: str
    network: str
    mac: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()  # non-tentative, as the kernel holds them
    # address -> who put it there: link-local, static, slaac, dhcpv6, delegated, dhcpv4
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveService:
    """One of a node's daemons as it is now (lab/health.py fills these in)."""

    name: str
    state: str  # running, restarting, failed, dead
    pid: int | None = None
    restarts: int = 0  # by the lab's supervisor
    last_exit: str = ""


@dataclass(frozen=True)
class LiveContainer:
    """A Docker container inside a node, as the node's dockerd reports it."""

    name: str
    image: str
    state: str  # Docker's: running, exited, created...
    status: str = ""  # Docker's words: "Up 3 seconds"
    ports: str = ""  # Docker's words: "0.0.0.0:80->80/tcp, :::80->80/tcp"


@dataclass(frozen=True)
class LiveNode:
    name: str
    kind: str
    state: str  # RUNNING, DEGRADED (a daemon is down), STOPPED, ERROR
    interfaces: tuple[LiveInterface, ...] = field(default=())
    services: tuple[LiveService, ...] = field(default=())
    member: str = ""  # the LXD cluster member it runs on ("" off a cluster)
    docker: tuple[LiveContainer, ...] | None = None  # None: the node has no `docker:`


@dataclass(frozen=True)
class Switch:
    """Where a lab's links plug in.

    `netns` is the namespace holding the lab's bridges (a path setns() takes), and
    `port_netns` any other that holds some of its ports;
    `ports` maps each node interface on a lab network to its port there (the
    outer end of its veth pair); `table` is the name of the nftables netdev
    table the lab may own in that namespace (link impairments).
    """

    netns: str
    table: str
    bridges: dict[str, str]  # network -> bridge ifname
    ports: dict[tuple[str, str], str]  # (node, interface) -> port ifname
    # Ports that live in another namespace than `netns` (an LXD cluster: the ports of
    # nodes on another member are in that member's), port ifname -> namespace path.
    port_netns: dict[str, str] = field(default_factory=dict)
    # Ends whose port is on an LXD cluster member on another machine, which palmnet
    # cannot reach: (node, interface) -> that member.
    away: dict[tuple[str, str], str] = field(default_factory=dict)

    def port(self, node: str, interface: str) -> str | None:
        return self.ports.get((node, interface))

    def netns_of(self, port: str) -> str:
        """The namespace that holds a port."""
        return self.port_netns.get(port, self.netns)

    def namespaces(self) -> list[str]:
        """Every namespace that holds ports of the lab, `netns` first."""
        return [self.netns, *sorted(set(self.port_netns.values()) - {self.netns})]


Pids = dict[str, tuple[int, int | None]]  # service -> (host pid, start time)


class NodeHandle(ABC):
    """A node of a running lab, reached from the host (see the module docstring)."""

    def __init__(self, plan: Plan, node: NodePlan, pids: Pids) -> None:
        self.plan = plan
        self.node = node
        self._pids = pids  # service -> (pid, start time), from the journal

    @property
    def name(self) -> str:
        return self.node.name

    @property
    @abstractmethod
    def netns(self) -> str:
        """A path whose fd setns() takes into the node's network namespace."""

    def running(self) -> bool:
        return os.path.exists(self.netns)

    def require_running(self) -> None:
        if not self.running():
            raise LabError(f"node {self.name} is not running")

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """This thread in the node's network namespace; sockets opened here stay there."""
        self.require_running()
        with nsfs.netns(self.netns):
            yield

    def tool(
        self, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A program of the host run in the node's network namespace only (ip, rdisc6,
        ping, nft): what the node's image holds does not matter."""
        from palmnet.kernel.processes import run_in_netns

        self.require_running()
        try:
            return run_in_netns(self.netns, argv, stdin, timeout)
        except FileNotFoundError:
            raise LabError(f"{argv[0]} is not installed on this machine") from None

    @abstractmethod
    def run(
        self, argv: list[str], stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A program of the node run inside it, with its own files (its /etc)."""

    @abstractmethod
    def exec(self, argv: list[str]) -> NoReturn:
        """Replace this process with argv inside the node (its exit code passes through)."""

    @abstractmethod
    def host_path(self, path: str | Path) -> Path:
        """Where the host sees a path of the node's own filesystem (its /etc, its
        daemons' state), to read a file or reach a unix socket from outside."""

    @abstractmethod
    def write(self, files: dict[Path, str]) -> None:
        """Write files where the node sees them (paths of the node, e.g. a daemon's
        config); `#!` files become executable."""

    def read_file(self, path: str) -> str | None:
        """A file as the node sees it, None if it has none."""
        try:
            return self.host_path(path).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None

    @abstractmethod
    def service(self, name: str) -> Service:
        """The adapter of one of the node's daemons, its paths as the host sees them."""

    def service_pid(self, name: str) -> int | None:
        """Host pid of the node's daemon `name`, None if it does not run (any more)."""
        from palmnet.services.runner import running_pid

        found = self._pids.get(name)
        return running_pid(*found) if found else None

    def has_service(self, name: str) -> bool:
        from palmnet.services.registry import services_for

        return any(cls.name == name for cls in services_for(self.node))


class Backend(ABC):
    name: ClassVar[str]

    def check(self, plan: Plan) -> None:  # noqa: B027 (a hook: most backends see nothing)
        """Bad input that only the backend can see (an LXD cluster member the lab names
        that the cluster lacks): InputError (exit 2) before anything is made."""

    def check_capacity(self, plan: Plan) -> None:
        """Refuse, before anything is made, a lab this machine cannot hold: raise
        InputError naming the limit it would hit halfway (memory, descriptors...).
        A backend without such limits accepts every lab."""
        return None

    def prepare(self, lab: str) -> None:
        """Make the lab's state dir ready before its journal is opened."""
        lab_dir(lab).mkdir(parents=True, exist_ok=True)

    def preflight(self, plan: Plan) -> list[tuple[tuple[str, ...], str]]:
        """What of the machine the plan needs and does not find, as (key path in the
        lab file, message), checked by `up` before anything is made. By default a
        backend joins no external network (issue 16)."""
        return [
            (("networks", n.name, "external"), f"the {self.name} backend has no external networks")
            for n in plan.external
        ]

    @abstractmethod
    def apply(self, plan: Plan, journal: Journal, nodes: Sequence[str] | None = None) -> None:
        """Create the plan's objects (all nodes, or only `nodes`) and wait until ready."""

    @abstractmethod
    def refresh(self, plan: Plan, journal: Journal) -> None:
        """Tell running daemons about a changed plan (DNS names of added nodes, pools)."""

    @abstractmethod
    def remove_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        """Remove some nodes of a running lab, leaving the rest untouched."""

    def stop_nodes(self, plan: Plan, journal: Journal, nodes: Sequence[str]) -> None:
        """Stop nodes; `apply` on them starts them again with the same addresses.
        A namespace node is removed (nothing of it is kept); a container is kept."""
        self.remove_nodes(plan, journal, nodes)

    @abstractmethod
    def start_service(self, plan: Plan, journal: Journal, node: str, name: str) -> int:
        """Start one daemon of a running node again (its files rendered anew from the
        plan) and wait until it does its job; its host pid. The supervisor's restart."""

    @abstractmethod
    def observe(self, plan: Plan, journal: Journal) -> list[LiveNode]:
        """What is there now, node by node, in plan order."""

    @abstractmethod
    def destroy(self, lab: str, journal: Journal | None) -> None:
        """Remove every trace of the lab, its state dir included, from the journal or,
        without one, by the lab's names and tags. The journal stays open (its owner
        closes it)."""

    @abstractmethod
    def leftovers(self, lab: str) -> list[str]:
        """What of a lab this backend finds without its journal (after a crash or a
        reboot), described for the user; empty when there is nothing (or the
        backend is not available here)."""

    @abstractmethod
    def node(self, plan: Plan, journal: Journal, name: str) -> NodeHandle:
        """A handle on a node of the running lab (it may be stopped: `running()`)."""

    @abstractmethod
    def switch(self, plan: Plan, journal: Journal) -> Switch:
        """Where the lab's links plug in."""


def process_pids(journal: Journal, node: str) -> Pids:
    """The node's daemons the journal knows: service -> (pid, start time)."""
    out = {}
    for e in journal.entries("process", node=node):
        pid = e.data.get("pid")
        if pid:
            out[e.name.rsplit("/", 1)[-1]] = (int(pid), e.data.get("start"))
    return out
