"""`python -m palmnet.httpd [DIR] [--port N] [--bind ADDR] [--log FILE] [--name NODE]`.

argparse rather than the Typer CLI: a lab starts this inside each node, and
importing only the standard library keeps that start quick. Bad input prints
a message and exits 2, as the palmnet CLI does.
"""

from __future__ import annotations

import argparse
import sys

from palmnet.errors import PalmnetError
from palmnet.httpd.server import DEFAULT_BIND, DEFAULT_PORT, DEFAULT_TIMEOUT, serve


def main(argv: list[str] | None = None) -> int:
    """Parse argv, serve until SIGTERM/SIGINT, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m palmnet.httpd", description="palmnet's dual-stack web server"
    )
    parser.add_argument("directory", nargs="?", default=".", help="directory to serve")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any)")
    parser.add_argument("--bind", default=DEFAULT_BIND, help="address, e.g. :: or fe80::1%%eth0")
    parser.add_argument("--log", default=None, help="access log file (default: stderr)")
    parser.add_argument("--name", default=None, help="node name on the index page")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="idle/slow client timeout (s)"
    )
    args = parser.parse_args(argv)
    try:
        serve(args.directory, args.port, args.bind, args.log, args.name, timeout=args.timeout)
    except PalmnetError as exc:
        print(f"palmnet: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
