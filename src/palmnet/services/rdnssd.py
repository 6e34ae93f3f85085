"""rdnssd: a host's resolv.conf from the RDNSS/DNSSL options of the RAs it receives.

A real RA consumer, as on a real host (DESIGN.md §4): the router's radvd
announces the lab's DNS server and domain, and the host learns them without
palmnet writing its resolver behind the network's back.

rdnssd reads the RA options the kernel passes up over netlink in its own
network namespace, so one rdnssd per node works. Inside the node's mount
namespace /etc/resolv.conf is the node's own file on the /etc overlay, and
rdnssd's write-to-.tmp-then-rename works there (reference/node-notes.md).
No `-H`: Debian's merge hook calls the host-wide resolvconf, drops the search
domains and renames onto /etc/resolv.conf itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from palmnet.plan.model import NodePlan
from palmnet.services.base import Service


class Rdnssd(Service):
    name: ClassVar[str] = "rdnssd"
    executable: ClassVar[str] = "/usr/sbin/rdnssd"
    package: ClassVar[str] = "rdnssd"
    starts: ClassVar[str] = "early"  # before the links: it must hear the first RA

    single_id_problem: ClassVar[str | None] = (
        "it always switches user with initgroups() (even with -u root), and such a "
        "namespace forbids setgroups(): 'Fatal error (initgroups): Operation not permitted'"
    )
    resolv_conf: ClassVar[str] = "/etc/resolv.conf"
    """Inside the node's mount namespace: the node's own file, never the host's."""

    @classmethod
    def wanted(cls, node: NodePlan) -> bool:
        return node.resolver_from_ra

    @property
    def pid_file(self) -> Path:
        return self.dir / "rdnssd.pid"

    def render(self) -> dict[Path, str]:
        return {}

    def argv(self) -> list[str]:
        # -u root: as nobody it cannot create /etc/resolv.conf.tmp
        # ("Permission denied"); -p: its default pid file is host-wide.
        return [
            self.executable,
            "-f",
            "-u",
            "root",
            "-r",
            self.resolv_conf,
            "-p",
            str(self.pid_file),
        ]

    def ready(self, pid: int) -> bool:
        """Alive is all there is to know: it has no readiness signal.

        It only learns from RAs received after it started (it does not
        solicit): hence `starts = "early"`, before the node's links come up;
        started later, the resolver waits for the next unsolicited RA (up to
        MaxRtrAdvInterval).
        """
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
