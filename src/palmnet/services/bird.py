"""BIRD 2: dynamic routing (RIPng, Babel, OSPFv3, BFD) on a router with `routing:`.

One config language for the three protocols (DESIGN.md §4). What the config
says, and why (reference/routing-notes.md holds the measurements):

- `router id` is the plan's, derived from (lab, node): the routers have no
  IPv4 address for BIRD to take one from.
- `protocol direct` makes the node's connected prefixes routes (every
  interface that holds addresses; BIRD skips link-local prefixes), so the
  LANs behind a router are announced without static routes.
- `protocol kernel` learns the kernel's own routes (`learn`, e.g. the
  topology's static routes) and exports to the kernel only what the routing
  protocol learned: never connected or kernel routes back (they are the
  kernel's already). Next hops are the neighbours' link-local addresses.
- the routing protocol announces connected prefixes, routes of the kernel
  that palmnet or the node's daemons installed (proto static: the topology's
  `routes:` and netifd's unreachable ULA /48; proto dhcp: dhcpcd's unreachable
  route for a delegated prefix; proto 250: routes to prefixes delegated on,
  from the kea hook), as the field notes' routers `export all` of their
  kernel table, and what it learned itself. OSPF carries connected prefixes in
  its own LSAs (intra-area routes, as on a real router): the node's other
  interfaces join area 0 as `stub` (passive: no hellos towards the hosts),
  and only the static routes are exported (external, E2).
- timers use BIRD 2's units: RIP and OSPF timers are whole seconds (its
  grammar has no others), Babel and BFD intervals take `s` or `ms`.
- OSPF links that join exactly two nodes are `type ptp`: no DR election, so
  no `wait` (the dead interval, 40 s by default) before routes flow.

BIRD runs in the foreground (`-f`), logs to stderr (which the backend sends
to the adapter's log), and keeps its control socket and pid file in the
node's state directory, where `birdc -s SOCK` (or `control()` here) reaches
it from the host: the socket is a file, not a network address.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from palmnet.errors import InputError
from palmnet.plan.model import NodePlan, Plan, RoutingInterface, RoutingPlan
from palmnet.services.base import Service
from palmnet.topology.routing import bfd_problems, interface_problems

SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its NUL
KERNEL_SCAN = 10  # seconds between scans of the kernel table (netlink tells changes at once)
STATIC_PROTO = 4  # RTPROT_STATIC: `ip route add ... proto static`, palmnet's static routes
DHCP_PROTO = 16  # RTPROT_DHCP: dhcpcd's unreachable route for the prefix delegated to it
DELEGATION_PROTO = 250  # palmnet's kea hook: a delegated prefix via its requester
ANNOUNCED_KERNEL_PROTOS = (STATIC_PROTO, DHCP_PROTO, DELEGATION_PROTO)

PROTOCOL_SOURCES = {
    "ripng": "RTS_RIP",
    "babel": "RTS_BABEL",
    "ospf3": "RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2",
}
BIRD_PROTOCOL = {"ripng": "rip ng", "babel": "babel", "ospf3": "ospf v3"}
PROTOCOL_NAME = {"ripng": "ripng1", "babel": "babel1", "ospf3": "ospf1"}
"""The BIRD protocol instance names; `birdc show ... neighbors` takes them."""


# -- timers and checks ----------------------------------------------------------------
def interval(seconds: float) -> str:
    """A BIRD 2 time with its unit: `4 s` when whole, else milliseconds (`200 ms`)."""
    ms = round(seconds * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000} s"
    return f"{ms} ms"


def _interface_problems(protocol: str, iface: RoutingInterface) -> list[str]:
    where = f"routing.interfaces.{iface.name}"
    values = {k: v for k, v in dataclasses.asdict(iface).items() if v is not None}
    return [f"{where}.{key}: {message}" for key, message in interface_problems(protocol, values)]


def routing_problems(routing: RoutingPlan) -> list[str]:
    """What BIRD 2.0.12 would refuse (or silently misread) in a routing plan.

    Each message names the key; an empty list means the config will load. The
    topology refuses all of it at the file's lines (topology/routing.py holds the
    limits); this is the defence for plans made another way.
    """
    out: list[str] = []
    if routing.protocol not in BIRD_PROTOCOL:
        valid = ", ".join(BIRD_PROTOCOL)
        return [f"routing.protocol: unknown protocol {routing.protocol!r} (valid: {valid})"]
    if routing.bfd_interval is not None:
        if routing.protocol == "babel":
            out.append("routing.bfd: BIRD 2.0.12 has no BFD for Babel (use ripng or ospf3)")
        else:
            out += [f"routing.bfd.{k}: {m}" for k, m in bfd_problems(routing.bfd_interval)]
    if not routing.interfaces:
        out.append("routing.interfaces: no interface to run the protocol on")
    for iface in routing.interfaces:
        out += _interface_problems(routing.protocol, iface)
    return out


# -- config text ------------------------------------------------------------------------
def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def connected_interfaces(node: NodePlan) -> list[str]:
    """Interfaces whose prefixes are connected routes: all but bridge ports."""
    return [i.name for i in node.interfaces if i.master is None]


def point_to_point(plan: Plan | None, node: NodePlan, name: str) -> bool:
    """Whether the network of `node`'s interface `name` joins exactly two nodes."""
    if plan is None:
        return False
    try:
        network = node.interface(name).network
    except KeyError:
        return False
    ports = next((n.ports for n in plan.networks if n.name == network), ())
    return len(ports) == 2


def _rip_interface(iface: RoutingInterface, bfd: bool) -> list[str]:
    opts = []
    if iface.cost is not None:
        opts.append(f"metric {iface.cost};")
    if iface.update is not None:
        opts.append(f"update time {int(iface.update)};")
    if iface.timeout is not None:
        opts.append(f"timeout time {int(iface.timeout)};")
    if iface.garbage is not None:
        opts.append(f"garbage time {int(iface.garbage)};")
    if bfd:
        opts.append("bfd on;")
    return opts


def _babel_interface(iface: RoutingInterface) -> list[str]:
    opts = [f"type {iface.type or 'wired'};"]
    if iface.hello is not None:
        opts.append(f"hello interval {interval(iface.hello)};")
    if iface.update is not None:
        opts.append(f"update interval {interval(iface.update)};")
    if iface.rxcost is not None:
        opts.append(f"rxcost {iface.rxcost};")
    return opts


def _ospf_interface(iface: RoutingInterface, bfd: bool, ptp: bool) -> list[str]:
    opts = ["type ptp;"] if ptp else []
    if iface.hello is not None:
        opts.append(f"hello {int(iface.hello)};")
    if iface.dead is not None:
        opts.append(f"dead {int(iface.dead)};")
    if iface.cost is not None:
        opts.append(f"cost {iface.cost};")
    if bfd:
        opts.append("bfd on;")
    return opts


def _block(head: str, opts: list[str], indent: str) -> list[str]:
    if not opts:
        return [f"{indent}{head};"]
    return [f"{indent}{head} {{", *(f"{indent}    {o}" for o in opts), f"{indent}}};"]


def _announce_filter(routing: RoutingPlan) -> list[str]:
    lines = ["# what the routing protocol announces", "filter announce {"]
    if routing.protocol != "ospf3":  # OSPF's LSAs carry connected prefixes (stub interfaces)
        lines.append("    if source = RTS_DEVICE then accept;  # connected prefixes")
    protos = ", ".join(str(p) for p in ANNOUNCED_KERNEL_PROTOS)
    lines += [
        "    # the kernel's own routes (learnt, never BIRD's: no loop): static routes, the",
        "    # unreachable aggregates netifd and dhcpcd install for a ULA /48 and a delegated",
        "    # prefix, and the routes palmnet's kea hook adds to prefixes delegated further",
        f"    if source = RTS_INHERIT && krt_source ~ [{protos}] then accept;",
    ]
    if routing.protocol != "ospf3":  # OSPF floods what it learned without exporting it
        lines.append(
            f"    if source ~ [{PROTOCOL_SOURCES[routing.protocol]}] then accept;  # learned"
        )
    lines += ["    reject;", "}"]
    return lines


def _protocol(routing: RoutingPlan, plan: Plan | None, node: NodePlan) -> list[str]:
    bfd = routing.bfd_interval is not None
    name = PROTOCOL_NAME[routing.protocol]
    lines = [
        f"protocol {BIRD_PROTOCOL[routing.protocol]} {name} {{",
        "    ipv6 { import all; export filter announce; };",
    ]
    if routing.protocol == "ospf3":
        lines.append("    area 0 {")
        for iface in routing.interfaces:
            ptp = point_to_point(plan, node, iface.name)
            lines += _block(f'interface "{iface.name}"', _ospf_interface(iface, bfd, ptp), " " * 8)
        running = {i.name for i in routing.interfaces}
        stubs = [n for n in connected_interfaces(node) if n not in running]
        if stubs:
            lines.append(f"        interface {_quoted(stubs)} {{ stub yes; }};  # passive")
        lines.append("    };")
    else:
        for iface in routing.interfaces:
            opts = (
                _rip_interface(iface, bfd)
                if routing.protocol == "ripng"
                else _babel_interface(iface)
            )
            lines += _block(f'interface "{iface.name}"', opts, " " * 4)
    lines.append("}")
    return lines


def _bfd(routing: RoutingPlan) -> list[str]:
    if routing.bfd_interval is None:
        return []
    every = interval(routing.bfd_interval)
    names = _quoted(i.name for i in routing.interfaces)
    return [
        f"# BFD: a neighbour is down after {routing.bfd_multiplier} lost packets",
        "protocol bfd bfd1 {",
        f"    interface {names} {{",
        f"        min rx interval {every};",
        f"        min tx interval {every};",
        f"        multiplier {routing.bfd_multiplier};",
        "    };",
        "}",
        "",
    ]


def render_bird_config(node: NodePlan, plan: Plan | None = None) -> str:
    """bird.conf for a node with `routing:`; InputError lists what BIRD would refuse."""
    routing = node.routing
    if routing is None:
        raise InputError(f"node {node.name} has no routing: section")
    problems = routing_problems(routing)
    if problems:
        raise InputError(f"node {node.name}: " + "; ".join(problems))
    learned = PROTOCOL_SOURCES[routing.protocol]
    lines = [
        f"# BIRD 2 for {node.name}, written by palmnet: {routing.protocol}",
        f"router id {routing.router_id};",
        "log stderr all;",
        "timeformat log iso long ms;",
        "",
        "protocol device {",
        f"    scan time {KERNEL_SCAN};",
        "}",
        "",
        "# connected prefixes (BIRD leaves link-local ones out)",
        "protocol direct {",
        "    ipv6;",
        f"    interface {_quoted(connected_interfaces(node))};",
        "}",
        "",
        "# learn the kernel's routes; give it only what the protocol learned",
        "protocol kernel {",
        "    ipv6 {",
        "        import all;",
        f"        export where source ~ [{learned}];",
        "    };",
        "    learn;",
        f"    scan time {KERNEL_SCAN};",
        "}",
        "",
        *_bfd(routing),
        *_announce_filter(routing),
        "",
        *_protocol(routing, plan, node),
    ]
    return "\n".join(lines) + "\n"


# -- control socket ---------------------------------------------------------------------
class BirdControlError(Exception):
    """The control socket did not answer (BIRD not running, or not yet)."""


def control(sock: Path, command: str, timeout: float = 5.0) -> list[tuple[str, str]]:
    """One command over BIRD's control socket: its reply as (code, text) lines.

    The protocol birdc speaks: a greeting `0001 BIRD x ready.`, then per
    command lines `CODE-text` (more follow), ` text` (continues the last
    code) and a last `CODE text`. Codes 0xxx end a reply, 8xxx/9xxx are
    errors. Continuation lines carry the code of the line before.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            reader = s.makefile("r", encoding="utf-8", errors="replace")
            _reply(reader)  # greeting
            s.sendall(command.encode() + b"\n")
            return _reply(reader)
    except OSError as exc:
        raise BirdControlError(f"{sock}: {exc}") from None


def _reply(reader: Iterable[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    code = ""
    for raw in reader:
        line = raw.rstrip("\n")
        if line.startswith(" "):
            out.append((code, line[1:]))
            continue
        code, sep, text = line[:4], line[4:5], line[5:]
        out.append((code, text))
        if sep == " ":
            return out
    raise BirdControlError("control socket closed mid-reply")


class Bird(Service):
    name: ClassVar[str] = "bird"
    executable: ClassVar[str] = "/usr/sbin/bird"
    package: ClassVar[str] = "bird2"

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.routing is not None

    @property
    def conf(self) -> Path:
        return self.dir / "bird.conf"

    @property
    def socket(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pid_file(self) -> Path:
        return self.dir / "bird.pid"

    def render(self) -> dict[Path, str]:
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            raise InputError(
                f"BIRD's control socket path is too long for a unix socket ({self.socket}): "
                "use a shorter PALMNET_STATE_DIR"
            )
        return {self.conf: render_bird_config(self.node, self.plan)}

    def argv(self) -> list[str]:
        return [
            self.executable,
            "-f",
            "-c",
            str(self.conf),
            "-s",
            str(self.socket),
            "-P",
            str(self.pid_file),
        ]

    def ready(self, pid: int) -> bool:
        """The control socket answers `show status` with "Daemon is up and running"."""
        if not self.host(self.socket).exists():
            return False
        try:
            reply = control(self.host(self.socket), "show status", timeout=1.0)
        except BirdControlError:
            return False
        return any("Daemon is up and running" in text for _, text in reply)
