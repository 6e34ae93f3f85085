"""Lab file -> validated, resolved `Lab` (DESIGN.md §3).

Three passes over the parsed file, collecting every problem before raising:
1. shape: each entry validated by its pydantic model (types, unknown keys);
2. meaning: names, references to networks and profiles, supported kinds,
   `ra:` needing a /64 -- checked where the file says it, so a mistake in a
   profile points at the profile, once, not at every node that uses it;
3. resolution: profile overlay, `count:` expansion, clashing node names.
All problems are raised together as one `TopologyError` (an `InputError`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from palmnet.errors import InputError
from palmnet.topology.model import (
    DOMAIN,
    IFNAME,
    LAB_NAME,
    NODE_NAME,
    SUPPORTED_KINDS,
    Lab,
    LabHeader,
    NetworkSpec,
    Node,
    NodeSpec,
    ProfileSpec,
    SupportedKind,
)
from palmnet.topology.overlay import overlay, profile_names
from palmnet.topology.problems import Problem, TopologyError
from palmnet.topology.validation import validate
from palmnet.topology.yaml_source import Path_, Source, format_path, parse_yaml

_LAB_NAME_RULE = "1-12 characters: a lowercase letter, then lowercase letters, digits or '-'"
_NODE_NAME_RULE = (
    "a node name is a DNS label: up to 32 lowercase letters, digits and '-', "
    "starting with a letter and not ending with '-'"
)
# What every node name made from an entry starts with, whatever its count.
_NODE_PREFIX = re.compile(r"^[a-z][a-z0-9-]*$")
_IFNAME_RULE = "at most 15 characters of letters, digits, '_', '.' and '-'"
PROTOCOL_OPTIONS = {
    "ripng": {"update", "timeout", "garbage", "cost"},
    "babel": {"type", "hello", "update", "rxcost"},
    "ospf3": {"hello", "dead", "cost"},
}


def read_lab_file(path: str | Path) -> str:
    """The text of a lab file; a file that cannot be read is an `InputError`."""
    filename = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=filename) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", file=filename) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=filename) from None


def load_lab(path: str | Path) -> Lab:
    """Read and resolve the lab file at `path`; problems raise `InputError`."""
    return load_lab_text(read_lab_file(path), str(path))


def load_lab_text(text: str, filename: str) -> Lab:
    """Resolve a lab from YAML `text`; `filename` only appears in messages and `Lab.source`."""
    return _Loader(parse_yaml(text, filename), filename).load()


class _Loader:
    def __init__(self, source: Source, filename: str) -> None:
        self.source = source
        self.filename = filename
        self.problems: list[Problem] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.source.line(path), format_path(path), message))

    def fail(self) -> TopologyError:
        return TopologyError(self.problems, file=self.filename)

    def load(self) -> Lab:
        data = self.source.data
        if data is None:
            self.problem((), "the lab file is empty; it needs at least 'name'")
            raise self.fail()
        if not isinstance(data, dict):
            self.problem((), "the lab file must be a mapping of keys (name, networks, nodes...)")
            raise self.fail()
        header = validate(LabHeader, data, (), self.source, self.problems)
        name = data.get("name")
        if isinstance(name, str) and not LAB_NAME.match(name):
            self.problem(("name",), f"invalid lab name {name!r}: {_LAB_NAME_RULE}")
        domain = _domain(data, name)
        if "domain" in data and domain is not None and not DOMAIN.match(domain):
            self.problem(("domain",), f"invalid domain {domain!r}: not a valid DNS name")
        lab_dad = header.dad if header is not None else True

        self.networks = self.load_networks(_section(data, "networks"))
        self.profiles = self.load_profiles(_section(data, "profiles"))
        nodes = self.load_nodes(_section(data, "nodes"), lab_dad)
        if self.problems or header is None or domain is None:
            raise self.fail()
        return Lab(
            name=header.name,
            domain=domain.rstrip(".").lower(),
            source=Path(self.filename),
            dad=lab_dad,
            backend=header.backend,
            networks=self.networks,
            nodes=nodes,
        )

    # -- pass 1 and 2: each section's entries -----------------------------------------

    def load_networks(self, raw: dict[str, Any]) -> dict[str, NetworkSpec]:
        networks: dict[str, NetworkSpec] = {}
        for name, body in raw.items():
            path = ("networks", name)
            if not IFNAME.match(name):
                self.problem(
                    path, f"invalid network name {name!r}: it names a bridge, {_IFNAME_RULE}"
                )
            spec = validate(NetworkSpec, body, path, self.source, self.problems)
            if spec is not None:
                networks[name] = spec
        return networks

    def load_profiles(self, raw: dict[str, Any]) -> dict[str, ProfileSpec | None]:
        # A profile that failed validation maps to None: nodes using it are
        # skipped quietly, its own problems already say what is wrong.
        profiles: dict[str, ProfileSpec | None] = {}
        for name, body in raw.items():
            path = ("profiles", name)
            spec = validate(ProfileSpec, body, path, self.source, self.problems)
            if spec is not None:
                self.check_entry(spec, path)
            profiles[name] = spec
        return profiles

    def check_entry(self, spec: ProfileSpec, path: Path_) -> None:
        """Meaning checks for a profile or node entry, at the lines it was written."""
        if spec.kind is not None and spec.kind not in SUPPORTED_KINDS:
            self.problem(
                (*path, "kind"),
                f"kind {spec.kind!r} is not yet supported by this version of palmnet "
                f"(supported: {', '.join(SUPPORTED_KINDS)})",
            )
        for ifname, iface in spec.interfaces.items():
            ipath = (*path, "interfaces", ifname)
            if not IFNAME.match(ifname):
                why = "longer than 15 characters" if len(ifname) > 15 else "not a valid name"
                self.problem(
                    ipath, f"interface name {ifname!r} is {why} (kernel names: {_IFNAME_RULE})"
                )
            if iface.network not in self.networks:
                known = ", ".join(self.networks) or "none: add a 'networks:' section"
                self.problem(
                    (*ipath, "network"), f"unknown network {iface.network!r} (known: {known})"
                )
            if iface.ra and not any(a.network.prefixlen == 64 for a in iface.ipv6):
                self.problem((*ipath, "ra"), "ra: true needs a /64 in ipv6 to advertise")

    # -- pass 3: overlay, count, names -----------------------------------------------

    def load_nodes(self, raw: dict[str, Any], lab_dad: bool) -> dict[str, Node]:
        nodes: dict[str, Node] = {}
        # copy name -> (entry name, count, line) of the entry that made it first
        owners: dict[str, tuple[str, int | None, int]] = {}
        for entry, body in raw.items():
            path = ("nodes", entry)
            line = self.source.line(path)
            spec = validate(NodeSpec, body, path, self.source, self.problems)
            count = spec.count if spec is not None else _raw_count(body)
            names = self.copy_names(entry, count, path)
            self.check_clashes(entry, count, line, names, owners)
            if spec is None:
                continue
            self.check_entry(spec, path)
            layers = self.layers(spec, path)
            if layers is None:
                continue
            merged = overlay(layers, lab_dad)
            if merged.kind not in SUPPORTED_KINDS:
                continue  # reported where the kind was written
            uci = self.uci_folder(merged.uci, merged.kind, path)
            self.check_routing(merged, path)
            self.check_delegate(merged, path)
            for name in names:
                nodes[name] = Node(
                    name=name,
                    kind=cast(SupportedKind, merged.kind),
                    interfaces=dict(merged.interfaces),
                    service=merged.service,
                    dad=merged.dad,
                    uci=uci,
                    routes=tuple(merged.routes),
                    routing=merged.routing,
                    delegate=merged.delegate,
                    image=merged.image,
                    security_nesting=merged.security_nesting,
                    security_privileged=merged.security_privileged,
                    template=entry,
                    line=line,
                )
        return nodes

    def check_routing(self, merged: Any, path: Path_) -> None:
        """Options that the chosen protocol has, on interfaces the node has."""
        routing = merged.routing
        if routing is None:
            return
        rpath = (*path, "routing")
        if merged.kind == "host":
            self.problem(rpath, "routing: is for kind router or openwrt, not host")
        if routing.bfd and routing.protocol == "babel":
            self.problem(
                (*rpath, "bfd"),
                "BIRD 2.0.12 has no BFD for Babel (BFD works with ripng and ospf3)",
            )
        allowed = PROTOCOL_OPTIONS[routing.protocol]
        specs = {"defaults": routing.defaults, **(routing.interfaces or {})}
        for name, spec in specs.items():
            where = (*rpath, "defaults") if name == "defaults" else (*rpath, "interfaces", name)
            if name != "defaults" and name not in merged.interfaces and name != "br-lan":
                known = ", ".join(merged.interfaces) or "none"
                self.problem(where, f"no interface {name!r} on this node (interfaces: {known})")
            for key in spec.model_fields_set - allowed:
                self.problem(
                    (*where, key),
                    f"{key!r} is not an option of {routing.protocol} "
                    f"(valid: {', '.join(sorted(allowed))})",
                )

    def check_delegate(self, merged: Any, path: Path_) -> None:
        spec = merged.delegate
        if merged.kind == "isp" and spec is None:
            self.problem(path, "an isp needs `delegate: {pool: PREFIX, length: N}`")
        if spec is None:
            return
        dpath = (*path, "delegate")
        if merged.kind != "isp":
            self.problem(dpath, f"delegate: is for kind isp, not {merged.kind}")
        if spec.length <= spec.pool.prefixlen:
            self.problem(
                (*dpath, "length"),
                f"length {spec.length} must be longer than the pool's /{spec.pool.prefixlen}",
            )
        if not spec.t1 <= spec.t2 <= spec.preferred <= spec.valid:
            self.problem(dpath, "lifetimes must satisfy t1 <= t2 <= preferred <= valid")

    def uci_folder(self, uci: str | None, kind: str, path: Path_) -> Path | None:
        """`uci:` names a folder of UCI files next to the lab file, for openwrt nodes."""
        if uci is None:
            return None
        if kind != "openwrt":
            self.problem((*path, "uci"), f"uci: is for kind openwrt, not {kind}")
            return None
        folder = Path(self.filename).parent / uci
        if not folder.is_dir():
            self.problem((*path, "uci"), f"no folder {str(folder)!r} (relative to the lab file)")
            return None
        return folder

    def layers(self, spec: NodeSpec, path: Path_) -> list[ProfileSpec] | None:
        """Profiles in order then the node itself; None if a profile is missing or broken."""
        layers: list[ProfileSpec] = []
        ok = True
        for index, pname in enumerate(profile_names(spec, self.profiles)):
            if pname not in self.profiles:
                known = ", ".join(self.profiles) or "none: add a 'profiles:' section"
                self.problem(
                    (*path, "profiles", index), f"unknown profile {pname!r} (known: {known})"
                )
                ok = False
                continue
            profile = self.profiles[pname]
            if profile is None:
                ok = False
            else:
                layers.append(profile)
        return [*layers, spec] if ok else None

    def copy_names(self, entry: str, count: int | None, path: Path_) -> list[str]:
        """The node names an entry makes; an invalid name is reported once per entry."""
        names = [entry] if count is None else [f"{entry}{i}" for i in range(1, count + 1)]
        bad = [n for n in names if not NODE_NAME.match(n)]
        if (bad and count is None) or not _NODE_PREFIX.match(entry):
            self.problem(path, f"invalid node name {entry!r}: {_NODE_NAME_RULE}")
        elif bad:
            self.problem(
                path, f"invalid node name {bad[0]!r} (from count: {count}): {_NODE_NAME_RULE}"
            )
        return names

    def check_clashes(
        self,
        entry: str,
        count: int | None,
        line: int,
        names: list[str],
        owners: dict[str, tuple[str, int | None, int]],
    ) -> None:
        reported: set[str] = set()
        for name in names:
            other = owners.get(name)
            if other is None:
                owners[name] = (entry, count, line)
                continue
            other_entry, other_count, other_line = other
            if other_entry in reported:
                continue
            reported.add(other_entry)
            if other_count is None:
                theirs = f"node '{other_entry}' at line {other_line}"
            else:
                theirs = (
                    f"'{name}' made by count: {other_count} of node '{other_entry}' "
                    f"at line {other_line}"
                )
            if count is None:
                message = f"node '{name}' clashes with {theirs}"
            else:
                message = f"count: {count} makes '{name}', which clashes with {theirs}"
            self.problem(("nodes", entry), message)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    # A section of the wrong type is reported by the header's validation.
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _domain(data: dict[str, Any], name: Any) -> str | None:
    """The lab's DNS domain: `domain:` if a string, else `NAME.lab`; None if unknown."""
    domain = data.get("domain")
    if domain is not None:
        return domain if isinstance(domain, str) else None  # type reported by the header
    return f"{name}.lab" if isinstance(name, str) else None


def _raw_count(body: Any) -> int | None:
    """`count:` of an entry that failed validation, if usable for name checks."""
    if not isinstance(body, dict) or "count" not in body:
        return None
    count = body["count"]
    if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
        return count
    return 0  # unusable: makes no names, so no name checks
