"""Meaning checks of a lab file, each at the line where the file says it.

`check_layer` looks at one profile or node entry as written (so a mistake in a
profile is reported once, at the profile); `check_node` at a node entry after
its profiles are overlaid (what only the whole node can tell: an interface
that `routing:` names, the kind that `delegate:` needs). Both report through
a callback `(key path, message)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from palmnet.topology.describe import shown
from palmnet.topology.model import (
    IFNAME,
    MEMBER_NAME,
    PLAIN_TEXT,
    RESERVED_IFNAMES,
    SUPPORTED_KINDS,
    BfdSpec,
    DelegateSpec,
    NetworkSpec,
    ProfileSpec,
    RoutingSpec,
)
from palmnet.topology.routing import (
    PROTOCOL_OPTIONS,
    bfd_problems,
    option_problems,
    relation_problems,
)
from palmnet.topology.yaml_source import Path_

Report = Callable[[Path_, str], None]
IFNAME_RULE = "at most 15 characters of letters, digits, '_', '.' and '-'"


def check_network(spec: NetworkSpec, path: Path_, report: Report) -> None:
    """An external network names exactly one host interface, explicitly: a lab joins
    the machine's own LAN only where its file says how (issue 16)."""
    ext = spec.external
    if ext is None:
        return
    epath = (*path, "external")
    given = [k for k in ("bridge", "macvlan") if getattr(ext, k) is not None]
    if len(given) != 1:
        said = "both" if given else "neither"
        report(
            epath,
            f"an external network names exactly one host interface, {said} given: "
            "bridge: BRIDGE (an existing host bridge) or macvlan: IFACE (a host interface)",
        )
        return
    name = ext.parent
    if name == "lo":
        report((*epath, given[0]), "lo is the machine's loopback, not a LAN")
    elif not IFNAME.fullmatch(name) or name in RESERVED_IFNAMES:
        report((*epath, given[0]), f"{shown(name)} is not a host interface name ({IFNAME_RULE})")


def check_layer(
    spec: ProfileSpec, path: Path_, networks: Mapping[str, NetworkSpec], report: Report
) -> None:
    """A profile or node entry as written: kind, interfaces, routing, delegate, text keys."""
    if spec.kind is not None and spec.kind not in SUPPORTED_KINDS:
        report(
            (*path, "kind"),
            f"kind {spec.kind!r} is not yet supported by this version of palmnet "
            f"(supported: {', '.join(SUPPORTED_KINDS)})",
        )
    for ifname, iface in spec.interfaces.items():
        _check_interface(ifname, iface, (*path, "interfaces", ifname), networks, report)
    if spec.routing is not None:
        _check_routing(spec.routing, (*path, "routing"), report)
    if spec.delegate is not None:
        _check_delegate(spec.delegate, (*path, "delegate"), report)
    if spec.member is not None and not MEMBER_NAME.fullmatch(spec.member):
        report(
            (*path, "member"),
            f"member: {shown(spec.member)} is not an LXD cluster member name "
            "(1-63 letters, digits and '-', not starting or ending with '-')",
        )
    for key in ("uci", "image"):
        value = getattr(spec, key)
        if value is not None and not PLAIN_TEXT.fullmatch(value):
            report(
                (*path, key),
                f"{key}: {shown(value)} is not a usable name "
                "(1-255 printable characters, no spaces)",
            )


def _check_delegate(d: DelegateSpec, dpath: Path_, report: Report) -> None:
    if d.length <= d.pool.prefixlen:
        report(
            (*dpath, "length"),
            f"length {d.length} must be longer than the pool's /{d.pool.prefixlen}",
        )
    if not d.t1 <= d.t2 <= d.preferred <= d.valid:
        report(dpath, "lifetimes must satisfy t1 <= t2 <= preferred <= valid")


def _check_interface(
    ifname: str, iface: Any, ipath: Path_, networks: Mapping[str, NetworkSpec], report: Report
) -> None:
    if not IFNAME.fullmatch(ifname):
        why = "longer than 15 characters" if len(ifname) > 15 else "not a valid name"
        report(ipath, f"interface name {shown(ifname)} is {why} (kernel names: {IFNAME_RULE})")
    elif ifname in RESERVED_IFNAMES:
        report(ipath, f"interface name {ifname!r} is {RESERVED_IFNAMES[ifname]}: pick another")
    if iface.network not in networks:
        known = ", ".join(networks) or "none: add a 'networks:' section"
        report((*ipath, "network"), f"unknown network {shown(iface.network)} (known: {known})")
    elif iface.advertise and networks[iface.network].external is None:
        report(
            (*ipath, "advertise"),
            f"advertise: true lifts the RA guard of an external network; {iface.network} is "
            "a lab network (every router there may advertise): remove it",
        )
    if iface.advertise and not iface.ra:
        report((*ipath, "advertise"), "advertise: true needs ra: true (there is no RA to let out)")
    if iface.ra and ifname.isdigit():
        report(
            (*ipath, "ra"),
            f"radvd (which sends this interface's RAs) reads the name {ifname!r} as a "
            "number and refuses its config: give the interface a name with a letter",
        )
    if iface.ra and not any(a.network.prefixlen == 64 and not a.is_link_local for a in iface.ipv6):
        link_local = any(a.is_link_local for a in iface.ipv6)
        report(
            (*ipath, "ra"),
            "ra: true needs a /64 in ipv6 to advertise"
            + (" (a link-local one is never advertised)" if link_local else ""),
        )
    spec = networks.get(iface.network) if isinstance(networks, Mapping) else None
    if iface.ipv4 and spec is not None and spec.ipv4 is False:
        report(
            (*ipath, "ipv4", 0),
            f"network {iface.network} is IPv6-only (ipv4: false): no IPv4 address on it",
        )
    for family in ("ipv6", "ipv4"):
        seen: dict[Any, int] = {}
        for index, addr in enumerate(getattr(iface, family)):
            if addr.ip in seen:
                report(
                    (*ipath, family, index),
                    f"{addr.ip} is listed twice (also {family}[{seen[addr.ip]}])",
                )
            seen.setdefault(addr.ip, index)


def _check_routing(routing: RoutingSpec, rpath: Path_, report: Report) -> None:
    """Options the protocol has, values BIRD takes (routing.py), at the keys written."""
    protocol = routing.protocol
    allowed = PROTOCOL_OPTIONS[protocol]
    if routing.bfd and protocol == "babel":
        report((*rpath, "bfd"), "BIRD 2.0.12 has no BFD for Babel (BFD works with ripng and ospf3)")
    if isinstance(routing.bfd, BfdSpec):
        for key, message in bfd_problems(routing.bfd.interval):
            report((*rpath, "bfd", key), message)
    defaults = routing.defaults.model_dump(exclude_none=True)
    specs = {"defaults": routing.defaults, **(routing.interfaces or {})}
    for name, spec in specs.items():
        where = (*rpath, "defaults") if name == "defaults" else (*rpath, "interfaces", name)
        for key in sorted(spec.model_fields_set - allowed):
            report(
                (*where, key),
                f"{key!r} is not an option of {protocol} (valid: {', '.join(sorted(allowed))})",
            )
        own = spec.model_dump(exclude_none=True)
        for key, value in own.items():
            if key not in allowed:
                continue
            for bad, message in option_problems(protocol, key, value):
                report((*where, bad), message)
        # dead against hello: where either is written (an inherited pair is said once,
        # at `defaults`).
        if name == "defaults" or {"dead", "hello"} & own.keys():
            for key, message in relation_problems(protocol, {**defaults, **own}):
                report((*where, key), message)


def check_node(merged: Any, path: Path_, report: Report) -> None:
    """What needs the whole node: routing's interfaces, delegate's kind."""
    routing = merged.routing
    if routing is not None:
        rpath = (*path, "routing")
        if merged.kind == "host":
            report(rpath, "routing: is for kind router or openwrt, not host")
        if routing.interfaces == {} or (routing.interfaces is None and not merged.interfaces):
            where = (*rpath, "interfaces") if routing.interfaces is not None else rpath
            report(where, "no interface to run the protocol on")
        for name in routing.interfaces or {}:
            if name not in merged.interfaces and name != "br-lan":
                known = ", ".join(merged.interfaces) or "none"
                report(
                    (*rpath, "interfaces", name),
                    f"no interface {shown(name)} on this node (interfaces: {known})",
                )
    if merged.kind == "openwrt":
        _check_openwrt_interfaces(merged, path, report)
    if merged.nat64 is not None and merged.kind not in ("router", "openwrt"):
        report((*path, "nat64"), f"nat64: is for kind router or openwrt, not {merged.kind}")
    if merged.clat and merged.kind != "host":
        report((*path, "clat"), f"clat: is for kind host, not {merged.kind} (a router is a PLAT)")
    if merged.kind == "isp" and merged.delegate is None:
        report(path, "an isp needs `delegate: {pool: PREFIX, length: N}`")
    if merged.delegate is not None and merged.kind != "isp":
        report((*path, "delegate"), f"delegate: is for kind isp, not {merged.kind}")
    if merged.delegate is not None:
        pool = merged.delegate.pool
        for ifname, iface in merged.interfaces.items():
            inside = [a for a in iface.ipv6 if a.network.overlaps(pool)]
            if inside:
                report(
                    (*path, "delegate", "pool"),
                    f"the pool {pool} holds {inside[0].network} of this node's {ifname}: "
                    "it would delegate its own link's prefix",
                )


def _check_openwrt_interfaces(merged: Any, path: Path_, report: Report) -> None:
    """An openwrt node's addresses and RAs come from its UCI files, as on OpenWrt: an
    `ipv6:`, `ipv4:` or `ra:` in the lab file would be silently dropped."""
    for ifname, iface in merged.interfaces.items():
        ipath = (*merged.origins.get(f"interfaces.{ifname}", path), "interfaces", ifname)
        for family, option in (("ipv6", "ip6addr"), ("ipv4", "ipaddr")):
            addresses = getattr(iface, family)
            if addresses:
                report(
                    (*ipath, family),
                    f"an openwrt node's addresses come from its UCI files, not {family}: here: "
                    f"add `list {option} '{addresses[0]}'` to the `config interface` section "
                    f"of {ifname} (or of its bridge) in {_uci_file(merged.uci, 'network')}",
                )
        if iface.ra:
            report(
                (*ipath, "ra"),
                "an openwrt node's router advertisements come from its UCI files, not ra: "
                "here: odhcpd's `option ra 'server'` in the LAN's `config dhcp` section of "
                + _uci_file(merged.uci, "dhcp"),
            )


def _uci_file(uci: str | None, name: str) -> str:
    if uci is None:
        return f"a {name} file in a uci: folder (/etc/config/{name}: stock without one)"
    return f"{shown(uci.rstrip('/') + '/' + name)} (/etc/config/{name} on the node)"
