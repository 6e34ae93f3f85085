"""Profile overlay, as `lxc launch -p default -p extbridge` does it.

Profiles apply in order, then the node's own keys: a later layer overrides
the keys it names. Interfaces merge by name, and an interface named again in
a later layer replaces the earlier definition entirely (LXD devices behave
that way: you cannot half-inherit a NIC). `dad` follows the same rule and
falls back to the lab's value.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from palmnet.topology.model import (
    DelegateSpec,
    DockerSpec,
    InterfaceSpec,
    Nat64Spec,
    NodeKind,
    NodeSpec,
    ProfileSpec,
    RouteSpec,
    RoutingSpec,
    Service,
)


@dataclass
class Overlaid:
    """A node entry's keys after overlay, before `count:` expansion."""

    kind: NodeKind = "host"
    interfaces: dict[str, InterfaceSpec] = field(default_factory=dict)
    service: Service | None = None
    dad: bool = True
    uci: str | None = None
    routes: list[RouteSpec] = field(default_factory=list)
    routing: RoutingSpec | None = None
    delegate: DelegateSpec | None = None
    nat64: Nat64Spec | None = None
    clat: bool = False
    image: str | None = None
    member: str | None = None
    security_nesting: bool = False
    security_privileged: bool = False
    docker: list[DockerSpec] = field(default_factory=list)
    docker_real_source: bool = False
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> layer path


# Keys a later layer replaces whole when it names them (interfaces merge by name).
_SCALAR_KEYS = (
    "kind",
    "service",
    "dad",
    "uci",
    "routes",
    "routing",
    "delegate",
    "nat64",
    "clat",
    "image",
    "member",
    "security_nesting",
    "security_privileged",
    "docker",
    "docker_real_source",
)


def profile_names(node: NodeSpec, known: Collection[str]) -> list[str]:
    """The profiles a node uses: its `profiles:` list, else `default` if the lab has one."""
    if "profiles" in node.model_fields_set:
        return list(node.profiles)
    return ["default"] if "default" in known else []


Layer = tuple[tuple[str, ...], ProfileSpec]  # (("profiles", "web"), its spec)


def overlay(layers: list[Layer], lab_dad: bool) -> Overlaid:
    """Apply `layers` (profiles in order, then the node itself) over the defaults,
    remembering which layer each key and interface came from."""
    result = Overlaid(dad=lab_dad)
    for where, layer in layers:
        for key in _SCALAR_KEYS:
            value = getattr(layer, key)
            if value is not None:
                setattr(result, key, list(value) if key == "routes" else value)
                result.origins[key] = where
        result.interfaces.update(layer.interfaces)
        result.origins.update({f"interfaces.{name}": where for name in layer.interfaces})
    return result
