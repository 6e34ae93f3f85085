"""The checklist and the order it runs in.

Checks are listed in the order of the checklist (field notes, "What makes a
good IPv6 implementation?"): addressing, routing, resilience. They run in
another order: the ones that only look (after asking the link with an RS)
first, then those that disturb the node: the RA flood and the ND scan
(which clean up after themselves), the link bounce, and the restart last,
because a restart rebuilds the node and would hide how it was configured
(a node made bad by hand is good again after it).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from palmnet.errors import InputError, LabError, PalmnetError
from palmnet.lab import LabAPI, LabSession
from palmnet.toolbox.audit import addressing, bounce, flood, icmp, routing, scan, xlat
from palmnet.toolbox.audit.context import AuditContext, AuditOptions, pick_stimulus, running
from palmnet.toolbox.audit.model import CheckResult, Outcome, Scorecard

Report = Callable[[CheckResult], None]


@dataclass(frozen=True)
class Check:
    name: str
    criterion: str
    judge: Callable[[AuditContext], Outcome]
    stage: int = 0  # run order: 0 looks, 1 floods and scans, 2 bounces, 3 restarts
    needs_stimulus: bool = False  # sends from another node of the link


CHECKS: tuple[Check, ...] = (
    Check("slaac", "a SLAAC address (EUI-64 or stable) in every advertised /64", addressing.slaac),
    Check("dhcpv6", "a DHCPv6 address where the network offers one (M flag)", addressing.dhcpv6),
    Check("link_bounce", "GUA back after the link goes down and up", bounce.link_bounce, 2),
    Check("restart_stable", "the same addresses after a restart", bounce.restart_stable, 3),
    Check("default_route_ll", "default route via a link-local next hop", routing.default_route_ll),
    Check("rdnss_dnssl", "RDNSS and DNSSL of the RA in the resolver", routing.rdnss_dnssl),
    Check(
        "prefix_delegation",
        "a delegated prefix numbers the LANs (routers with a PD client)",
        addressing.prefix_delegation,
    ),
    Check(
        "ra_flood",
        "at most 16 addresses and still answering under an RA flood",
        flood.ra_flood,
        1,
        True,
    ),
    Check("nd_scan", "still answering under an ND scan of its /64", scan.nd_scan, 1, True),
    Check(
        "icmpv6_essentials",
        "echo, NS/NA, RS/RA and Packet Too Big work",
        icmp.icmpv6_essentials,
        0,
        True,
    ),
    Check(
        "nat64_prefix",
        "the NAT64 prefix is discovered (RFC 7050, ipv4only.arpa)",
        xlat.nat64_prefix,
    ),
    Check(
        "dns64_synthesis", "an IPv4-only name gets a synthesised AAAA (DNS64)", xlat.dns64_synthesis
    ),
    Check(
        "clat_ipv4_literal",
        "an IPv4 literal is reachable through the CLAT (464XLAT)",
        xlat.clat_ipv4_literal,
    ),
)

CHECK_NAMES = [c.name for c in CHECKS]


def select_checks(only: str | None) -> list[Check]:
    """The checks `--only a,b` names (all of them without it)."""
    if not only:
        return list(CHECKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECK_NAMES]
    if unknown or not names:
        raise InputError(
            f"--only {only}: unknown check {', '.join(unknown) or '(none given)'}"
            f" (checks: {', '.join(CHECK_NAMES)})"
        )
    return [c for c in CHECKS if c.name in names]


def run_check(check: Check, ctx: AuditContext) -> CheckResult:
    start = time.monotonic()
    if check.needs_stimulus and ctx.stimulus is None:
        outcome = Outcome.na(f"no other running node on {ctx.target.name}'s links to send from")
    else:
        try:
            outcome = check.judge(ctx)
        except (PalmnetError, OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            # The check could not be carried out: say so, as a failure of the audit.
            outcome = Outcome.failed(f"could not run: {exc}")
    return CheckResult(
        check.name, check.criterion, outcome.verdict, outcome.evidence, time.monotonic() - start
    )


def run_audit(
    lab: str | None,
    node: str,
    *,
    only: str | None = None,
    from_node: str | None = None,
    options: AuditOptions | None = None,
    report: Report | None = None,
    api: LabAPI | None = None,
) -> Scorecard:
    """Run the chosen checks against a running node; `report` hears each result."""
    options = options or AuditOptions()
    options.check()
    checks = select_checks(only)
    api = api or LabAPI()
    with api.session(lab) as session:
        if os.geteuid() != 0:  # root of the machine, or of a rootless lab once entered
            raise LabError("palmnet audit needs root (it acts inside the lab's namespaces)")
        return _audit(api, session, node, checks, from_node, options, report)


def _audit(
    api: LabAPI,
    session: LabSession,
    node: str,
    checks: list[Check],
    from_node: str | None,
    options: AuditOptions,
    report: Report | None,
) -> Scorecard:
    plan = session.plan
    target = plan.node(node)
    if not running(session, target):
        raise InputError(f"node {node} of lab {plan.lab} is not running")
    picked = pick_stimulus(session, target, from_node)
    ctx = AuditContext(api=api, session=session, target=target, options=options)
    card = Scorecard(plan.lab, node)
    if picked is not None:
        ctx.target_if, ctx.stimulus = picked
        card.interface = ctx.target_if.name
        card.stimulus = ctx.stimulus.node.name
        card.stimulus_interface = ctx.stimulus.iface.name
    for check in sorted(checks, key=lambda c: c.stage):  # stable: checklist order in a stage
        result = run_check(check, ctx)
        card.add(result)
        if report is not None:
            report(result)
    return card
