"""dhcpcd: a host's DHCPv4 / stateful DHCPv6 client, confined to its node.

dhcpcd's paths are compiled in, with no flag to move them: /run/dhcpcd (pid,
control sockets) and /var/lib/dhcpcd (DUID, leases). /run and /var are the
host's in every node, so two nodes would share one pid file and one DUID (the
server would see one client). `private_mounts()` maps them to directories of
its own; the backend bind-mounts those over them in the node's mount
namespace (reference/pd-notes.md), and render() seeds the DUID there.

What it must not do in a node:
- run dhcpcd-run-hooks: its 20-resolv.conf and 30-hostname would rewrite the
  resolver and hostname. `-c` points at our own hook, which only logs.
- take router advertisements from the kernel: with IPv6 RS on it sets
  accept_ra 0 and does SLAAC itself. `noipv6rs` leaves SLAAC to the kernel
  (stable EUI-64 addresses, DESIGN.md §2); DHCPv6 then starts from the config
  (`ia_na`) instead of from the RA's M flag, so the plan decides: `ia_na` on
  the interfaces whose LAN offers stateful DHCPv6 (managed or a DHCPv6 range).
- read /etc/dhcpcd.conf: `-f` gives it ours.

On an openwrt router with `wan6 reqprefix` (NodePlan.pd_client) it is the
DHCPv6-PD client, as in reference/pd-notes.md: `ia_pd` on the WAN with the
requested length as a hint, each LAN on the command line with its sla_id (the
/64 the plan announces there), the plan's DUID-LL in its private duid file,
`nodelay` and `option rapid_commit` (one exchange with kea instead of
Solicit/Advertise/Request after a random delay). dhcpcd itself puts the LAN's
`::1/64` there (`ia_pd 1 br-lan/<sla>/64/1`), rather than the hook: it owns
the lease, so it keeps the address's lifetimes to the lease's, adds the
unreachable route for the undelegated rest of the prefix (RFC 7084 WPD-5),
drops the old address when a renewal brings a new prefix and everything when
it exits. The hook (`python -m palmnet.pd.hook`, pd/hook.py) does what
dhcpcd cannot: radvd's and the downstream kea's configs, from `pd.json`, the
node's static parameters rendered here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from palmnet.plan.model import InterfacePlan, NodePlan, PdClientPlan, Plan
from palmnet.services.base import Service

HOOK = """#!/bin/sh
# dhcpcd hook for {node}, written by palmnet. It replaces dhcpcd-run-hooks, so
# no resolv.conf or hostname hook runs in the node: it only logs each event.
echo "$(date +%FT%T) $reason $interface ${{new_ip_address:-}}\
 ${{new_dhcp6_ia_na1_ia_addr1:-}}" >> {log}
"""

PD_HOOK = """#!/bin/sh
# dhcpcd hook for {node}, written by palmnet. It replaces dhcpcd-run-hooks, so
# no resolv.conf or hostname hook runs in the node. Events of the delegation on
# {wan} go to palmnet's PD hook: radvd and the downstream kea follow the prefix.
echo "$(date +%FT%T.%N) $reason $interface\
 ${{new_dhcp6_ia_pd{iaid}_prefix1:-}}/${{new_dhcp6_ia_pd{iaid}_prefix1_length:-}}" >> {log}
[ "$interface" = "{wan}" ] || exit 0
# Not STOP6: dhcpcd stops when palmnet stops the node, which takes radvd and kea too.
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6|EXPIRE6|RELEASE6) ;;
  *) exit 0 ;;
esac
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
exec {python} -m palmnet.pd.hook {params} >> {hook_log} 2>&1
"""

# A PD client starts once its server listens: a Solicit sent before kea has bound
# its socket is lost and retransmitted only after ~1.1 s (RFC 8415 SOL_TIMEOUT).
# kea's control socket appears a few ms before its DHCP socket; dhcpcd takes
# longer than that from exec to its first Solicit.
WAIT_FOR_SERVER = (
    'i=0; while [ ! -S "$1" ] && [ $i -lt {tries} ]; do sleep {step}; i=$((i + 1)); done; '
    'shift; exec "$@"'
)
SERVER_WAIT_STEP = 0.005  # poll: another node's kea gives no event we can wait on here
SERVER_WAIT_TRIES = 600

PD_PARAMS = "pd.json"
PD_STATE = "pd-state.json"


def duid_ll(mac: str) -> str:
    """DUID-LL (RFC 8415 §11.4) of an Ethernet MAC: type 3, hardware type 1.

    The plan derives MACs from (lab, node, interface), so this DUID is the
    same on every start and known before the lab starts, like the addresses.
    """
    return "00:03:00:01:" + mac.lower()


def offers(plan: Plan, network: str) -> tuple[bool, bool]:
    """(DHCPv4, stateful DHCPv6) offered on a lab network by any node's LAN service.
    On an external network the lab offers nothing (its DHCP replies are guarded)."""
    v4 = v6 = False
    if any(n.name == network and n.external is not None for n in plan.networks):
        return v4, v6
    for node in plan.nodes:
        for lan in node.lans:
            try:
                iface = node.interface(lan.interface)
            except KeyError:
                continue
            if iface.network != network:
                continue
            v4 = v4 or lan.dhcp4_range is not None
            v6 = v6 or lan.managed or lan.dhcp6_range is not None
    return v4, v6


def _hex(duid: str) -> str:
    """A hex DUID (the plan's) in dhcpcd's duid file format: colon-separated."""
    return ":".join(duid[i : i + 2] for i in range(0, len(duid), 2))


def lan_slot(pd: PdClientPlan, interface: str, length: int, hint: int) -> int:
    """The /64 a LAN announces, as an index inside the delegation (dhcpcd's sla_id).

    From the plan when it holds a delegation (the first /64 of the LAN's share);
    else from the hint as netifd masks it to the requested length.
    """
    for a in pd.assignments:
        if a.interface == interface and a.lan is not None and pd.delegated is not None:
            return (int(a.lan.network_address) - int(pd.delegated.network_address)) >> 64
    bits = 64 - (pd.request_len or 56)
    return hint & ((1 << bits) - 1) & ~((1 << (64 - length)) - 1)


def uci_hints(node: NodePlan) -> dict[str, int]:
    """ip6hint per device from the node's /etc/config/network (0 when absent)."""
    from palmnet.openwrt.uci import parse

    text = dict(node.uci).get("network")
    if not text:
        return {}
    network = parse(text, "network")
    hints: dict[str, int] = {}
    for sec in network.of_type("interface"):
        device = sec.get("device") or sec.get("ifname")
        hint = sec.get("ip6hint")
        if isinstance(device, str) and isinstance(hint, str):
            try:
                hints[device] = int(hint, 16)
            except ValueError:
                continue
    return hints


class Dhcpcd(Service):
    name: ClassVar[str] = "dhcpcd"
    executable: ClassVar[str] = "/usr/sbin/dhcpcd"
    package: ClassVar[str] = "dhcpcd-base"

    private_dirs: ClassVar[dict[str, str]] = {"/run/dhcpcd": "run", "/var/lib/dhcpcd": "db"}
    """dhcpcd's compiled-in directories -> the name of the per-node one under self.dir."""

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return bool(node.dhcp_client) or node.pd_client is not None

    def private_mounts(self) -> dict[str, Path]:
        return {target: self.dir / leaf for target, leaf in self.private_dirs.items()}

    @property
    def conf(self) -> Path:
        return self.dir / "dhcpcd.conf"

    @property
    def hook(self) -> Path:
        """Executable: the backend gives `#!` files without a suffix mode 0755."""
        return self.dir / "hook"

    @property
    def hook_log(self) -> Path:
        return self.dir / "hook.log"

    @property
    def pd_params(self) -> Path:
        return self.dir / PD_PARAMS

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "pid"

    def client_interfaces(self) -> list[str]:
        """Every interface dhcpcd runs on: DHCP clients, the PD WAN and the LANs it
        delegates to (dhcpcd only delegates to interfaces it runs on)."""
        names = list(self.node.dhcp_client)
        pd = self.node.pd_client
        if pd is not None:
            names += [pd.wan, *(a.interface for a in pd.assignments)]
        return list(dict.fromkeys(names))

    def interfaces(self) -> list[InterfacePlan]:
        return [self.node.interface(name) for name in self.node.dhcp_client]

    def wants(self, iface: InterfacePlan) -> tuple[bool, bool]:
        """(DHCPv4, DHCPv6) on one interface, from what its network offers.

        When the plan knows no server on the network (an external one: the real
        LAN's router), DHCPv4 is asked for: the common case, and harmless when
        unanswered.
        """
        four, six = offers(self.plan, iface.network)
        return four or not six, six

    def families(self) -> tuple[bool, bool]:
        """(DHCPv4, DHCPv6) over all client interfaces: decides -4 / -6."""
        wants = [self.wants(iface) for iface in self.interfaces()]
        v4 = any(w[0] for w in wants)
        v6 = any(w[1] for w in wants) or self.node.pd_client is not None
        return v4, v6

    def render_config(self) -> str:
        lines = [
            f"# dhcpcd for {self.node.name}, written by palmnet",
            f"allowinterfaces {' '.join(self.client_interfaces())}",
            "noipv4ll",  # no 169.254/16 fallback: a missing lease should show as missing
            "noipv6rs",  # the kernel takes the RAs (SLAAC, default route)
            # DHCPv4 client id = the MAC, as most clients send: the server's
            # reservations are by MAC. DHCPv6 uses the DUID from /var/lib/dhcpcd.
            "clientid",
            "hostname",  # send the node's name (its UTS hostname)
        ]
        if not self.node.dad:
            # The ARP probe is DHCPv4's DAD (~4 s before the address is used);
            # a lab that skips IPv6 DAD for speed skips this one too.
            lines.append("noarp")
        pd = self.node.pd_client
        if pd is not None:
            lines += [
                # No udev: a node's mount namespace hides /run/netns, so dhcpcd does not
                # see it runs in a network namespace, asks the host's udev about the
                # node's interfaces and gives up on them ("interface not found").
                "nodev",
                # No random wait before the first Solicit (RFC 8415's SOL_MAX_DELAY):
                # in a lab it only delays every router below by up to 1 s.
                "nodelay",
                "option rapid_commit",  # kea answers a Solicit with the Reply
            ]
        done: set[str] = set()
        for iface in self.interfaces():
            four, six = self.wants(iface)
            body = []
            if six:
                # Forced IA: with noipv6rs, DHCPv6 starts from this, not from the M flag.
                body.append("    ia_na 1")
                if not four:
                    body.append("    ipv6only")
            if pd is not None and iface.name == pd.wan:
                body.append(f"    {self._ia_pd(pd)}")
                done.add(iface.name)
            if body:
                lines += [f"interface {iface.name}", *body]
        if pd is not None:
            if pd.wan not in done:
                lines += [f"interface {pd.wan}", "    ipv6only", f"    {self._ia_pd(pd)}"]
            for a in pd.assignments:
                if a.interface != pd.wan and a.interface not in self.node.dhcp_client:
                    # A LAN is only a target of the delegation: no DHCP client there.
                    lines += [f"interface {a.interface}", "    ipv6only"]
        return "\n".join(lines) + "\n"

    def _ia_pd(self, pd: PdClientPlan) -> str:
        """`ia_pd IAID[/::/LEN] LAN/SLA/64/1 ...`: the requested length is a hint
        (kea's reservation decides), each LAN gets its /64 with suffix ::1."""
        hints = uci_hints(self.node)
        want = f"/::/{pd.request_len}" if pd.request_len else ""
        targets = [
            f"{a.interface}/{lan_slot(pd, a.interface, a.length, hints.get(a.interface, 0))}/64/1"
            for a in pd.assignments
        ]
        return f"ia_pd {pd.iaid}{want} {' '.join(targets)}".rstrip()

    def pd_params_json(self) -> dict[str, Any]:
        """What the PD hook needs of the plan (it runs without the plan)."""
        from palmnet.services.kea import Kea
        from palmnet.services.radvd import Radvd, ra_spec

        pd = self.node.pd_client
        assert pd is not None
        hints = uci_hints(self.node)
        radvd = Radvd(self.plan, self.node, self.dir.parent)
        kea = Kea(self.plan, self.node, self.dir.parent)
        assignments = []
        for a in pd.assignments:
            slot = lan_slot(pd, a.interface, a.length, hints.get(a.interface, 0))
            assignments.append({"interface": a.interface, "length": a.length, "hint": slot})
        servers = []
        for server in self.node.pd_servers:
            share = next((a.share for a in pd.assignments if a.interface == server.interface), None)
            reservations = []
            for r in server.reservations:
                offset = None
                if r.prefix is not None and share is not None and r.prefix.subnet_of(share):
                    offset = int(r.prefix.network_address) - int(share.network_address)
                reservations.append({"client": r.client, "duid": r.duid, "offset": offset})
            servers.append(
                {
                    "interface": server.interface,
                    "delegated_len": server.delegated_len,
                    "t1": server.t1,
                    "t2": server.t2,
                    "preferred": server.preferred,
                    "valid": server.valid,
                    "reservations": reservations,
                }
            )
        return {
            "node": self.node.name,
            "wan": pd.wan,
            "iaid": pd.iaid,
            "planned": str(pd.delegated) if pd.delegated is not None else None,
            "state": str(self.dir / PD_STATE),
            "lock": str(self.dir / "pd.lock"),
            "assignments": assignments,
            "radvd": {
                "conf": str(radvd.conf),
                "pid": str(radvd.pid_file),
                "interfaces": [i.to_json() for i in ra_spec(self.node)],
            },
            "kea": (
                {
                    "conf": str(kea.conf),
                    "dir": str(kea.dir),
                    "socket": str(kea.socket_path),
                    "hook": str(kea.hook),
                    "log": str(kea.log),
                    "servers": servers,
                }
                if servers
                else None
            ),
        }

    def render(self) -> dict[Path, str]:
        pd = self.node.pd_client
        if pd is not None:
            duid = _hex(pd.duid)
            hook = PD_HOOK.format(
                node=self.node.name,
                wan=pd.wan,
                iaid=pd.iaid,
                log=self.hook_log,
                python=self.python,
                params=self.pd_params,
                hook_log=self.hook_log,
            )
        else:
            # the plan's DUID: the LANs' DHCPv6 servers reserve this client's lease by it
            planned = self.node.dhcp_duid
            duid = _hex(planned) if planned else duid_ll(self.interfaces()[0].mac)
            hook = HOOK.format(node=self.node.name, log=self.hook_log)
        files = {
            self.conf: self.render_config(),
            self.hook: hook,
            self.private_mounts()["/var/lib/dhcpcd"] / "duid": duid + "\n",
        }
        if pd is not None:
            files[self.pd_params] = json.dumps(self.pd_params_json(), indent=2) + "\n"
        return files

    def upstream_socket(self) -> Path | None:
        """The control socket of the kea that delegates to this router, if the lab has one
        and this node sees it (namespace nodes share the host's files)."""
        if self.isolated:
            return None
        for node in self.plan.nodes:
            for pd in node.pd_servers:
                if any(r.client == self.node.name for r in pd.reservations):
                    return self.dir.parent.parent / node.name / "kea" / "kea.sock"
        return None

    def argv(self) -> list[str]:
        v4, v6 = self.families()
        family = [] if v4 and v6 else ["-4"] if v4 else ["-6"]
        wait: list[str] = []
        server = self.upstream_socket() if self.node.pd_client is not None else None
        if server is not None:
            script = WAIT_FOR_SERVER.format(tries=SERVER_WAIT_TRIES, step=SERVER_WAIT_STEP)
            wait = ["/bin/sh", "-c", script, "wait-for-server", str(server)]
        return [
            *wait,
            self.executable,
            "--nobackground",
            "-q",  # stderr goes to the same file as -j: without -q every line came twice
            "-f",
            str(self.conf),
            "-c",
            str(self.hook),
            "-j",
            str(self.log),
            *family,
            *self.client_interfaces(),
        ]

    def ready(self, pid: int) -> bool:
        """Alive. The lease itself is the backend's to wait for: the planned
        `ipv4_dhcp` address arrives on netlink like any other address, and the
        planned delegated `::1/64` on the LAN likewise."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
