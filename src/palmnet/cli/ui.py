"""`palmnet ui [--listen ADDR] [--port N]`: the web interface (palmnet/ui)."""

from __future__ import annotations

import typer

from palmnet.errors import InputError


def ui(
    listen: str | None = typer.Option(
        None,
        "--listen",
        help="Address to listen on (default: [::1] and 127.0.0.1, loopback only). "
        "'::' opens it to the network, with a warning.",
    ),
    port: int = typer.Option(8080, "--port", "-p", help="TCP port (0: any free port)."),
) -> None:
    """Serve the web UI: labs, topology, nodes, the OpenWrt firewall, experiments.

    The first line printed is the URL with the access token; open it in a browser."""
    try:
        from palmnet.ui.auth import new_token
        from palmnet.ui.server import serve
    except ImportError as exc:
        raise InputError(
            f"the web UI needs its Python packages ({exc.name}): pip install 'palmnet[ui]'"
        ) from None
    serve(listen, port, new_token())


def register(app: typer.Typer) -> None:
    """Add `palmnet ui` to the app."""
    app.command("ui")(ui)
