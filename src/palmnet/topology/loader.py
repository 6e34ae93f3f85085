"""Lab file -> validated, resolved `Lab` (DESIGN.md §3).

Three passes over the parsed file, collecting every problem before raising:
1. shape: each entry validated by its pydantic model (types, unknown keys);
2. meaning: names, references to networks and profiles, supported kinds,
   `ra:` needing a /64, what BIRD and kea accept (checks.py) -- checked where
   the file says it, so a mistake in a profile points at the profile, once,
   not at every node that uses it;
3. resolution: profile overlay, `count:` expansion (its size checked against
   limits.py before any copy is made), clashing node names, static addresses
   held twice (conflicts.py).
All problems are raised together as one `TopologyError` (an `InputError`).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path
from typing import Any, cast

from palmnet.errors import InputError
from palmnet.topology.checks import IFNAME_RULE, check_layer, check_network, check_node
from palmnet.topology.conflicts import Entry, check_statics
from palmnet.topology.describe import shown
from palmnet.topology.docker import container_problems, parse_volume
from palmnet.topology.limits import MAX_FILE_BYTES, MAX_ITEMS, MAX_NODES, SHOWN_CHARS
from palmnet.topology.model import (
    DOMAIN,
    IFNAME,
    LAB_NAME,
    NODE_NAME,
    PROFILE_NAME,
    SUPPORTED_KINDS,
    UCI_FILES,
    Lab,
    LabHeader,
    NetworkSpec,
    Node,
    NodeSpec,
    ProfileSpec,
    SupportedKind,
)
from palmnet.topology.overlay import Layer, Overlaid, overlay, profile_names
from palmnet.topology.ports import check_bridge_ports
from palmnet.topology.problems import Problem, TopologyError
from palmnet.topology.validation import validate
from palmnet.topology.xlat import check_clat
from palmnet.topology.yaml_source import Path_, Source, format_path, parse_yaml

_LAB_NAME_RULE = "1-12 characters: a lowercase letter, then lowercase letters, digits or '-'"
_NODE_NAME_RULE = (
    "a node name is a DNS label: up to 32 lowercase letters, digits and '-', "
    "starting with a letter and not ending with '-'"
)
DNS_NAME_MAX = 253  # RFC 1035, written without the final dot
# What every node name made from an entry starts with, whatever its count.
_NODE_PREFIX = re.compile(r"[a-z][a-z0-9-]*")


def read_lab_file(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    """The text of a lab (or UCI) file, at most `limit` bytes; one that cannot be
    read is an `InputError`. Reading stops at the limit, so /dev/zero is refused too."""
    filename = str(path)
    if not filename:  # Path("") is ".", the current folder
        raise InputError("the file name is empty: give the path of a lab file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError("no such file", file=filename) from None
    except IsADirectoryError:
        raise InputError("a folder, not a file", file=filename) from None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read: {getattr(exc, 'strerror', None) or exc}", file=filename
        ) from None
    if len(data) > limit:
        raise InputError(f"larger than {limit:,} bytes (the limit)", file=filename)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError("not a UTF-8 text file", file=filename, line=line) from None


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
        if isinstance(name, str) and not LAB_NAME.fullmatch(name):
            self.problem(("name",), f"invalid lab name {shown(name)}: {_LAB_NAME_RULE}")
        domain = _domain(data, name)
        if "domain" in data and domain is not None and not DOMAIN.fullmatch(domain):
            self.problem(("domain",), f"invalid domain {shown(domain)}: not a valid DNS name")
        elif (
            domain is not None
            and isinstance(name, str)
            and LAB_NAME.fullmatch(name)
            and not DOMAIN.fullmatch(domain)
        ):
            self.problem(
                ("name",),
                f"the default domain {shown(domain)} made from the lab name is not a valid "
                "DNS name (a label cannot end with '-'): rename the lab or set domain:",
            )
        lab_dad = header.dad if header is not None else True
        self.backend = header.backend if header is not None else None

        self.networks = self.load_networks(_section(data, "networks"))
        self.profiles = self.load_profiles(_section(data, "profiles"))
        valid = isinstance(domain, str) and DOMAIN.fullmatch(domain)
        self.domain = domain.rstrip(".") if valid and domain else ""  # for names' length
        nodes = self.load_nodes(_section(data, "nodes"), lab_dad)
        if header is not None and header.backend == "netns":
            self.cluster_keys_on_netns(header, nodes)
        if self.problems or header is None or domain is None:
            raise self.fail()
        return Lab(
            name=header.name,
            domain=domain.rstrip(".").lower(),
            source=Path(self.filename),
            dad=lab_dad,
            backend=header.backend,
            placement=header.placement,
            networks=self.networks,
            nodes=nodes,
            lines=self.source,
        )

    def cluster_keys_on_netns(self, header: LabHeader, nodes: dict[str, Node]) -> None:
        """`placement:` and `member:` place containers on an LXD cluster's members: a
        lab that says `backend: netns` runs on this machine only."""
        why = "places nodes on an LXD cluster's members (backend lxd); this lab says backend: netns"
        if header.placement is not None:
            self.problem(("placement",), f"{header.placement!r} {why}")
        said = set()
        for node in nodes.values():
            where = node.origins.get("member", ("nodes", node.template))
            if node.member is not None and where not in said:
                said.add(where)
                self.problem((*where, "member"), f"{shown(node.member)} {why}")

    # -- pass 1 and 2: each section's entries -----------------------------------------

    def load_networks(self, raw: dict[str, Any]) -> dict[str, NetworkSpec]:
        if len(raw) > MAX_ITEMS:
            # Each network is a bridge `up` makes: counted before any is validated.
            # (Profiles make nothing themselves: their keys count in the nodes using them.)
            self.problem(
                ("networks",),
                f"the lab would have more than {MAX_ITEMS:,} networks, nodes, interfaces, "
                f"static addresses and routes (the limit); networks: has {len(raw):,}",
            )
            raise self.fail()
        networks: dict[str, NetworkSpec] = {}
        for name, body in raw.items():
            path = ("networks", name)
            if not IFNAME.fullmatch(name):
                self.problem(
                    path, f"invalid network name {shown(name)}: it names a bridge, {IFNAME_RULE}"
                )
            spec = validate(NetworkSpec, body, path, self.source, self.problems)
            if spec is not None:
                check_network(spec, path, self.problem)
            # A network whose own keys are wrong still exists for the nodes on it
            # (its problem is said once, at its line).
            networks[name] = spec if spec is not None else NetworkSpec()
        return networks

    def load_profiles(self, raw: dict[str, Any]) -> dict[str, ProfileSpec | None]:
        # A profile that failed validation maps to None: nodes using it are
        # skipped quietly, its own problems already say what is wrong.
        profiles: dict[str, ProfileSpec | None] = {}
        for name, body in raw.items():
            path = ("profiles", name)
            if not PROFILE_NAME.fullmatch(name):
                self.problem(
                    path,
                    f"invalid profile name {shown(name)}: 1-64 printable characters, "
                    "no spaces or '/'",
                )
            spec = validate(ProfileSpec, body, path, self.source, self.problems)
            if spec is not None:
                self.check_entry(spec, path)
            profiles[name] = spec
        return profiles

    def check_entry(self, spec: ProfileSpec, path: Path_) -> None:
        """Meaning checks for a profile or node entry, at the lines it was written."""
        check_layer(spec, path, self.networks, self.problem)

    # -- pass 3: overlay, count, names -----------------------------------------------

    def load_nodes(self, raw: dict[str, Any], lab_dad: bool) -> dict[str, Node]:
        nodes: dict[str, Node] = {}
        # copy name -> (entry name, count, line) of the entry that made it first
        owners: dict[str, tuple[str, int | None, int]] = {}
        entries: list[Entry] = []
        items = len(self.networks)  # each a bridge
        for entry, body in raw.items():
            path = ("nodes", entry)
            line = self.source.line(path)
            spec = validate(NodeSpec, body, path, self.source, self.problems)
            count = spec.count if spec is not None else _raw_count(body)
            if not self.fits(path, count, len(owners)):
                break  # the lab is already too large: more names would only cost
            names = self.copy_names(entry, count, path)
            self.check_clashes(entry, count, line, names, owners)
            if spec is None:
                continue
            self.check_entry(spec, path)
            merged = self.merged(spec, path, lab_dad)
            if merged is None:
                continue
            items += len(names) * _items(merged)
            if items > MAX_ITEMS:
                self.problem(
                    path,
                    f"the lab would have more than {MAX_ITEMS:,} networks, nodes, interfaces, "
                    f"static addresses and routes after count: (the limit); this entry makes "
                    f"{len(names) * _items(merged):,}",
                )
                break
            entries.append(Entry(names, count, merged))
            uci = self.uci_folder(merged.uci, merged.kind, path)
            check_node(merged, path, self.problem)
            volumes = self.docker_volumes(merged)
            template = self.node(entry, line, merged, uci, volumes)
            for name in names:
                nodes[name] = template.model_copy(update={"name": name})
        check_statics(entries, self.source.line, self.problem)
        check_clat(nodes, self.problem)
        check_bridge_ports(entries, self.problem)
        return nodes

    def fits(self, path: Path_, count: int | None, made: int) -> bool:
        """`count:` within the node limit, checked before any copy is named."""
        if count is not None and count > MAX_NODES:
            self.problem(
                (*path, "count"),
                f"count: {count:,} is more than {MAX_NODES:,} nodes (the limit of a lab)",
            )
            return False
        if made + (count or 1) > MAX_NODES:
            self.problem(
                path,
                f"the lab would have more than {MAX_NODES:,} nodes (the limit): "
                f"{made:,} before this entry",
            )
            return False
        return True

    def merged(self, spec: NodeSpec, path: Path_, lab_dad: bool) -> Overlaid | None:
        """The entry with its profiles overlaid; None if a profile or the kind is bad."""
        layers = self.layers(spec, path)
        if layers is None:
            return None
        merged = overlay(layers, lab_dad)
        if merged.kind not in SUPPORTED_KINDS:
            return None  # reported where the kind was written
        return merged

    def node(
        self, entry: str, line: int, merged: Overlaid, uci: Path | None, volumes: dict[str, Path]
    ) -> Node:
        """The node an entry makes (its copies differ only in name)."""
        return Node(
            name=entry,
            kind=cast(SupportedKind, merged.kind),
            interfaces=dict(merged.interfaces),
            service=merged.service,
            dad=merged.dad,
            uci=uci,
            routes=tuple(merged.routes),
            routing=merged.routing,
            delegate=merged.delegate,
            nat64=merged.nat64,
            clat=merged.clat,
            image=merged.image,
            member=merged.member,
            security_nesting=merged.security_nesting,
            security_privileged=merged.security_privileged,
            docker=tuple(merged.docker),
            docker_volumes=volumes,
            docker_real_source=merged.docker_real_source,
            template=entry,
            line=line,
            origins=dict(merged.origins),
        )

    def docker_volumes(self, merged: Overlaid) -> dict[str, Path]:
        """`docker:` is for the LXD backend; each volume's folder exists next to the lab
        file (it is mounted read-only into the node, then into the container)."""
        if not merged.docker:
            return {}
        where: tuple[str, ...] = merged.origins.get("docker", ())
        if self.backend != "lxd":
            self.problem(
                (*where, "docker"),
                "docker: needs `backend: lxd` (Docker runs inside the node's LXD container; "
                f"the {self.backend or 'netns'} backend has no dockerd per node)",
            )
        if merged.kind != "host":
            self.problem(
                (*where, "docker"),
                f"docker: is for kind host, not {merged.kind} (a docker node starts from "
                "palmnet-docker, which has no router daemons)",
            )
        folders: dict[str, Path] = {}
        names: dict[str, int] = {}
        for index, spec in enumerate(merged.docker):
            at: tuple[str | int, ...] = (*where, "docker", index)
            if spec.name in names:
                self.problem(
                    (*at, "name"), f"{shown(spec.name)} is also docker[{names[spec.name]}]"
                )
            names.setdefault(spec.name, index)
            for keys, message in container_problems(spec):
                self.problem((*at, *keys), message)
            for vindex, text in enumerate(spec.volumes):
                with contextlib.suppress(ValueError):
                    folder = parse_volume(text)[0]
                    path = Path(self.filename).parent / folder
                    if path.is_dir():
                        folders[folder] = path.resolve()
                    else:
                        self.problem(
                            (*at, "volumes", vindex),
                            f"no folder {shown(str(path))} (relative to the lab file)",
                        )
        return folders

    def uci_folder(self, uci: str | None, kind: str, path: Path_) -> Path | None:
        """`uci:` names a folder of UCI files next to the lab file, for openwrt nodes:
        a relative path that stays in the lab file's folder (README: the folder is
        the router's /etc/config, beside its lab), each file in it one `plan` can read."""
        if uci is None:
            return None
        where = (*path, "uci")
        if kind != "openwrt":
            self.problem(where, f"uci: is for kind openwrt, not {kind}")
            return None
        base = Path(self.filename).parent
        folder = base / uci
        try:
            found = folder.is_dir()
            inside = folder.resolve().is_relative_to(base.resolve())
        except (OSError, ValueError, RuntimeError):
            found = inside = False  # a name too long or not a path: reported as not found
        if Path(uci).is_absolute() or (found and not inside):
            self.problem(
                where,
                f"uci: {shown(uci)} is outside the lab file's folder: name a folder next to "
                "the lab file, by a relative path (e.g. uci: router)",
            )
            return None
        if not found:
            self.problem(where, f"no folder {shown(str(folder))} (relative to the lab file)")
            return None
        try:
            os.stat(os.path.join(folder, "."))  # a folder one may not enter: said once
        except OSError as exc:
            self.problem(where, f"cannot read the folder {shown(uci)}: {exc.strerror}")
            return None
        for name in UCI_FILES:
            why = _uci_file_problem(folder / name, _uci_name(uci, name))
            if why is not None:
                self.problem(where, why)
        return folder

    def layers(self, spec: NodeSpec, path: Path_) -> list[Layer] | None:
        """Profiles in order then the node itself; None if a profile is missing or broken."""
        layers: list[Layer] = []
        ok = True
        for index, pname in enumerate(profile_names(spec, self.profiles)):
            if pname not in self.profiles:
                known = ", ".join(self.profiles) or "none: add a 'profiles:' section"
                self.problem(
                    (*path, "profiles", index),
                    f"unknown profile {shown(pname)} (known: {known})",
                )
                ok = False
                continue
            profile = self.profiles[pname]
            if profile is None:
                ok = False
            else:
                layers.append((("profiles", pname), profile))
        return [*layers, (cast(tuple[str, ...], path), spec)] if ok else None

    def copy_names(self, entry: str, count: int | None, path: Path_) -> list[str]:
        """The node names an entry makes; an invalid name is reported once per entry."""
        names = [entry] if count is None else [f"{entry}{i}" for i in range(1, count + 1)]
        longest = max(names, key=len, default="")
        fqdn = len(longest) + 1 + len(self.domain)
        if self.domain and fqdn > DNS_NAME_MAX:
            self.problem(
                path,
                f"{longest}.DOMAIN is a {fqdn}-character DNS name: at most {DNS_NAME_MAX} "
                "(shorten the domain or the name)",
            )
        bad = [n for n in names if not NODE_NAME.fullmatch(n)]
        if (bad and count is None) or not _NODE_PREFIX.fullmatch(entry):
            self.problem(path, f"invalid node name {shown(entry)}: {_NODE_NAME_RULE}")
        elif bad:
            self.problem(
                path,
                f"invalid node name {shown(bad[0])} (from count: {count}): {_NODE_NAME_RULE}",
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


def _items(merged: Overlaid) -> int:
    """What one copy of an entry makes: itself, its interfaces, addresses and routes."""
    addresses = sum(len(i.ipv6) + len(i.ipv4) for i in merged.interfaces.values())
    return 1 + len(merged.interfaces) + addresses + len(merged.routes)


def _uci_name(uci: str, name: str) -> str:
    """A UCI file as the user knows it: `'router/network'` (its file name kept whole)."""
    path = f"{uci.rstrip('/')}/{name}"
    return shown(path) if len(path) <= SHOWN_CHARS else f"{name} in {shown(uci)}"


def _uci_file_problem(path: Path, shown_as: str) -> str | None:
    """Why `plan` cannot use the UCI file at `path`; None if it can, or if there is none
    (the stock file is used)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"{shown_as} is a symbolic link to nothing"
        return None
    except OSError as exc:
        return f"cannot read {shown_as}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        what = _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")
        what += " (by a symbolic link)" if path.is_symlink() else ""
        return (
            f"{shown_as} is {what}: a UCI file is a regular file "
            f"(without one the node takes OpenWrt's stock {path.name})"
        )
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"cannot read {shown_as}: {exc.strerror or exc}"
    return None


_FILE_TYPES = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _raw_count(body: Any) -> int | None:
    """`count:` of an entry that failed validation, if usable for name checks."""
    if not isinstance(body, dict) or "count" not in body:
        return None
    count = body["count"]
    if isinstance(count, int) and not isinstance(count, bool) and count >= 1:
        return count
    return 0  # unusable: makes no names, so no name checks
