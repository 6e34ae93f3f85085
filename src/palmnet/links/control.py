"""Fail and heal links of a running lab, at the ports of its switch only.

Carrier loss (`down`) sets every port of the link down: each node then sees
NO-CARRIER on its interface, as when a cable is pulled, and its routing
daemon hears of it at once. A silent failure (`impair`) leaves every
interface up and drops frames with nftables on the ports (links/nft.py), so
only the protocols' own timers can notice. Both live in the kernel only:
`status` reads them back from there, so a crashed `converge` or a second
shell sees the same truth, and `palmnet down` removes them with the lab.

Where the ports are is the backend's to say (a `Switch` from the Lab API):
the outer veth ends in a netns lab's hidden namespace, the host ends of a
container's NICs in LXD's (on an LXD cluster, each member's own: the ports are
grouped by namespace). Nothing here knows which.

nft runs in a child that joins the switch's namespace before exec, never a
thread of this process, so it is safe while `converge` has probe threads.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from palmnet.errors import LabError
from palmnet.kernel.dump import dump_links
from palmnet.kernel.processes import run_in_netns
from palmnet.kernel.rtnl import Rtnl
from palmnet.lab import Switch
from palmnet.links import nft
from palmnet.links.names import Link, LinkEnd, links_of
from palmnet.plan.model import Plan


@dataclass
class LinkStatus:
    link: Link
    down: list[str] = field(default_factory=list)  # nodes whose end is down
    impaired: dict[LinkEnd, nft.Impairment] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # nodes whose end is gone (stopped)

    @property
    def failed(self) -> bool:
        return bool(self.down or self.impaired)

    def state(self) -> str:
        """`down`, `blackhole`, `loss 30%`, `down, loss 30%`, or `up`."""
        words = []
        if self.down:
            words.append("down")
        kinds = sorted({i.describe() for i in self.impaired.values()})
        words += kinds
        return ", ".join(words) or "up"

    def to_json(self) -> dict[str, object]:
        return {
            "link": self.link.name,
            "network": self.link.network,
            "state": self.state(),
            "down": self.down,
            "impaired": {
                e.node: {"loss": i.loss, "blackhole": i.blackhole, "dropped": i.dropped}
                for e, i in self.impaired.items()
            },
            "ends": [{"node": e.node, "interface": e.interface} for e in self.link.ends],
            "missing": self.missing,
        }


class LinkControl:
    """Link failures of one running lab, at the ports of its switch."""

    def __init__(self, plan: Plan, switch: Switch) -> None:
        self.plan = plan
        self.switch = switch

    def _away(self, end: LinkEnd) -> bool:
        return (end.node, end.interface) in self.switch.away

    def port(self, end: LinkEnd) -> str:
        port = self.switch.port(end.node, end.interface)
        if port is None:
            raise LabError(f"{end.node}:{end.interface} has no port on the lab's switch")
        return port

    # -- kernel reads --------------------------------------------------------------
    def _port_states(self) -> dict[str, bool]:
        """Admin state (up?) of every link in the switch's namespaces, by name."""
        out: dict[str, bool] = {}
        try:
            for netns in self.switch.namespaces():
                out.update({link.name: link.up for link in dump_links(netns).values()})
        except OSError as exc:
            raise LabError(f"lab {self.plan.lab}: its switch cannot be read ({exc})") from None
        return out

    def _by_netns(self, ports: list[str]) -> dict[str, list[str]]:
        """Ports grouped by the namespace that holds them (one, off an LXD cluster)."""
        out: dict[str, list[str]] = {}
        for port in ports:
            out.setdefault(self.switch.netns_of(port), []).append(port)
        return out

    def _nft(self, *args: str, stdin: str | None = None, netns: str | None = None) -> str:
        try:
            proc = run_in_netns(netns or self.switch.netns, ["nft", *args], stdin, timeout=30)
        except FileNotFoundError:
            raise LabError("nft is not installed (Debian: apt install nftables)") from None
        if proc.returncode != 0:
            if args[:2] == ("-j", "list") and "No such file" in proc.stderr:
                return ""
            raise LabError(f"nft refused it: {proc.stderr.strip()}")
        return proc.stdout

    def _load(self, text: str, what: str, netns: str | None = None) -> None:
        try:
            self._nft("-f", "-", stdin=text, netns=netns)
        except LabError as exc:
            raise LabError(f"{what}: {exc}") from None

    def _table_json(self, netns: str | None = None) -> str:
        return self._nft("-j", "list", "table", nft.FAMILY, self.switch.table, netns=netns)

    def _present(self, link: Link) -> list[str]:
        """The link's ports that exist now (a stopped node has none)."""
        far = [(e, self.switch.away[(e.node, e.interface)]) for e in link.ends if self._away(e)]
        if far:
            end, member = far[0]
            raise LabError(
                f"link {link.name}: the port of {end.node}:{end.interface} is on cluster member "
                f"{member}, on another machine; palmnet changes links only where it runs"
            )
        states = self._port_states()
        present = [self.port(e) for e in link.ends if self.port(e) in states]
        if not present:
            raise LabError(f"link {link.name}: none of its ends exists (are its nodes stopped?)")
        return present

    # -- changes -------------------------------------------------------------------
    def set_carrier(self, link: Link, up: bool) -> None:
        """Every end of the link down (carrier loss, both sides see NO-CARRIER) or up."""
        present = self._present(link)
        try:
            for netns, ports in self._by_netns(present).items():
                with Rtnl.open(netns) as rt, rt.pipeline():
                    for port in ports:
                        rt.set_up(name=port, up=up)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise LabError(f"link {link.name}: an end vanished ({exc})") from None
            raise LabError(f"link {link.name}: {exc}") from None

    def impair(self, link: Link, loss: int | None) -> None:
        """Drop `loss` % of the frames on the link, or all of them (None), interfaces up."""
        present = self._present(link)
        for netns, ports in self._by_netns(present).items():
            text = nft.impair_text(self.switch.table, ports, loss)
            self._load(text, f"impair {link.name}", netns)

    def clear(self, link: Link) -> None:
        """Remove the link's impairment and bring its ends up: the link is whole again."""
        present = self._present(link)
        errors = []
        for netns, ports in self._by_netns(present).items():
            try:
                self._load(nft.clear_text(self.switch.table, ports), f"clear {link.name}", netns)
            except LabError as exc:
                errors.append(str(exc))
        try:
            self.set_carrier(link, True)
        except LabError as exc:
            errors.append(str(exc))
        try:
            self._drop_table_if_empty()
        except LabError as exc:
            errors.append(str(exc))
        if errors:
            raise LabError("; ".join(errors))

    def clear_all(self) -> None:
        """Every link of the lab whole again."""
        for status in self.status():
            if status.failed:
                self.clear(status.link)
        self._drop_table_if_empty()

    def _drop_table_if_empty(self) -> None:
        for netns in self.switch.namespaces():
            text = self._table_json(netns)
            if text and not nft.chains_in(text, self.switch.table):
                drop = nft.drop_table_text(self.switch.table)
                self._load(drop, "remove the empty impairment table", netns)

    # -- status --------------------------------------------------------------------
    def status(self, only_failed: bool = False) -> list[LinkStatus]:
        states = self._port_states()
        impairments = {}
        for netns in self.switch.namespaces():
            impairments.update(nft.parse_table(self._table_json(netns), self.switch.table))
        out = []
        for link in links_of(self.plan):
            s = LinkStatus(link)
            for end in link.ends:
                if self._away(end):
                    continue  # its port is on another machine: its state is not known here
                port = self.port(end)
                if port not in states:
                    s.missing.append(end.node)
                elif not states[port]:
                    s.down.append(end.node)
                if port in impairments:
                    s.impaired[end] = impairments[port]
            if s.failed or not only_failed:
                out.append(s)
        return out

    def status_of(self, link: Link) -> LinkStatus:
        for s in self.status():
            if s.link.network == link.network:
                return s
        return LinkStatus(link)
