"""The topology model (DESIGN.md §3): what a lab file may say.

Two levels: the `*Spec` classes mirror the file (profiles and nodes before
overlay, every key optional where the file may leave it out); `Lab` and
`Node` are the resolved result the plan consumes: profiles overlaid in order,
the node's own keys last, `count:` expanded. Unknown keys are errors
(`extra="forbid"`), never silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from palmnet.topology.addresses import (
    DelegationPool,
    ExternalPrefix,
    IPv4Iface,
    IPv6Iface,
    Lifetime,
    Nat64Pool4,
    Nat64Prefix,
)
from palmnet.topology.yaml_source import Path_, Source, format_path

# Names are checked with `fullmatch`, never `match` with `$`: `$` also matches
# before a final newline, and "rel\n" would become a namespace and a hostname.
LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,11}")
# Node names become DNS labels and part of namespace names.
NODE_NAME = re.compile(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?")
# Kernel interface names: at most 15 bytes, no '/', ':', whitespace; not '.' or '..'.
IFNAME = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9_.\-]{1,15}")
# Names a node's own interface cannot take: the node's loopback, and the kernel's
# /proc/sys/net/*/conf/{all,default} (it refuses such a device with EINVAL).
RESERVED_IFNAMES = {
    "lo": "the node's loopback",
    "all": "the kernel's name for every interface's settings (net.ipv6.conf.all)",
    "default": "the kernel's name for new interfaces' settings (net.ipv6.conf.default)",
}
# A DNS name: dot-separated labels of letters, digits and '-', no label
# starting or ending with '-'; a trailing dot is allowed.
DOMAIN = re.compile(
    r"(?=.{1,253}\Z|.{1,253}\.\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)
# A profile name (only ever a reference, but shown in messages and LXD-like): no
# whitespace, no control characters, no '/'.
PROFILE_NAME = re.compile(r"[^\x00-\x20\x7f/]{1,64}")
# A folder name or an LXD image alias: printable, no whitespace, not too long.
PLAIN_TEXT = re.compile(r"[^\x00-\x20\x7f]{1,255}")
# The files an openwrt node's `uci:` folder may hold, as in /etc/config on OpenWrt;
# one it lacks is OpenWrt's stock file (plan/openwrt.py).
UCI_FILES = ("network", "firewall", "dhcp")

NodeKind = Literal["host", "router", "openwrt", "isp"]
SupportedKind = Literal["host", "router", "openwrt", "isp"]
SUPPORTED_KINDS: tuple[SupportedKind, ...] = ("host", "router", "openwrt", "isp")
Service = Literal["http"]
# Where an LXD cluster runs a lab's nodes (backend lxd): spread over the members
# (the default, as LXD's own scheduler does) or packed on the member palmnet talks to.
Placement = Literal["spread", "pack"]
# An LXD cluster member's name (a host name label, as LXD requires).
MEMBER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class Strict(BaseModel):
    """Unknown keys are errors; no coercion (`"10"` is not a count, `yes` not a bool).

    An empty entry (`br0:` with nothing after it) means the same as `br0: {}`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_mapping(cls, data: Any) -> Any:
        return {} if data is None else data


class InterfaceSpec(Strict):
    network: str
    ipv6: list[IPv6Iface] = Field(default_factory=list)
    ipv4: list[IPv4Iface] = Field(default_factory=list)
    ra: bool = False
    # On an external network: let this interface's router advertisements out to the
    # real LAN (the RA guard is lifted; `plan` warns). Anywhere else: an error.
    advertise: bool = False


class RouteSpec(Strict):
    """A static route: `via` is a node, NODE:IFACE, or an address; the plan resolves it."""

    to: str
    via: str


Seconds = Annotated[float, Field(gt=0, strict=False, allow_inf_nan=False)]


class RoutingInterfaceSpec(Strict):
    """Per-interface options of the routing protocol (seconds for timers)."""

    type: Literal["wired", "wireless"] | None = None  # babel
    hello: Seconds | None = None  # babel, ospf3
    update: Seconds | None = None  # babel, ripng
    rxcost: int | None = Field(default=None, ge=1, le=65535)  # babel
    timeout: Seconds | None = None  # ripng
    garbage: Seconds | None = None  # ripng
    dead: Seconds | None = None  # ospf3
    cost: int | None = Field(default=None, ge=1, le=65535)  # ospf3, ripng metric


class BfdSpec(Strict):
    interval: Seconds = 0.1  # min rx/tx interval
    multiplier: int = Field(default=3, ge=1, le=255)


class RoutingSpec(Strict):
    """Dynamic routing with BIRD 2 on a router (DESIGN.md §4)."""

    protocol: Literal["ripng", "babel", "ospf3"]
    interfaces: dict[str, RoutingInterfaceSpec] | None = None  # None: every interface
    defaults: RoutingInterfaceSpec = Field(default_factory=RoutingInterfaceSpec)
    bfd: bool | BfdSpec = False


class DelegateSpec(Strict):
    """An ISP's prefix delegation pool (DHCPv6-PD with kea), lifetimes in seconds.

    Short lifetimes by default: in a lab, renumbering should show within a
    minute, and an RA can never cut a remaining valid lifetime (RFC 4862 5.5.3e).
    """

    pool: DelegationPool
    length: int = Field(default=56, ge=8, le=64)
    t1: Lifetime = 30
    t2: Lifetime = 48
    preferred: Lifetime = 60
    valid: Lifetime = 90


class DockerSpec(Strict):
    """One container of a node's `docker:` list, as written (topology/docker.py)."""

    name: str
    image: str
    ports: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)  # FOLDER:/PATH, read-only
    command: list[str] | str | None = None


class ExternalSpec(Strict):
    """A lab network joined to the machine's own network (issue 16): exactly one of
    `bridge:` (an existing host bridge; each node interface is a veth whose outer end
    is a port of it, as LXD's `nictype: bridged`) or `macvlan:` (a macvlan in bridge
    mode on a host interface). `prefix:` is the /64 the real LAN's router advertises,
    if the user knows it: `plan` then prints full addresses and `up` checks them."""

    bridge: str | None = None
    macvlan: str | None = None
    prefix: ExternalPrefix | None = None

    @property
    def kind(self) -> str:
        return "bridge" if self.bridge is not None else "macvlan"

    @property
    def parent(self) -> str:
        return self.bridge if self.bridge is not None else self.macvlan or ""


class NetworkSpec(Strict):
    """A lab network: one layer-2 segment (a bridge of the backend's), or with
    `external:` a segment of the machine's own LAN.

    `ipv4: false` makes it IPv6-only: no IPv4 address on any interface of it, so no
    DHCPv4 either (its hosts reach IPv4 through NAT64, or a CLAT)."""

    ipv4: bool = True
    external: ExternalSpec | None = None


class Nat64Spec(Strict):
    """A stateful NAT64 (PLAT) in a router: IPv6 clients reach IPv4 through `prefix`
    (RFC 6052), their traffic leaving from addresses of `pool4`."""

    prefix: Nat64Prefix
    pool4: Nat64Pool4

    @model_validator(mode="after")
    def _well_known_needs_global(self) -> Nat64Spec:
        from palmnet.addressing.nat64 import well_known_problem

        why = well_known_problem(self.prefix, self.pool4)
        if why:
            raise ValueError(why)
        return self


class ProfileSpec(Strict):
    """Keys a profile may set; a later profile overrides the keys it names."""

    kind: NodeKind | None = None
    interfaces: dict[str, InterfaceSpec] = Field(default_factory=dict)
    service: Service | None = None
    dad: bool | None = None
    uci: str | None = None  # openwrt: folder of UCI files, relative to the lab file
    routes: list[RouteSpec] | None = None
    routing: RoutingSpec | None = None
    delegate: DelegateSpec | None = None  # isp: the PD pool
    nat64: Nat64Spec | None = None  # router, openwrt: a PLAT (TAYGA) and DNS64 (unbound)
    clat: bool | None = None  # host: a CLAT (464XLAT) for IPv4-only applications
    image: str | None = None  # backend lxd: the image alias the node's container starts from
    member: str | None = None  # backend lxd on a cluster: the member the node runs on
    security_nesting: bool | None = Field(default=None, alias="security.nesting")
    security_privileged: bool | None = Field(default=None, alias="security.privileged")
    docker: list[DockerSpec] | None = None  # backend lxd: containers run by the node's dockerd
    # backend lxd: dockerd without its userland proxy, with ip6tables and an IPv6 network,
    # so a container sees its clients' real addresses (README "Docker inside LXD nodes")
    docker_real_source: bool | None = None


class NodeSpec(ProfileSpec):
    profiles: list[str] = Field(default_factory=list)
    count: int | None = None

    @field_validator("count")
    @classmethod
    def _count_positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"count must be at least 1, got {v}")
        return v


class LabHeader(Strict):
    """The lab's own scalar keys; sections are validated entry by entry."""

    name: str
    domain: str | None = None
    dad: bool = True
    backend: Literal["netns", "lxd"] | None = None  # None: netns, or the running lab's
    placement: Placement | None = None  # backend lxd on a cluster; None: spread
    networks: dict[str, Any] | None = None
    profiles: dict[str, Any] | None = None
    nodes: dict[str, Any] | None = None


class Node(Strict):
    """A node after overlay and `count:` expansion."""

    name: str
    kind: SupportedKind
    interfaces: dict[str, InterfaceSpec]
    service: Service | None = None
    dad: bool = True
    uci: Path | None = None  # resolved against the lab file's folder
    routes: tuple[RouteSpec, ...] = ()
    routing: RoutingSpec | None = None
    delegate: DelegateSpec | None = None
    nat64: Nat64Spec | None = None
    clat: bool = False
    image: str | None = None
    member: str | None = None
    security_nesting: bool = False
    security_privileged: bool = False
    docker: tuple[DockerSpec, ...] = ()
    docker_volumes: dict[str, Path] = Field(default_factory=dict)  # FOLDER -> resolved
    docker_real_source: bool = False
    template: str  # the node entry of the file it came from (w for w1..w10)
    line: int | None = None  # where that entry starts in the file
    # Which layer wrote a key ("routes", "interfaces.eth0"...): ("profiles", "web")
    # or ("nodes", "w"); keys not listed come from the node's own entry.
    origins: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class Lab(Strict):
    """A validated, resolved lab: everything the plan needs, and where the file said it
    (`where`), so that a problem only the plan can see still names its line."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    domain: str
    source: Path
    dad: bool = True
    backend: Literal["netns", "lxd"] | None = None  # None: netns, or the running lab's
    placement: Placement | None = None
    networks: dict[str, NetworkSpec]
    nodes: dict[str, Node]  # file order, copies of `count:` in 1..N order
    lines: Source | None = Field(default=None, repr=False)

    def where(self, node: Node, *keys: str | int) -> tuple[int | None, str]:
        """The line and key path of `keys` of `node`, in the profile or node entry
        that wrote them (`where(n, "interfaces", "eth0", "ipv6", 0)`)."""
        head = f"interfaces.{keys[1]}" if keys[:1] == ("interfaces",) and len(keys) > 1 else ""
        head = head or (str(keys[0]) if keys else "")
        path: Path_ = (*node.origins.get(head, ("nodes", node.template)), *keys)
        line = self.lines.line(path) if self.lines is not None else node.line
        return line, format_path(path)
