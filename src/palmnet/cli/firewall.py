"""`palmnet firewall reload|show|check [--lab LAB] NODE`: an openwrt node's firewall.

Each verb runs what `/etc/init.d/firewall VERB` runs in a namespace node
(toolbox/firewall.py, the path the web UI takes too) and relays its output:
so it works the same on every backend, whatever the node's image holds. What
the user sees is what `palmnet exec NODE -- /etc/init.d/firewall VERB` shows
on a namespace node:

    reload   load /etc/config/firewall; warnings on stderr; exit 1 if nft
             refused the ruleset (the one loaded before stays)
    show     the loaded `inet fw4` table
    check    exit 2 at the first problem, `FILE:LINE: Section ... reason`
"""

from __future__ import annotations

import typer

from palmnet.cli.options import LAB

NODE = typer.Argument(..., help="The openwrt node.")


def _run(lab: str | None, node: str, verb: str) -> None:
    from palmnet.toolbox.firewall import openwrt_handle, run_verb

    proc = run_verb(openwrt_handle(lab, node), verb)
    if proc.stdout:
        typer.echo(proc.stdout, nl=False)
    if proc.stderr:
        typer.echo(proc.stderr, nl=False, err=True)
    if proc.returncode == 2:
        raise typer.Exit(2)  # the message (FILE:LINE: ...) is already on stderr
    if proc.returncode != 0:
        raise typer.Exit(1)


def reload(node: str = NODE, lab: str | None = LAB) -> None:
    """Reload the node's firewall from its /etc/config/firewall (atomic)."""
    _run(lab, node, "reload")


def show(node: str = NODE, lab: str | None = LAB) -> None:
    """Print the firewall the node has loaded (nft list table inet fw4)."""
    _run(lab, node, "show")


def check(node: str = NODE, lab: str | None = LAB) -> None:
    """Check the node's /etc/config/firewall without loading it (exit 2 on a problem)."""
    _run(lab, node, "check")


def register(app: typer.Typer) -> None:
    """Add `palmnet firewall` (reload, show, check) to the app."""
    fw_app = typer.Typer(help="The firewall of openwrt nodes (fw4).", no_args_is_help=True)

    @fw_app.callback()
    def _firewall() -> None:
        """The firewall of openwrt nodes (fw4)."""

    fw_app.command("reload")(reload)
    fw_app.command("show")(show)
    fw_app.command("check")(check)
    app.add_typer(fw_app, name="firewall")
