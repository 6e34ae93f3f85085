"""`palmnet ndp watch`: live, decoded Neighbour Discovery on a node's links.

Messages print as they arrive: a line-per-message table for people, or JSON
Lines (`--format json`) for scripts. Status goes to stderr so stdout stays
clean. With `--count N`, seeing fewer than N messages before `--timeout` is a
failed check (exit 1), so `palmnet ndp watch r1 --count 1 --timeout 10` can
answer "does an RA arrive within 10 s?".
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from enum import Enum

import typer

from palmnet.cli.forward import node_netns
from palmnet.errors import CheckFailed, InputError

ndp_app = typer.Typer(
    name="ndp", help="Neighbour Discovery on a node's links.", no_args_is_help=True
)

# Addresses whose role matters more than their digits get it named.
SPECIAL_KINDS = frozenset({"unspecified", "all-nodes", "all-routers", "solicited-node"})


class Format(str, Enum):
    table = "table"
    json = "json"


def _endpoint(address: str, kind: str) -> str:
    return f"{address} ({kind})" if kind in SPECIAL_KINDS else address


@ndp_app.command("watch")
def watch(
    node: str = typer.Argument(..., help="Node to watch."),
    iface: str | None = typer.Argument(None, help="Interface (default: all of the node's)."),
    lab: str | None = typer.Option(None, "--lab", "-l", help="Lab of the node."),
    count: int = typer.Option(0, "--count", help="Stop after N messages (0: no limit)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Stop after S seconds."),
    output: Format = typer.Option(
        Format.table, "--format", "-f", help="table or json (JSON Lines)."
    ),
) -> None:
    """Print RS, RA, NS, NA and Redirect messages seen on NODE, decoded, as they arrive."""
    if count < 0:
        raise InputError(f"--count {count}: must be 0 or more")
    if timeout is not None and timeout <= 0:
        raise InputError(f"--timeout {timeout}: must be more than 0")
    netns = node_netns(lab, node)

    # scapy takes a second to import: only pay it when watching.
    from palmnet.toolbox import ndp_capture
    from palmnet.toolbox.ndp import NdpMessage, summary

    sockets = ndp_capture.open_sockets(netns, [iface] if iface else None, node=node)
    names = ", ".join(sorted(sockets.values()))
    typer.echo(f"watching {names} in node {node} (Ctrl-C to stop)", err=True)
    if output is Format.table:
        width = max(5, *(len(n) for n in sockets.values()))
        header = f"{'TIME':<12} {'IFACE':<{width}} DIR {'TYPE':<8} {'SOURCE':<28} "
        typer.echo(header + f"{'DESTINATION':<36} DETAILS")

    def show(message: NdpMessage) -> None:
        if output is Format.json:
            line = json.dumps(message.to_json())
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(message.time or time.time()))
            millis = int(((message.time or 0) % 1) * 1000)
            line = (
                f"{stamp}.{millis:03d} {message.interface or '-':<{width}} "
                f"{message.direction or '-':<3} {message.name:<8} "
                f"{_endpoint(message.source, message.source_kind):<28} "
                f"{_endpoint(message.destination, message.destination_kind):<36} "
                f"{summary(message)}"
            )
        try:
            typer.echo(line)
        except BrokenPipeError:
            # `| head`: the reader is gone; stop quietly like tcpdump does
            # (stdout now points at /dev/null so the exit flush cannot fail).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0) from None

    # SIGTERM ends the watch like Ctrl-C: quietly, exit 0 (sniff stops on
    # KeyboardInterrupt and the sockets are closed on the way out).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        seen = ndp_capture.watch(sockets, show, count=count, timeout=timeout)
    except KeyboardInterrupt:
        return
    if count and timeout is not None and seen < count:
        raise CheckFailed(f"saw {seen} of {count} ND messages in {timeout:g} s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add the `palmnet ndp` group to the app."""
    app.add_typer(ndp_app, name="ndp")
