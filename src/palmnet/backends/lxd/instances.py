"""A node as an LXD system container: its config, and the calls that make, start,
stop and delete many of them at once.

- Name: `LAB-NODE` (unique on the machine, readable in `lxc ls`); the
  container's hostname is the node's own name (`lxc.uts.name`).
- Every NIC is `nictype: bridged` on the lab's bridge with the plan's MAC
  pinned (`hwaddr`), so the kernel's SLAAC addresses are the ones
  `palmnet plan` prints.
- The node's IPv6 settings (plan/sysctls.py, the same as a namespace node's)
  are `linux.sysctl.*` keys: LXC writes them when the container starts, before
  its init runs, for `all`, `default` and each NIC.
- Each NIC's host end is named by `port_name` (`host_name`), so link
  failures find it.
- Image: the node's `image:`, else
  PALMNET_LXD_HOST_IMAGE / PALMNET_LXD_ROUTER_IMAGE, else palmnet-busybox for
  plain hosts and palmnet-router for routers and hosts that run daemons.
- `security.privileged` / `security.nesting` from the node's keys; a node with
  `docker:` starts from palmnet-docker with the keys Docker needs (docker.py).
- `boot.autostart: false`: after a reboot a lab is down (its journal on /run
  is gone), its containers stay stopped until `palmnet down` removes them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from palmnet.backends.lxd import docker, hostpid, networks, tags
from palmnet.backends.lxd.client import Lxd, OperationFailed
from palmnet.backends.lxd.images import (
    DEFAULT_DOCKER_IMAGE,
    DEFAULT_HOST_IMAGE,
    DEFAULT_ROUTER_IMAGE,
    OPENWRT,
    OPENWRT_DEVICES,
)
from palmnet.errors import LabError
from palmnet.plan import sysctls
from palmnet.plan.model import InterfacePlan, NodePlan, Plan
from palmnet.services.registry import services_for

BUSY_TIMEOUT = 30.0


def instance_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def is_router(node: NodePlan) -> bool:
    return node.forwarding or node.sends_ra


def image_of(node: NodePlan) -> str:
    """The node's `image:`, else palmnet's router image for routers and for hosts that
    run daemons (rdnssd, dhcpcd, the web server), else the 1 MB busybox image."""
    image = node.option("image")
    if image:
        return image
    if node.docker is not None:
        return DEFAULT_DOCKER_IMAGE
    if is_router(node) or services_for(node):
        return os.environ.get("PALMNET_LXD_ROUTER_IMAGE", DEFAULT_ROUTER_IMAGE)
    return os.environ.get("PALMNET_LXD_HOST_IMAGE", DEFAULT_HOST_IMAGE)


def port_name(lab: str, node: str, interface: str) -> str:
    """The host end of a node's NIC (`host_name`): 'pv' + 11 hex digits of a hash of
    (lab, node, interface), unique on the machine, 13 bytes. Links fail here."""
    return "pv" + hashlib.sha256(f"{lab}/{node}/{interface}".encode()).hexdigest()[:11]


def node_sysctls(node: NodePlan) -> dict[str, str]:
    """linux.sysctl.* keys: the plan's node settings (plan/sysctls.py), for all, default
    and every NIC (a NIC exists before LXC writes them, so `default` alone would miss
    it), then each NIC's own."""
    out = {
        "linux.sysctl." + key.replace("/", "."): str(value)
        for key, value in sysctls.node_sysctls(node).items()
        if key not in sysctls.BRIDGE_NF  # written from the host after start (inside.py)
    }
    conf = sysctls.conf_values(forwarding=node.forwarding, dad=node.dad)
    for iface in node.veths:
        for key, value in conf.items():
            out[f"linux.sysctl.net.ipv6.conf.{iface.name}.{key}"] = str(value)
        for key, value in sysctls.interface_sysctls(iface).items():
            out["linux.sysctl." + key.replace("/", ".")] = str(value)
        if sysctls.needs_dad_timer(iface):
            key = f"linux.sysctl.net.ipv6.neigh.{iface.name}.retrans_time_ms"
            out[key] = str(sysctls.DAD_RETRANS_MS)
    return out


def _nic(plan: Plan, node: NodePlan, iface: InterfacePlan) -> dict[str, str]:
    """A node's NIC: bridged on the lab's bridge, or on an external network the
    field notes' extbridge profile (`nictype: bridged, parent: br0`) or a macvlan
    (bridge mode, LXD's default) on the host interface the file names."""
    ext = plan.network(iface.network).external
    nic = {"type": "nic", "name": iface.name, "hwaddr": iface.mac}
    if ext is not None and ext.kind == "macvlan":
        return {**nic, "nictype": "macvlan", "parent": ext.parent}
    parent = ext.parent if ext is not None else networks.bridge_name(plan.lab, iface.network)
    return {
        **nic,
        "nictype": "bridged",
        "parent": parent,
        "host_name": port_name(plan.lab, node.name, iface.name),
    }


def instance_config(
    plan: Plan, node: NodePlan, profile: str, image_os: str = "", mtu: int | None = None
) -> dict[str, Any]:
    """The container of a node. An OpenWrt image (os: OpenWrt, set by `palmnet image
    import` when the rootfs has /etc/openwrt_release) runs privileged with the device
    nodes it needs made by LXD before its init, as the community init.sh did by hand."""
    devices: dict[str, dict[str, str]] = {}
    if image_os == OPENWRT:
        devices.update({k: dict(v) for k, v in OPENWRT_DEVICES.items()})
    for iface in node.veths:
        devices[iface.name] = _nic(plan, node, iface)
        if mtu and plan.network(iface.network).external is None:
            devices[iface.name]["mtu"] = str(mtu)  # a lab link: fits the tunnel
    devices.update(docker.devices(node))
    config = {
        **tags.lab_config(plan.lab, node=node.name, kind=node.kind),
        "raw.lxc": f"lxc.uts.name = {node.name}",
        "boot.autostart": "false",
        **node_sysctls(node),
    }
    if node.option("security.privileged") == "true" or image_os == OPENWRT:
        config["security.privileged"] = "true"
    if node.option("security.nesting") == "true":
        config["security.nesting"] = "true"
    config.update(docker.config(node))
    return {
        "name": instance_name(plan.lab, node.name),
        "type": "container",
        "source": {"type": "image", "alias": image_of(node)},
        "profiles": [profile],
        "config": config,
        "devices": devices,
    }


def lab_instances(lxd: Lxd, lab: str) -> dict[str, dict[str, Any]]:
    """The lab's containers by node name (found by tag, not by name)."""
    out = {}
    for inst in lxd.instances(recursion=1):
        if tags.lab_of(inst) == lab:
            node = (inst.get("config") or {}).get(tags.NODE) or inst["name"]
            out[str(node)] = inst
    return out


def create(
    lxd: Lxd,
    plan: Plan,
    nodes: Sequence[NodePlan],
    profile: str,
    where: dict[str, str] | None = None,
    mtu: int | None = None,
) -> None:
    """Create containers at once; on a cluster each on its member (`where`: node ->
    member, sent as `target`)."""
    from palmnet.backends.lxd.images import image_os

    where = where or {}
    os_of = {alias: image_os(lxd, alias) for alias in {image_of(n) for n in nodes}}
    lxd.run_all(
        (
            "post",
            "instances",
            f"node {n.name}" + (f" on {where[n.name]}" if n.name in where else ""),
            {
                "json": instance_config(plan, n, profile, os_of[image_of(n)], mtu),
                **({"params": {"target": where[n.name]}} if n.name in where else {}),
            },
        )
        for n in nodes
    )


def set_state(lxd: Lxd, names: Iterable[tuple[str, str]], action: str, timeout: int = 30) -> None:
    """Start/stop (force) many instances at once; names: (what, instance)."""
    body = {"action": action, "timeout": timeout, "force": action != "start"}
    lxd.run_all(
        ("put", f"instances/{inst}/state", f"{what}: {action}", {"json": body})
        for what, inst in names
    )


def start(lxd: Lxd, lab: str, nodes: Sequence[NodePlan]) -> None:
    """Start nodes; a failure carries LXD's reason and the tail of the container's log."""

    try:
        set_state(lxd, [(f"node {n.name}", instance_name(lab, n.name)) for n in nodes], "start")
    except OperationFailed as exc:
        raise OperationFailed(f"{exc}{_console_tail(lxd, lab, nodes)}") from None


def _console_tail(lxd: Lxd, lab: str, nodes: Sequence[NodePlan]) -> str:
    """lxc.log lines that say why, for nodes that did not start."""
    lines = []
    for n in nodes:
        inst = instance_name(lab, n.name)
        try:
            status = lxd.get(f"instances/{inst}/state")["status"]
        except Exception:
            continue
        if status == "Running":
            continue
        try:
            text = lxd.api.instances[inst].logs["lxc.log"].get().text
        except Exception:
            continue
        # The container's own first errors say why ("Failed to exec /sbin/init");
        # the daemon's lines after them are consequences.
        errors = [
            " - ".join(ln.split(" - ")[2:]) or ln
            for ln in text.splitlines()
            if ln.startswith(f"lxc {inst} ") and " ERROR " in ln
        ]
        if errors:
            lines.append(f"\n  {n.name}: " + " | ".join(errors[:2]))
    return "".join(lines)


def delete(lxd: Lxd, names: Iterable[str]) -> None:
    """Stop (force) and delete instances, all at once."""
    names = list(names)
    running = []
    present = []
    for name in names:
        try:
            state = lxd.get(f"instances/{name}")
        except lxd.NotFound:
            continue
        present.append(name)
        if state.get("status") != "Stopped":
            running.append(name)
    set_state(lxd, [(n, n) for n in running], "stop")
    left = present
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.05
    while True:
        try:
            lxd.run_all(("delete", f"instances/{n}", f"delete {n}", {}) for n in left)
            return
        except OperationFailed as exc:
            # After a failed start LXD finishes its own clean-up under an internal
            # "stop" lock that no API operation or event shows: the delete is refused
            # as busy until it lets go, so it is tried again (bounded).
            if "busy" not in str(exc) or time.monotonic() > deadline:
                raise
        left = [n for n in left if lxd.exists(f"instances/{n}")]
        if not left:
            return
        time.sleep(pause)  # poll: LXD releases that lock with no event to wait on
        pause = min(pause * 2, 0.5)


def init_pid(lxd: Lxd, name: str, state: dict[str, Any] | None = None) -> int:
    """The host pid of a running instance's init (hostpid.py), 0 if not running.
    An instance that runs on a cluster member on another machine is an error that
    says so: palmnet configures a node from the machine that holds it."""
    state = lxd.get(f"instances/{name}/state") if state is None else state
    reported = int(state.get("pid") or 0)
    if not reported or state.get("status") != "Running":
        return 0
    pid = hostpid.host_init(name, reported)
    if not pid:
        where = lxd.get(f"instances/{name}").get("location") or "its member"
        raise LabError(
            f"{name} runs on LXD cluster member {where}, not on this machine: palmnet "
            "reaches a node through its namespaces, so the member must be on the "
            "machine palmnet runs on (nested or local members)"
        )
    return pid
