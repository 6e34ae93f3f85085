"""`palmnet serve`: the dual-stack web server in the foreground.

The field notes' `cd public/; ipv6-httpd.py`, with the directory, address and
log as options. It is the same server `service: http` nodes run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from palmnet.httpd.defaults import DEFAULT_BIND, DEFAULT_PORT, DEFAULT_TIMEOUT


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the app."""

    @app.command("serve")
    def serve_cmd(
        directory: Path = typer.Argument(Path("."), metavar="DIR", help="Directory to serve."),
        port: int = typer.Option(DEFAULT_PORT, "--port", "-p", help="TCP port (0: any free)."),
        bind: str = typer.Option(
            DEFAULT_BIND, "--bind", "-b", help="Address to listen on: ::, ::1, fe80::1%eth0 ..."
        ),
        log: Path | None = typer.Option(None, "--log", help="Access log file (default stderr)."),
        name: str | None = typer.Option(
            None, "--name", help="Node name on the index page (default: hostname)."
        ),
        timeout: float = typer.Option(
            DEFAULT_TIMEOUT, "--timeout", help="Seconds an idle or slow client is kept."
        ),
    ) -> None:
        """Serve DIR over HTTP to IPv4 and IPv6 clients on one socket, until Ctrl-C."""
        from palmnet.httpd.server import serve

        serve(
            str(directory),
            port,
            bind,
            str(log) if log is not None else None,
            name,
            timeout=timeout,
        )
