"""What the lab verbs do (plan, up, down, ls, exec), without Typer.

Both doors call these: the Typer commands of cli/lab.py and the quick lane of
cli/quick.py, so a verb behaves the same whichever parsed its command line. No
Typer import here: the quick lane exists to avoid it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from palmnet.plan.model import Plan


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def plan(topology: str | Path, fmt: str, rootless: bool = False) -> None:
    from palmnet.lab import plan_file

    p = plan_file(topology, rootless_lab=rootless)
    if fmt == "json":
        emit_json(p.to_json())
        return
    from palmnet.cli.grid import print_grid
    from palmnet.cli.tables import plan_table

    print_grid(plan_table(p))
    for note in p.notes:
        say(note)


def up(
    topology: str,
    raise_neigh_limit: bool,
    backend: str | None,
    fmt: str,
    rootless: bool = False,
) -> None:
    from palmnet.cli.progress_bar import shown_on_terminal
    from palmnet.lab import LabAPI

    api = LabAPI(report=say)
    with shown_on_terminal():
        result = api.up(
            topology,
            raise_neigh_limit=raise_neigh_limit,
            backend_name=backend,
            rootless_lab=rootless,
        )
    if result.action in ("unchanged", "reconciled"):
        say(f"lab {result.plan.lab}: {result.detail}")
    show(api, result.plan.lab, fmt, result.plan)


def show(api: object, lab: str, fmt: str, known: Plan | None = None) -> None:
    """The `ls` output of a lab (after `up`, `launch`, or for `ls` itself)."""
    from palmnet.lab import LabAPI

    assert isinstance(api, LabAPI)
    _, nodes = api.ls(lab, known)
    if fmt == "json":
        from palmnet.cli.tables import live_json

        emit_json(live_json(nodes))
    else:
        from palmnet.cli.grid import print_grid
        from palmnet.cli.tables import ls_table

        print_grid(ls_table(nodes))


def down(lab: str | None) -> None:
    from palmnet.lab import LabAPI

    name = LabAPI(report=say).down(lab)
    say(f"lab {name} removed")


def ls(lab: str | None, fmt: str, prefixes: bool = False) -> None:
    from palmnet.lab import LabAPI, resolve_lab

    if not prefixes:
        show(LabAPI(), resolve_lab(lab), fmt)
        return
    from palmnet.cli.grid import print_grid
    from palmnet.cli.isp import prefix_rows
    from palmnet.cli.tables import rows_table

    name = resolve_lab(lab)
    rows = prefix_rows(name)
    if fmt == "json":
        emit_json(rows)
    elif not rows:
        say(f"lab {name}: no router requests a delegated prefix (DHCPv6-PD), nothing to show")
    else:
        print_grid(rows_table(rows))


def exec_(lab: str | None, node: str, command: list[str]) -> None:
    from palmnet.errors import InputError
    from palmnet.lab.door import exec_node  # LabAPI.exec, without the rest of the API

    argv = list(command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    elif lab is None and argv[:1] and (argv[0].split("=")[0] == "--lab" or argv[0][:2] == "-l"):
        raise InputError(
            f"{argv[0]} after the node would be part of the command: options go before "
            f"it (palmnet exec --lab LAB {node} -- COMMAND)"
        )
    exec_node(lab, node, argv or ["sh"])
