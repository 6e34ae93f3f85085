"""`palmnet forward`: reach a scoped link-local service from a local browser."""

from __future__ import annotations

import os
import sys

import typer

from palmnet.errors import InputError


def node_netns(lab: str | None, node: str) -> str:
    """The network namespace of a running node, found through the Lab API (without
    `--lab`, the node must be in exactly one running lab)."""
    from palmnet.lab import LabAPI

    api = LabAPI()
    with api.session(api.locate(lab, node)) as s:
        return s.running_node(node).netns


def forward(
    local_port: int = typer.Argument(..., help="Local TCP port (0: any free port)."),
    target: str = typer.Argument(..., help="Address with zone, e.g. 'fe80::1%eth0'."),
    remote_port: int = typer.Argument(..., help="TCP port of the service."),
    lab: str | None = typer.Option(None, "--lab", "-l", help="Lab of the node."),
    node: str | None = typer.Option(
        None, "--node", help="Connect from inside this node (default: from the host)."
    ),
    listen: str = typer.Option(
        "localhost",
        "--listen",
        help="Local address to listen on; localhost means 127.0.0.1 and ::1.",
    ),
) -> None:
    """Forward localhost:LOCAL_PORT to TARGET:REMOTE_PORT, e.g. a node's link-local web server.

    Browsers do not accept a zone such as %eth0 in a URL (RFC 6874 is not
    implemented by them); open http://localhost:LOCAL_PORT/ instead.
    Stops on Ctrl-C or SIGTERM.
    """
    from palmnet.toolbox.forwarder import Forwarder, parse_target, run_forwarder

    if lab is not None and node is None:
        raise InputError("--lab needs --node: forward from which node?")
    parsed = parse_target(target, remote_port)
    forwarder = Forwarder(parsed, local_port, listen=listen, node=node)
    forwarder.bind()  # here, before a rootless lab's namespaces are entered
    forwarder.netns = node_netns(lab, node) if node is not None else None
    stats = run_forwarder(forwarder, on_ready=typer.echo)
    typer.echo(
        f"stopped: {stats.accepted} connections, {stats.failed} failed, "
        f"{stats.bytes_up} bytes up, {stats.bytes_down} bytes down",
        err=True,
    )
    # The work is done and reported: do not wait at exit for worker threads that
    # entered a node's namespace to open a socket.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def register(app: typer.Typer) -> None:
    """Add `palmnet forward` to the app."""
    app.command("forward")(forward)
