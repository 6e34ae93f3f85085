"""Fail and heal links of a running lab, in its hidden namespace only.

Carrier loss (`down`) sets every outer veth end of the link down: each node
then sees NO-CARRIER on its interface, as when a cable is pulled, and its
routing daemon hears of it at once. A silent failure (`impair`) leaves every
interface up and drops frames with nftables on the outer ends (links/nft.py),
so only the protocols' own timers can notice. Both live in the kernel only:
`status` reads them back from there, so a crashed `converge` or a second
shell sees the same truth, and `palmnet down` removes them with the lab's
hidden namespace.

nft runs in a child forked while this thread is inside the hidden namespace
(a child inherits the forking thread's namespaces), never with a preexec
hook, so it is safe while `converge` has probe threads running.
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass, field

from palmnet.backends.netns import nsfs
from palmnet.backends.netns.dump import dump_links
from palmnet.backends.netns.rtnl import Rtnl
from palmnet.errors import LabError
from palmnet.links import nft
from palmnet.links.names import Link, links_of
from palmnet.plan.model import Plan


@dataclass
class LinkStatus:
    link: Link
    down: list[str] = field(default_factory=list)  # nodes whose end is down
    impaired: dict[str, nft.Impairment] = field(default_factory=dict)  # by outer end
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
                e.node: {
                    "loss": self.impaired[e.outer].loss,
                    "blackhole": self.impaired[e.outer].blackhole,
                    "dropped": self.impaired[e.outer].dropped,
                }
                for e in self.link.ends
                if e.outer in self.impaired
            },
            "ends": [{"node": e.node, "interface": e.interface} for e in self.link.ends],
            "missing": self.missing,
        }


class LinkControl:
    """Link failures of one running lab."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.path = nsfs.netns_path(plan.switch_netns)
        if not os.path.exists(self.path):
            raise LabError(f"lab {plan.lab} has no hidden namespace {plan.switch_netns}: is it up?")

    # -- kernel reads --------------------------------------------------------------
    def _outer_states(self) -> dict[str, bool]:
        """Admin state (up?) of every link in the hidden namespace, by name."""
        return {link.name: link.up for link in dump_links(self.path).values()}

    def _nft(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        with nsfs.netns(self.path):
            try:
                return subprocess.run(
                    ["nft", *args], input=stdin, capture_output=True, text=True, timeout=30
                )
            except FileNotFoundError:
                raise LabError("nft is not installed (Debian: apt install nftables)") from None

    def _load(self, text: str, what: str) -> None:
        proc = self._nft("-f", "-", stdin=text)
        if proc.returncode != 0:
            raise LabError(f"{what}: nft refused it: {proc.stderr.strip()}")

    def _table_json(self) -> str:
        proc = self._nft("-j", "list", "table", nft.FAMILY, nft.TABLE)
        if proc.returncode != 0:
            if "No such file" in proc.stderr:
                return ""
            raise LabError(f"cannot read the impairments: {proc.stderr.strip()}")
        return proc.stdout

    def _present(self, link: Link) -> list[str]:
        """The link's outer ends that exist now (a stopped node has none)."""
        states = self._outer_states()
        present = [o for o in link.outers if o in states]
        if not present:
            raise LabError(f"link {link.name}: none of its ends exists (are its nodes stopped?)")
        return present

    # -- changes -------------------------------------------------------------------
    def set_carrier(self, link: Link, up: bool) -> None:
        """Every end of the link down (carrier loss, both sides see NO-CARRIER) or up."""
        present = self._present(link)
        try:
            with Rtnl.open(self.path) as rt, rt.pipeline():
                for outer in present:
                    rt.set_up(name=outer, up=up)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise LabError(f"link {link.name}: an end vanished ({exc})") from None
            raise LabError(f"link {link.name}: {exc}") from None

    def impair(self, link: Link, loss: int | None) -> None:
        """Drop `loss` % of the frames on the link, or all of them (None), interfaces up."""
        present = self._present(link)
        self._load(nft.impair_text(present, loss), f"impair {link.name}")

    def clear(self, link: Link) -> None:
        """Remove the link's impairment and bring its ends up: the link is whole again."""
        present = self._present(link)
        errors = []
        try:
            self._load(nft.clear_text(present), f"clear {link.name}")
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
        text = self._table_json()
        if text and not nft.chains_in(text):
            self._load(nft.drop_table_text(), "remove the empty impairment table")

    # -- status --------------------------------------------------------------------
    def status(self, only_failed: bool = False) -> list[LinkStatus]:
        states = self._outer_states()
        impairments = nft.parse_table(self._table_json())
        out = []
        for link in links_of(self.plan):
            s = LinkStatus(link)
            for end in link.ends:
                if end.outer not in states:
                    s.missing.append(end.node)
                elif not states[end.outer]:
                    s.down.append(end.node)
                if end.outer in impairments:
                    s.impaired[end.outer] = impairments[end.outer]
            if s.failed or not only_failed:
                out.append(s)
        return out

    def status_of(self, link: Link) -> LinkStatus:
        for s in self.status():
            if s.link.network == link.network:
                return s
        return LinkStatus(link)
