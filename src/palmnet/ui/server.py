"""Where `palmnet ui` listens and how it starts: loopback unless told otherwise.

By default it listens on both loopbacks, [::1] and 127.0.0.1, one socket each
(a socket on ::1 takes no IPv4), on the same port. `--listen ADDR` takes one
address; `::` (or 0.0.0.0, or any address that is not loopback) opens the UI
to the network, which it says loudly on stderr: the token is then all that
stands between the lab's root powers and whoever reaches the port.

The first line on stdout is the URL with the access token, as notebook servers
print it, so a script (or a test) can read it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sys
from typing import TextIO

from palmnet.errors import InputError

LOOPBACK = ("::1", "127.0.0.1")
DEFAULT_PORT = 8080


def _sockaddr(host: str, port: int) -> tuple[socket.AddressFamily, tuple[str, int]]:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise InputError(f"not an IP address: {host!r}", key="--listen") from None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return family, (str(address), port)


def open_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; `::` is dual-stack (IPV6_V6ONLY off, whatever the sysctl)."""
    if not 0 <= port <= 65535:
        raise InputError(f"port {port} is not in 0..65535", key="--port")
    family, addr = _sockaddr(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "::" else 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is in use; pick another --port") from None
        raise InputError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    return sock


def open_sockets(listen: str | None, port: int) -> list[socket.socket]:
    """The sockets to serve on: both loopbacks (same port) or the one address given."""
    if listen is not None:
        return [open_socket(listen, port)]
    first = open_socket(LOOPBACK[0], port)
    port = first.getsockname()[1]  # port 0: the second takes the one the first got
    try:
        return [first, open_socket(LOOPBACK[1], port)]
    except InputError:
        first.close()
        raise


def is_loopback(listen: str | None) -> bool:
    if listen is None:
        return True
    return ipaddress.ip_address(listen.strip("[]")).is_loopback


def url_of(sock: socket.socket, token: str) -> str:
    host, port = sock.getsockname()[:2]
    shown = "::1" if host in ("::", "0.0.0.0") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={token}"


def warning(listen: str) -> str:
    return (
        f"WARNING: palmnet ui listens on {listen}, not only on loopback: anyone who can reach "
        "this port and learns the token controls your labs (as root). Use it only on a "
        "network you trust, or leave --listen out (loopback only)."
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(
    listen: str | None,
    port: int,
    token: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> None:
    """Serve until Ctrl-C or SIGTERM. Prints the URL first, then the warning if any."""
    import uvicorn

    from palmnet.ui.app import create_app

    out = out or sys.stdout
    err = err or sys.stderr
    sockets = open_sockets(listen, port)
    print(url_of(sockets[0], token), file=out, flush=True)
    if not is_loopback(listen):
        print(warning(str(listen)), file=err, flush=True)
    if os.geteuid() != 0:
        print(
            "note: palmnet ui is not running as root: lab pages need root "
            "(network namespaces); run it with sudo",
            file=err,
            flush=True,
        )
    others = [url_of(s, token).split("/?")[0] for s in sockets[1:]]
    if others:
        print(f"also on {', '.join(others)}", file=err, flush=True)
    app = create_app(token)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    # uvicorn stops on SIGTERM/SIGINT, then raises the signal again with the handler it
    # found: make that one an interrupt, so the jobs are waited for below (the default
    # SIGTERM handler would end the process mid-converge, its link left failed).
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        app.state.ui.jobs.close(lambda line: print(line, file=err, flush=True))
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
