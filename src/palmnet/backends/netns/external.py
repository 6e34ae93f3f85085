"""External networks on the netns backend: node interfaces on the machine's own LAN.

`bridge: BR` is LXD's `nictype: bridged, parent: BR`: each node interface is a veth
whose outer end, in the machine's namespace, is a port of the existing host bridge
BR. `macvlan: IF` makes the node interface a macvlan in bridge mode on the host
interface IF, straight inside the node (nothing of the lab in the host's namespace).

What palmnet changes on the host is only what it adds: the ports (each journalled
before it is made, so `down` removes exactly those, also after a kill -9; a veth
also dies with its node's namespace, but the kernel frees a namespace later, so
`down` waits for them to go, deletes any left, and returns with the bridge as it
found it). It
never creates, addresses or configures the bridge or the NIC, and never writes a
host-wide sysctl. A port's own settings are set before it comes up: IPv6 off on
the outer end (a switch port has no address: no link-local, no DAD probe, no MLD
report, no RA taken on the user's LAN), and the bridge's MTU, so that adding it
never lowers the bridge's (a bridge takes the smallest MTU of its ports).

The host's outer ends are named `pnx` + 5 hex digits of the lab + 7 of the node
and interface (15 bytes), so a lab finds its own leftovers without a journal and
never another lab's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator

from palmnet.backends.netns.names import node_netns
from palmnet.errors import LabError
from palmnet.kernel import nsfs, sysctl
from palmnet.kernel.hostlinks import host_link, host_link_names
from palmnet.kernel.linkwait import subscribe_links, wait_links_gone
from palmnet.kernel.rtnl import Rtnl
from palmnet.plan.model import InterfacePlan, NodePlan, Plan
from palmnet.state.journal import Journal

PORT_PREFIX = "pnx"
HOST_NETNS = "/proc/self/ns/net"  # palmnet's own namespace: the machine's
PORTS_GONE_TIMEOUT = 10.0  # s; then they are deleted one by one
KIND = "port"  # journal kind of a port on the host's LAN


def _hex(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def lab_port_prefix(lab: str) -> str:
    return PORT_PREFIX + _hex(lab, 5)


def host_port_name(lab: str, node: str, interface: str, attempt: int = 0) -> str:
    text = f"{node}/{interface}" + (f"#{attempt}" if attempt else "")
    return lab_port_prefix(lab) + _hex(text, 7)


def host_ports(plan: Plan) -> dict[tuple[str, str], str]:
    """(node, interface) -> the outer veth end on the host bridge, for every interface
    on a `bridge:` external network; sorted order, a counter on a clash."""
    names: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for node in sorted(plan.nodes, key=lambda n: n.name):
        for iface in sorted(node.veths, key=lambda i: i.name):
            if iface.external != "bridge":
                continue
            attempt = 0
            name = host_port_name(plan.lab, node.name, iface.name)
            while name in used:
                attempt += 1
                name = host_port_name(plan.lab, node.name, iface.name, attempt)
            used.add(name)
            names[(node.name, iface.name)] = name
    return names


class ExternalPorts:
    """Makes the ports of one application of a plan, from palmnet's own namespace."""

    def __init__(self, plan: Plan, journal: Journal) -> None:
        self.plan = plan
        self.journal = journal
        self.names = host_ports(plan)
        self._rt: Rtnl | None = None
        self._parents: dict[str, tuple[int, int]] = {}  # host interface -> (index, MTU)

    @property
    def rt(self) -> Rtnl:
        if self._rt is None:
            self._rt = Rtnl.open(None)
        return self._rt

    def close(self) -> None:
        if self._rt is not None:
            self._rt.close()

    def add(self, node: NodePlan, iface: InterfacePlan, netns_fd: int) -> None:
        ext = self.plan.network(iface.network).external
        assert ext is not None
        index, mtu = self._parent(ext.parent)
        if ext.kind == "macvlan":
            self.journal.record(
                KIND, f"{node.name}/{iface.name}", node.name, how="macvlan", parent=ext.parent
            )
            self.rt.add_macvlan(iface.name, index, netns_fd, iface.mac)
            return
        name = self.names[(node.name, iface.name)]
        self.journal.record(
            KIND, name, node.name, how="veth", parent=ext.parent, interface=iface.name
        )
        self.rt.add_veth(name, iface.name, netns_fd, iface.mac, master=index, mtu=mtu)
        sysctl.apply_sysctls({f"net/ipv6/conf/{name}/disable_ipv6": 1})
        self.rt.set_up(name)

    def _parent(self, name: str) -> tuple[int, int]:
        """The host interface's index and MTU, read once per application."""
        found = self._parents.get(name)
        if found is None:
            link = host_link(name)
            if link is None:  # checked by up's preflight; gone since
                raise OSError(errno.ENODEV, f"host interface {name} is gone")
            found = self._parents[name] = (self.rt.index_of(name), link.mtu)
        return found


def remove_ports(lab: str, journal: Journal | None, node: str | None = None) -> None:
    """Delete the lab's ports (of one node, or all): the journalled ones, and without a
    journal every host link with the lab's port prefix."""
    prefix = lab_port_prefix(lab)
    if journal is None:
        names = [n for n in host_link_names() if n.startswith(prefix)] if node is None else []
        with Rtnl.open(None) as rt:
            for name in names:
                _delete(rt, name)
        return
    entries = journal.entries(KIND, node=node)
    if not entries:
        return
    present = set(host_link_names())
    ports = [
        e.name
        for e in entries
        if e.data.get("how") == "veth" and e.name.startswith(prefix) and e.name in present
    ]
    with Rtnl.open(None) as rt:
        try:
            with rt.pipeline():  # one stream of deletions
                for name in ports:
                    rt.delete_link(name)
        except OSError:  # one went meanwhile (its namespace freed): one by one
            for name in ports:
                _delete(rt, name)
    for e in entries:
        if e.data.get("how") == "macvlan" and e.node is not None:
            _delete_inside(lab, e.node, e.name.split("/", 1)[1])
        journal.forget(KIND, e.name)


def remove_macvlans(lab: str, journal: Journal | None) -> None:
    """Delete the lab's macvlans from inside their nodes (they leave their parent at
    once, not when the kernel gets round to freeing the nodes' namespaces)."""
    if journal is None:
        return
    for e in journal.entries(KIND):
        if e.data.get("how") == "macvlan" and e.node is not None:
            _delete_inside(lab, e.node, e.name.split("/", 1)[1])
            journal.forget(KIND, e.name)


@contextlib.contextmanager
def ports_gone(lab: str, journal: Journal | None) -> Iterator[None]:
    """Around the deletion of a lab's node namespaces: afterwards, wait until their
    veths' host ends are gone from the bridge (the kernel frees namespaces in the
    background, one batch for all, where deleting them one by one waits for an RCU
    grace period each: benchmarks/external.py), then delete what is left and forget
    them."""
    ports = leftover_ports(lab)
    if not ports:
        yield
        remove_ports(lab, journal)
        return
    sock = subscribe_links(HOST_NETNS)
    try:
        yield
        with contextlib.suppress(LabError):
            wait_links_gone(sock, HOST_NETNS, ports, timeout=PORTS_GONE_TIMEOUT)
    finally:
        sock.close()
    remove_ports(lab, journal)


def leftover_ports(lab: str) -> list[str]:
    prefix = lab_port_prefix(lab)
    return [n for n in host_link_names() if n.startswith(prefix)]


def _delete(rt: Rtnl, name: str) -> None:
    try:
        rt.delete_link(name)
    except OSError as exc:
        if exc.errno != errno.ENODEV:
            raise


def _delete_inside(lab: str, node: str, interface: str) -> None:
    """A macvlan is deleted from its node (it leaves its parent at once, not when the
    kernel gets round to freeing the node's namespace)."""
    path = nsfs.netns_path(node_netns(lab, node))
    if not os.path.exists(path):
        return
    with contextlib.suppress(OSError), Rtnl.open(path) as rt:
        _delete(rt, interface)
