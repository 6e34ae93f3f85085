"""`palmnet dns zone`: the lab's BIND zone files (DESIGN.md §5).

From a running lab (its journal's topology) or offline from a lab file
(`--topology`), since the plan knows every address before the lab exists.
Output is the zone text itself, so it can be piped or loaded into BIND;
`--format json` gives the records the lab's DNS server serves.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

import typer

from palmnet.cli.options import LAB
from palmnet.errors import InputError
from palmnet.plan.model import Plan


class ZoneFormat(str, enum.Enum):
    """`zone` rather than `table`: what this verb prints is zone files."""

    zone = "zone"
    json = "json"


def _plan(lab_arg: str | None, lab: str | None, topology: Path | None) -> Plan:
    if lab_arg is not None and lab is not None and lab_arg != lab:
        raise InputError(f"two labs named: '{lab_arg}' and --lab '{lab}'")
    name = lab_arg or lab
    if topology is not None:
        if name is not None:
            raise InputError("give a running lab or --topology FILE, not both")
        from palmnet.lab import plan_file

        return plan_file(topology)
    from palmnet.lab import LabAPI

    return LabAPI().plan_of(name)


def _write(out: Path, zones: dict[str, str]) -> list[Path]:
    """One `db.ZONE` file per zone, BIND's usual naming. The folder is made if its
    parent exists (as `mkdir` does): a typo must not grow a tree under /."""
    try:
        out.mkdir(exist_ok=True)
        paths = []
        for name, text in zones.items():
            path = out / f"db.{name}"
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    except OSError as exc:
        raise InputError(f"cannot write zone files to {out}: {exc.strerror}") from None
    return paths


def zone(
    lab_arg: str | None = typer.Argument(None, metavar="LAB", help="The running lab."),
    lab: str | None = LAB,
    topology: Path | None = typer.Option(
        None, "--topology", "-t", help="Work offline from this lab file (YAML)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write one db.ZONE file per zone into this directory."
    ),
    serial: int | None = typer.Option(
        None,
        "--serial",
        min=0,
        max=2**32 - 1,
        help="SOA serial (default: derived from each zone's content, stable).",
    ),
    fmt: ZoneFormat = typer.Option(
        ZoneFormat.zone, "--format", "-f", help="zone (BIND zone files) or json (the records)."
    ),
    external: bool = typer.Option(
        False,
        "--external",
        help="Only the nodes on external networks, as lines for your own LAN's zone.",
    ),
) -> None:
    """BIND zone files of a lab: forward AAAA/A, ip6.arpa and in-addr.arpa PTR."""
    from palmnet.plan.dns import lab_records, rdtype, render_zones

    plan = _plan(lab_arg, lab, topology)
    if external:
        _external(plan, fmt, running=topology is None)
        return
    if fmt is ZoneFormat.json:
        if out is not None:
            raise InputError("--out writes zone files; --format json prints the records")
        records = [
            {"name": r.name, "type": rdtype(r.address), "address": str(r.address)}
            for r in lab_records(plan)
        ]
        typer.echo(json.dumps(records, indent=2))
        return
    zones = render_zones(plan, serial)
    if out is not None:
        for path in _write(out, zones):
            typer.echo(str(path))
        return
    typer.echo(
        "\n".join(f"; zone {name}\n{text}" for name, text in zones.items()),
        nl=False,
    )


def _external(plan: Plan, fmt: ZoneFormat, running: bool) -> None:
    """The zone chunk of the nodes on external networks (the field notes' lines for
    the home LAN's own DNS server): names relative to that zone, one AAAA each."""
    from palmnet.plan.dns import external_records, rdtype, render_chunk

    unknown = [n.name for n in plan.external if n.external and n.external.prefix is None]
    learnt = None
    if unknown:
        if not running:
            raise InputError(
                f"the prefix of {', '.join(unknown)} is learnt at up: bring the lab up, "
                "or give the LAN's prefix: in the lab file"
            )
        from palmnet.lab import LabAPI

        _, nodes = LabAPI().ls(plan.lab)
        learnt = {(n.name, i.name): i.ipv6 for n in nodes for i in n.interfaces}
    records = external_records(plan, learnt)
    if not records and fmt is not ZoneFormat.json:
        typer.echo(
            "no record: no node on an external network holds a global address there yet "
            "(its prefix comes from the LAN's router advertisements)",
            err=True,
        )
        return
    if fmt is ZoneFormat.json:
        rows = [{"name": n, "type": rdtype(a), "address": str(a)} for n, a in records]
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(render_chunk(records), nl=False)


def register(app: typer.Typer) -> None:
    """Add `palmnet dns` (with `zone`) to the app."""
    dns_app = typer.Typer(help="The lab's DNS: zone files.", no_args_is_help=True)

    @dns_app.callback()
    def _dns() -> None:
        """The lab's DNS: zone files."""

    dns_app.command("zone")(zone)
    app.add_typer(dns_app, name="dns")
