"""Options shared by many verbs, so they read the same everywhere."""

from __future__ import annotations

import enum

import typer


class Format(str, enum.Enum):
    table = "table"
    json = "json"


FORMAT = typer.Option(Format.table, "--format", "-f", help="table or json")
LAB = typer.Option(None, "--lab", "-l", help="The lab (default: the only running one).")
