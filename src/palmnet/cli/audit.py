"""`palmnet audit`: the checklist of a good IPv6 implementation against a lab node.

Prints a scorecard (PASS / FAIL / N/A and one line of evidence per check);
exit 1 when a check fails, 0 otherwise, 2 on bad input. With the table
format each result is also reported on stderr as it comes, since the whole
audit takes seconds (the restart and the flood most).
"""

from __future__ import annotations

import json

import typer

from palmnet.cli.options import FORMAT, LAB, Format


def audit(
    node: str = typer.Argument(..., help="The node to audit."),
    lab: str | None = LAB,
    fmt: Format = FORMAT,
    only: str | None = typer.Option(
        None, "--only", help="Comma-separated checks to run (default: all)."
    ),
    from_node: str | None = typer.Option(
        None,
        "--from",
        help="Node that sends the stimuli (default: another node of the link, a host first).",
    ),
    ra_count: int = typer.Option(5000, "--ra-count", help="RAs in the RA flood (1..5000)."),
    scan_count: int = typer.Option(256, "--scan-count", help="Addresses in the ND scan (1..256)."),
    deadline: float = typer.Option(
        20.0, "--deadline", help="Seconds any one wait may take before its check fails."
    ),
) -> None:
    """Judge NODE against the checklist: SLAAC, DHCPv6, link bounce, restart, default route,
    RDNSS/DNSSL, prefix delegation, RA flood, ND scan, ICMPv6 essentials."""
    from palmnet.toolbox.audit.context import AuditOptions
    from palmnet.toolbox.audit.model import CheckResult, format_seconds
    from palmnet.toolbox.audit.runner import CHECK_NAMES, run_audit

    def progress(result: CheckResult) -> None:
        typer.echo(
            f"  {result.check}: {result.verdict.value} ({format_seconds(result.seconds)})",
            err=True,
        )

    card = run_audit(
        lab,
        node,
        only=only,
        from_node=from_node,
        options=AuditOptions(ra_count=ra_count, scan_count=scan_count, deadline=deadline),
        report=progress if fmt is Format.table else None,
    )
    if fmt is Format.json:
        typer.echo(json.dumps(card.to_json(CHECK_NAMES), indent=2))
    else:
        typer.echo(card.render(CHECK_NAMES), nl=False)
    raise typer.Exit(card.exit_code)


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the app."""
    app.command()(audit)
